"""`asdlab score MODEL_DIR DATA_ROOT --backend NAME` re-scores a detector's embeddings with another backend."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import asdlab
from asdlab.cli import main as cli_main
from asdlab.data.synth import generate_dataset
from asdlab.metrics.files import read_anomaly_scores

SCORES = "anomaly_score_SynFan_section_00_test.csv"


@pytest.fixture(scope="module")
def detector(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("data")
    generate_dataset(root, machines=1, train_source=10, train_target=3, test_per_group=3, duration_s=0.5, seed=6,
                     overwrite=True)
    model = tmp_path_factory.mktemp("fit") / "model"
    asdlab.fit(root, model, recipe="baseline")
    return root, model


def test_backend_flag_overrides_the_detectors_own(detector, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cli_main, "_COMMAND_MODULES", ("score",))
    root, model = detector
    assert cli_main.main(["score", str(model), str(root), "--out", str(tmp_path / "own")]) == 0
    assert cli_main.main(["score", str(model), str(root), "--out", str(tmp_path / "dn"), "--backend", "domain-norm-knn",
                          "--set", "method=ratio"]) == 0
    assert "baseline (domain-norm-knn)" in capsys.readouterr().out
    settings = json.loads((tmp_path / "dn" / "settings.json").read_text())
    assert (settings["backend"], settings["params"]) == ("domain-norm-knn", {"method": "ratio"})
    assert json.loads((tmp_path / "own" / "settings.json").read_text())["backend"] == "knn"
    names, own = read_anomaly_scores(tmp_path / "own" / SCORES)
    same_names, rescored = read_anomaly_scores(tmp_path / "dn" / SCORES)
    assert names == same_names and not np.allclose(own, rescored)
