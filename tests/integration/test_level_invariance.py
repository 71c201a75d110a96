"""The default `asdlab fit` recipe end to end: a test clip scaled by 2 or 0.5 keeps its anomaly score."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import asdlab
from asdlab.data.synth import generate_dataset
from asdlab.metrics.files import find_score_files, read_anomaly_scores
from asdlab.pipeline.fit import DEFAULT_RECIPE

# The default recipe at toy size: a few updates (invariance needs no skill).
TINY = {"finetune.steps": 3, "finetune.batch_size": 8, "finetune.accelerator": "cpu"}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth")
    generate_dataset(root, machines=1, train_source=8, train_target=2, test_per_group=3, duration_s=1.0, seed=5,
                     overwrite=True)
    return root


def _scores(folder: Path) -> np.ndarray:
    return np.concatenate([read_anomaly_scores(paths[0])[1] for _, paths in sorted(find_score_files(folder).items())])


def test_default_recipe_scores_do_not_depend_on_gain(dataset, tmp_path):
    detector = asdlab.fit(dataset, tmp_path / "model", recipe=DEFAULT_RECIPE, overrides=TINY)
    assert json.loads((tmp_path / "model" / "model" / "model.json").read_text())["level"] == "rms"
    scores = {}
    for gain in (1.0, 2.0, 0.5, 0.7):  # 0.7: not a power of two, so not exact in floating point
        root = tmp_path / f"gain{gain}"
        shutil.copytree(dataset, root)
        for path in root.rglob("test/*.wav"):
            wave, rate = sf.read(path, dtype="float32")
            assert np.abs(wave).max() * gain < 1.0  # synthetic clips: -26 dBFS with headroom
            sf.write(path, wave * gain, rate, subtype="FLOAT")  # float WAV: no requantisation
        detector.score(root, tmp_path / f"scores{gain}")
        scores[gain] = _scores(tmp_path / f"scores{gain}")
    assert len(scores[1.0]) == 12 and np.all(np.isfinite(scores[1.0]))
    for gain in (2.0, 0.5, 0.7):
        np.testing.assert_allclose(scores[gain], scores[1.0], rtol=1e-4, atol=1e-7)
