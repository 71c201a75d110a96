"""The main job's "detector" row is what `asdlab fit` trains by default, setting for setting."""

from __future__ import annotations

from asdlab.pipeline.experiment import load_experiment_config
from asdlab.pipeline.fit import DEFAULT_RECIPE

SYSTEM_FIELDS = ("backbone", "pretrain", "pseudo", "pseudo_source", "finetune", "finetune_from", "scoring")


def test_demo_detector_row_is_the_fit_default():
    default = load_experiment_config(DEFAULT_RECIPE)
    row = load_experiment_config("demo").variant("detector")
    assert {f: getattr(row, f) for f in SYSTEM_FIELDS} == {f: getattr(default, f) for f in SYSTEM_FIELDS}


def test_demo_rows_start_with_the_detector():
    assert load_experiment_config("demo").variant_names()[0] == "detector"
