"""The pipeline's cached synthetic dataset follows the generator: new generator code, new clips."""

from __future__ import annotations

import json

from asdlab.data.synth import generator_fingerprint
from asdlab.pipeline import experiment


def _quiet(message: str) -> None:
    pass


def test_a_changed_generator_makes_a_new_cached_dataset(tmp_path, monkeypatch):
    config = experiment.DataConfig(synthetic=True, machines=1, train_source=1, train_target=1, test_per_group=1,
                                   duration_s=0.5)
    root, key = experiment.prepare_data(config, tmp_path, log=_quiet)
    assert json.loads((root / "synth.json").read_text())["generator_fingerprint"] == generator_fingerprint()
    assert experiment.prepare_data(config, tmp_path, log=_quiet)[1] == key  # unchanged generator: reused
    monkeypatch.setattr(experiment, "generator_fingerprint", lambda: "0123456789")
    other_root, other_key = experiment.prepare_data(config, tmp_path, log=_quiet)
    assert other_key != key and other_root != root
