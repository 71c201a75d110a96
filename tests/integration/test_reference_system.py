"""The reference system end to end on a tiny synthetic dataset, including a corrupt clip."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from asdlab.cli.main import main
from asdlab.data.synth import generate_dataset
from asdlab.metrics.files import read_anomaly_scores
from asdlab.pipeline.scoring import ScoreSettings
from asdlab.pipeline.systems import run_embedding_system


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth")
    generate_dataset(root, machines=2, train_source=12, train_target=3, test_per_group=4, duration_s=0.5, seed=3, overwrite=True)
    return root


def test_corrupt_clip_is_reported_and_the_rest_scored(tiny_dataset, tmp_path):
    broken = sorted((tiny_dataset / "dev_data" / "raw").rglob("*train_normal*.wav"))[0]
    original = broken.read_bytes()
    broken.write_bytes(b"RIFF\x00\x00not really a wav")
    try:
        result = run_embedding_system(
            "reference", tiny_dataset, tmp_path / "system", encoder="logmel-stats",
            scoring=ScoreSettings(backend="knn", params={"n_neighbors": 1, "metric": "cosine"}, threshold="percentile"),
        )
    finally:
        broken.write_bytes(original)
    assert [f.path.name for f in result.failures] == [broken.name]
    assert result.summary is not None and len(result.summary.rows) == 2
    for row in result.summary.rows:
        names, scores = read_anomaly_scores(tmp_path / "system" / f"anomaly_score_{row.machine}_section_00_test.csv")
        assert len(names) == 16 and np.isfinite(scores).all()
    assert (tmp_path / "system" / "evaluation.csv").exists()


def test_demo_runs_the_demo_recipe_and_prints_every_table(tmp_path, capsys):
    # the real recipe, shrunk: 2 machines (1 with hidden attributes), 0.5-s clips, 2 training steps
    tiny = ["data.machines=2", "data.hide_attributes=1", "data.train_source=12", "data.train_target=3",
            "data.test_per_group=4", "data.duration_s=0.5", "report=false",
            "variants.dap-pseudo-arcface.pretrain.steps=2", "variants.dap-pseudo-arcface.pretrain.warmup_steps=1",
            "variants.dap-pseudo-arcface.finetune.steps=2", "variants.dap-pseudo-arcface.finetune.warmup_steps=1",
            "variants.two-branch-cnn.finetune.preset=two-branch-cnn-small", "variants.two-branch-cnn.finetune.steps=2",
            "variants.detector.finetune.steps=2"]
    args = ["demo", "--out", str(tmp_path)] + [item for o in tiny for item in ("--set", o)]
    assert main(args) == 0
    out = capsys.readouterr().out
    for variant in ("detector", "dap-pseudo-arcface", "two-branch-cnn", "baseline"):
        assert f"== {variant} (seed 0)" in out
        assert f"| {variant} | 1 |" in out
    assert out.count("official score:") == 4
    assert re.search(r"pseudo-attributes Syn\w+/00: K=\d+ \(true \d+\), ARI", out)
    # a second run reuses every stage
    assert main(args) == 0
    again = capsys.readouterr().out
    assert again.count(": cached") >= 6 and "generated" not in again
