"""`asdlab fit --recipe mn04-frozen` finds the released weights by name and exports a self-contained detector."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import asdlab
from asdlab.data.synth import generate_dataset
from asdlab.encoders.mobilenet import MN04_FILENAME
from asdlab.encoders.pretrained import WEIGHTS_DIR_ENV


def test_frozen_mn04_detector_with_pretrained_weights(shared_dir: Path, tmp_path, monkeypatch):
    folder = shared_dir / "models" / "efficientat-mn04"
    if not (folder / MN04_FILENAME).is_file():
        pytest.skip(f"{folder / MN04_FILENAME} is missing from ../shared")
    monkeypatch.setenv(WEIGHTS_DIR_ENV, str(folder))
    root = tmp_path / "data"
    generate_dataset(root, machines=1, train_source=6, train_target=2, test_per_group=2, duration_s=0.5, seed=1)
    detector = asdlab.fit(root, tmp_path / "a" / "model", recipe="mn04-frozen")
    record = json.loads((tmp_path / "a" / "model" / "detector.json").read_text())
    assert record["backbone"]["weights"] == f"model/{MN04_FILENAME}"  # copied in: no lookup needed to score
    assert record["backbone"]["options"] == {"embed_layer": 10} and record["backbone"]["pooling"] == "band-mean"
    first = detector.score(root, tmp_path / "s1")
    monkeypatch.setenv(WEIGHTS_DIR_ENV, str(tmp_path / "nowhere"))
    shutil.move(tmp_path / "a" / "model", tmp_path / "moved")
    again = asdlab.load_detector(tmp_path / "moved").score(root, tmp_path / "s2")
    assert again.summary.official_score == first.summary.official_score
