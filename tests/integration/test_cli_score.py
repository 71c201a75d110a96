"""`asdlab score` and `asdlab ensemble` end to end on a tiny synthetic dataset embedded with logmel-stats."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from threadpoolctl import threadpool_limits

from asdlab.cli import main as cli_main
from asdlab.data.index import index_dataset
from asdlab.data.synth import generate_dataset
from asdlab.embeddings.extract import extract_embeddings
from asdlab.encoders.registry import create_encoder

MACHINES = ("SynFan", "SynPump")


@pytest.fixture(scope="module")
def embedded(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("synth")
    generate_dataset(root, machines=["SynFan", "SynPump"], train_source=12, train_target=3, test_per_group=4, duration_s=0.5, seed=3,
                     overwrite=True)
    records = [r for r in index_dataset(root) if r.split in ("train", "test")]
    table = extract_embeddings(records, create_encoder("logmel-stats")).table
    table.save(root / "embeddings.npz")
    return root, root / "embeddings.npz"


@pytest.fixture()
def commands(monkeypatch):
    """Register only these commands, so the test does not depend on the other subcommands."""
    monkeypatch.setattr(cli_main, "_COMMAND_MODULES", ("score", "ensemble"))
    # One BLAS thread: Mahalanobis' 128 x 128 eigh took ~30x longer with two threads fighting over 2 cores.
    with threadpool_limits(1):
        yield


def _official(out: str) -> str:
    return next(line for line in out.splitlines() if line.startswith("official score:"))


def test_score_then_ensemble(embedded, commands, tmp_path, capsys):
    root, embeddings = embedded
    knn, maha, ens = tmp_path / "knn", tmp_path / "maha", tmp_path / "ens"
    assert cli_main.main(["score", str(embeddings), "--out", str(knn), "--threshold", "percentile",
                          "--set", "n_neighbors=2"]) == 0
    out = capsys.readouterr().out
    assert "knn (n_neighbors=2), normalisation none, threshold percentile: 2 machine(s) scored" in out
    assert [line.split()[0] for line in out.splitlines() if line.startswith("Syn")] == list(MACHINES)
    assert "jackknife" in _official(out)
    for machine in MACHINES:
        for name in (f"anomaly_score_{machine}_section_00_test.csv", f"decision_result_{machine}_section_00_test.csv",
                     f"train_scores_{machine}_section_00.csv"):
            assert (knn / name).is_file(), name
    settings = json.loads((knn / "settings.json").read_text())
    assert (settings["backend"], settings["params"], settings["normalization"]) == ("knn", {"n_neighbors": 2}, "none")
    assert (knn / "evaluation.csv").is_file() and (knn / "ground_truth" / "ground_truth_data").is_dir()

    # The dataset root as ground truth gives the same evaluation as the embeddings' own labels.
    assert cli_main.main(["score", str(embeddings), "--out", str(tmp_path / "knn-root"), "--threshold", "percentile",
                          "--set", "n_neighbors=2", "--ground-truth", str(root)]) == 0
    assert _official(capsys.readouterr().out) == _official(out)
    assert (tmp_path / "knn-root" / "evaluation.csv").read_text() == (knn / "evaluation.csv").read_text()

    assert cli_main.main(["score", str(embeddings), "--out", str(maha), "--backend", "mahalanobis",
                          "--normalize", "zscore", "--threshold", "percentile", "--no-ci"]) == 0
    capsys.readouterr()

    assert cli_main.main(["ensemble", str(knn), str(maha), "--out", str(ens), "--threshold", "percentile",
                          "--no-ci"]) == 0
    out = capsys.readouterr().out
    assert "weights (equal): knn=0.500  maha=0.500" in out
    assert "official score on" in out and "members: knn " in out and "official score:" in out
    assert json.loads((ens / "weights.json").read_text()) == {"knn": 0.5, "maha": 0.5}
    assert len(list(ens.glob("anomaly_score_*_test.csv"))) == 2 and (ens / "evaluation.csv").is_file()

    assert cli_main.main(["ensemble", str(knn), str(maha), "--out", str(tmp_path / "tuned"), "--tune-on", str(knn),
                          str(maha), "--n-iter", "5", "--threshold", "percentile", "--no-ci"]) == 0
    out = capsys.readouterr().out
    assert "weights (tuned):" in out and "(equal weights) ->" in out
    tuned = json.loads((tmp_path / "tuned" / "weights.json").read_text())
    assert cli_main.main(["ensemble", str(knn), str(maha), "--out", str(tmp_path / "again"),
                          "--weights", str(tmp_path / "tuned" / "weights.json"), "--threshold", "percentile",
                          "--no-ci"]) == 0
    assert (tmp_path / "again" / "evaluation.csv").read_text() == (tmp_path / "tuned" / "evaluation.csv").read_text()
    assert json.loads((tmp_path / "again" / "weights.json").read_text()) == tuned


def test_user_errors_are_reported(embedded, commands, tmp_path, capsys):
    root, embeddings = embedded
    assert cli_main.main(["score", str(root), "--out", str(tmp_path / "x")]) == 2
    assert "is a folder; scoring takes an embeddings file" in capsys.readouterr().err
    assert cli_main.main(["score", str(embeddings), "--out", str(tmp_path / "x"), "--set", "k=1"]) == 2
    assert "takes no parameter(s) ['k']" in capsys.readouterr().err
