"""`asdlab fit` / `asdlab score MODEL_DIR DATA_ROOT`, the Python API, and `asdlab run` caching, on tiny data."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import asdlab
from asdlab.cli import main as cli_main
from asdlab.data.synth import generate_dataset
from asdlab.errors import CheckpointError, ConfigError
from asdlab.metrics.files import find_score_files, read_anomaly_scores
from asdlab.pipeline.experiment import load_experiment_config, run_experiment


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth")
    generate_dataset(root, machines=["SynFan", "SynPump"], train_source=12, train_target=3, test_per_group=4, duration_s=0.5, seed=5,
                     overwrite=True)
    return root


@pytest.fixture()
def commands(monkeypatch):
    monkeypatch.setattr(cli_main, "_COMMAND_MODULES", ("fit", "score", "run"))


def test_fit_then_score_from_the_cli(dataset, tmp_path, commands, capsys):
    model = tmp_path / "model"
    assert cli_main.main(["fit", str(dataset), "--recipe", "baseline", "--out", str(model)]) == 0
    assert (model / "detector.json").is_file() and (model / "train_embeddings.npz").is_file()
    scores = tmp_path / "scores"
    assert cli_main.main(["score", str(model), str(dataset), "--out", str(scores)]) == 0
    out = capsys.readouterr().out
    assert "official score" in out.lower()
    files = find_score_files(scores)
    assert len(files) == 2
    assert len(list(scores.glob("decision_result_*.csv"))) == 2


def test_python_api_matches_the_cli_and_moves_with_its_folder(dataset, tmp_path):
    detector = asdlab.fit(dataset, tmp_path / "a" / "model", recipe="baseline")
    assert detector.machines == [("SynFan", "00"), ("SynPump", "00")]
    moved = tmp_path / "b" / "model"
    moved.parent.mkdir()
    shutil.move(tmp_path / "a" / "model", moved)
    result = asdlab.score(moved, dataset, tmp_path / "scores")
    assert result.summary is not None and 0.0 <= result.summary.official_score <= 1.0
    again = asdlab.load_detector(moved).score(dataset, tmp_path / "scores2")
    assert again.summary.official_score == result.summary.official_score


def test_score_errors_are_specific(dataset, tmp_path, commands):
    with pytest.raises(CheckpointError, match="not a detector folder"):
        asdlab.load_detector(tmp_path)
    with pytest.raises(ConfigError, match="unknown recipe 'nope'"):
        asdlab.fit(dataset, tmp_path / "m", recipe="nope")


def test_level_does_not_change_baseline_scores(dataset, tmp_path):
    """The baseline is gain-invariant: a test clip scaled by 2 or 0.5 keeps its score."""
    detector = asdlab.fit(dataset, tmp_path / "model", recipe="baseline")
    scaled = {}
    for gain in (1.0, 2.0, 0.5):
        root = tmp_path / f"gain{gain}"
        shutil.copytree(dataset, root)
        for path in (root).rglob("test/*.wav"):
            wave, rate = sf.read(path, dtype="float32")
            sf.write(path, wave * gain, rate, subtype="FLOAT")  # float WAV: no clipping at 2x
        detector.score(root, tmp_path / f"scores{gain}")
        scaled[gain] = np.concatenate([read_anomaly_scores(paths[0])[1] for _, paths in sorted(find_score_files(tmp_path / f"scores{gain}").items())])
    np.testing.assert_allclose(scaled[2.0], scaled[1.0], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(scaled[0.5], scaled[1.0], rtol=1e-4, atol=1e-6)


def test_run_reuses_cached_stages(dataset, tmp_path):
    config = load_experiment_config("baseline", overrides={"data.root": str(dataset), "report": False})
    first = run_experiment(config, tmp_path / "run", log=lambda line: None)
    lines: list[str] = []
    second = run_experiment(config, tmp_path / "run", log=lines.append)
    assert any("scores: cached" in line for line in lines)
    assert first.results[0].columns == second.results[0].columns
    assert (tmp_path / "run" / "config.yaml").is_file() and (tmp_path / "run" / "provenance.json").is_file()
    changed = load_experiment_config("baseline", overrides={"data.root": str(dataset), "report": False,
                                                            "scoring.params": {"n_neighbors": 2}})
    lines.clear()
    run_experiment(changed, tmp_path / "run", log=lines.append)
    assert any(line.strip().startswith("scores: done") for line in lines)
