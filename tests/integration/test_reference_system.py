"""The reference system end to end on a tiny synthetic dataset, including a corrupt clip."""

from __future__ import annotations

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


def test_demo_command_prints_both_tables(tmp_path, capsys, monkeypatch):
    import asdlab.pipeline.demo as demo

    def small_dataset(out_dir, *, seed, overwrite):
        return generate_dataset(out_dir, machines=2, train_source=12, train_target=3, test_per_group=4,
                                duration_s=0.5, seed=seed, overwrite=overwrite)

    monkeypatch.setattr(demo, "generate_dataset", small_dataset)
    assert main(["demo", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "== logmel-stats + knn" in out and "== clip level + knn (control)" in out
    assert out.count("official score:") == 2
    # a second run reuses the dataset
    assert main(["demo", "--out", str(tmp_path)]) == 0
