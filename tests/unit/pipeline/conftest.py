"""A tiny synthetic dataset shared by the stage tests: 2 machines, 1 with hidden attributes, 0.5-s clips."""

from __future__ import annotations

from pathlib import Path

import pytest

from asdlab.data.synth import generate_dataset


@pytest.fixture(scope="session")
def tiny_hidden_root(tmp_path_factory) -> Path:
    """Read-only: tests write their outputs elsewhere."""
    path = tmp_path_factory.mktemp("tiny_hidden") / "data"
    generate_dataset(path, machines=2, train_source=4, train_target=2, test_per_group=1, duration_s=0.5,
                     hide_attributes=1, seed=2)
    return path
