"""`asdlab fit` / `asdlab score` and the Python API on a folder of own recordings (arbitrary file names)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

import asdlab
from asdlab.cli import main as cli_main
from asdlab.data import index_dataset
from asdlab.data.synth import generate_dataset
from asdlab.metrics.files import read_anomaly_scores, read_decisions

SCORE_FILE = "anomaly_score_MyPump_section_00_test.csv"
DECISION_FILE = "decision_result_MyPump_section_00_test.csv"


@pytest.fixture(scope="module")
def own_root(tmp_path_factory) -> Path:
    """`my_data/MyPump/{train,test}/` with the synthetic pump's clips under names no grammar reads."""
    synth = tmp_path_factory.mktemp("synth")
    generate_dataset(synth, machines=1, train_source=8, train_target=0, test_per_group=2, duration_s=0.5, seed=3,
                     overwrite=True)
    root = tmp_path_factory.mktemp("own") / "my_data"
    for split, pattern in (("train", "rec_{:03d}.wav"), ("test", "Prüfstand 2024-06-{:02d} (new).wav")):
        (root / "MyPump" / split).mkdir(parents=True)
        for i, path in enumerate(sorted(synth.rglob(f"{split}/*.wav"))):
            shutil.copy(path, root / "MyPump" / split / pattern.format(i))
    return root


def _test_names(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "MyPump" / "test").iterdir())


def test_cli_fit_then_score_writes_the_original_file_names(own_root, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cli_main, "_COMMAND_MODULES", ("fit", "score"))
    model, scores = tmp_path / "model", tmp_path / "scores"
    assert cli_main.main(["fit", str(own_root), "--recipe", "baseline", "--out", str(model)]) == 0
    assert cli_main.main(["score", str(model), str(own_root), "--out", str(scores)]) == 0
    assert "official score" not in capsys.readouterr().out.lower()
    assert sorted(p.name for p in scores.glob("*_test.csv")) == [SCORE_FILE, DECISION_FILE]
    assert not (scores / "evaluation.csv").exists()
    names, values = read_anomaly_scores(scores / SCORE_FILE)
    assert sorted(names) == _test_names(own_root) and len(names) == 8
    assert np.isfinite(values).all() and (values >= 0).all()
    decided, decisions = read_decisions(scores / DECISION_FILE)
    assert decided == names and set(decisions.tolist()) <= {0, 1}


def test_python_api_fits_one_section_and_scores_without_evaluation(own_root, tmp_path):
    detector = asdlab.fit(own_root, tmp_path / "model", recipe="baseline")
    assert detector.machines == [("MyPump", "00")]
    assert set(detector.train.domain.tolist()) == {"source"} and set(detector.train.label.tolist()) == {"normal"}
    assert sorted(detector.train.filename.tolist()) == [f"rec_{i:03d}.wav" for i in range(8)]
    result = asdlab.score(tmp_path / "model", own_root, tmp_path / "scores")
    assert result.summary is None and result.ground_truth is None
    (machine,) = result.machines
    assert (machine.machine, machine.section) == ("MyPump", "00")
    assert sorted(machine.test_filenames.tolist()) == _test_names(own_root)
    # Test clips have no domain: each is scored against every domain bank (here the one source bank), so
    # with the default kNN (k=1, cosine) its score is the cosine distance to its nearest training clip.
    test = detector.embed(index_dataset(own_root, splits=["test"]))
    assert set(test.domain.tolist()) == {""} and set(test.label.tolist()) == {""}
    unit_train = detector.train.embeddings / np.linalg.norm(detector.train.embeddings, axis=1, keepdims=True)
    unit_test = test.embeddings / np.linalg.norm(test.embeddings, axis=1, keepdims=True)
    nearest = dict(zip(test.filename.tolist(), (1.0 - unit_test @ unit_train.T).min(axis=1)))
    scored = dict(zip(machine.test_filenames.tolist(), machine.test_scores))
    assert scored.keys() == nearest.keys()
    np.testing.assert_allclose([scored[n] for n in sorted(scored)], [nearest[n] for n in sorted(scored)],
                               rtol=1e-4, atol=1e-5)


def test_fit_refuses_a_machine_with_too_few_clips_and_writes_nothing(own_root, tmp_path, monkeypatch, capsys):
    root = tmp_path / "one" / "MyPump"
    (root / "train").mkdir(parents=True)
    shutil.copy(sorted((own_root / "MyPump" / "train").iterdir())[0], root / "train" / "only.wav")
    monkeypatch.setattr(cli_main, "_COMMAND_MODULES", ("fit",))
    model = tmp_path / "model"
    assert cli_main.main(["fit", str(tmp_path / "one"), "--recipe", "baseline", "--out", str(model)]) == 2
    error = capsys.readouterr().err
    assert "MyPump section 00 (1 training clip(s): source 1)" in error and "at least 2" in error
    assert not model.exists()
