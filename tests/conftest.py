"""Shared fixtures: the ../shared folder (skipped cleanly when absent) and a tiny synthetic dataset."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

# Tests run two pytest-xdist workers on 2 cores: one thread each avoids oversubscription.
torch.set_num_threads(1)

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = Path(os.environ.get("ASDLAB_SHARED", REPO_ROOT.parent / "shared"))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The project's ../shared folder (real clips, weights); skip when it is not beside the repo."""
    if not SHARED_DIR.is_dir():
        pytest.skip(f"../shared not found at {SHARED_DIR} (set ASDLAB_SHARED to point at it)")
    return SHARED_DIR


@pytest.fixture(scope="session")
def dcase_samples_dir(shared_dir: Path) -> Path:
    path = shared_dir / "data" / "dcase2023t2-dev-mixed-samples"
    if not path.is_dir():
        pytest.skip(f"{path} is missing from ../shared")
    return path


@pytest.fixture(scope="session")
def mimii_dir(shared_dir: Path) -> Path:
    path = shared_dir / "data" / "mimii-fan-id00-sample"
    if not path.is_dir():
        pytest.skip(f"{path} is missing from ../shared")
    return path
