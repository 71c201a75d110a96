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


@pytest.fixture(scope="session")
def tiny_detector_dir(tmp_path_factory) -> tuple[Path, Path]:
    """(detector folder, its dataset root): a random two-branch-cnn-small with safetensors weights, kNN, 1 machine.

    Read-only: no training, so it takes a second; tests that change it work on a copy.
    """
    from asdlab.data.index import index_dataset
    from asdlab.data.synth import generate_dataset
    from asdlab.detector import save_detector
    from asdlab.embeddings.extract import extract_embeddings
    from asdlab.encoders.backbone import build_backbone
    from asdlab.encoders.checkpoints import save_encoder
    from asdlab.pipeline.backbones import BackboneSpec
    from asdlab.pipeline.scoring import ScoreSettings

    base = tmp_path_factory.mktemp("tiny_detector")
    root = base / "data"
    generate_dataset(root, machines=1, train_source=8, train_target=2, test_per_group=2, duration_s=1.0, seed=3)
    weights = base / "encoder.safetensors"
    save_encoder(build_backbone("two-branch-cnn-small", seed=0).encoder, weights, preset="two-branch-cnn-small")
    spec = BackboneSpec(preset="two-branch-cnn-small", weights=str(weights))
    from asdlab.pipeline.backbones import load_backbone

    train = extract_embeddings(index_dataset(root, splits=("train",)), load_backbone(spec)).table
    save_detector(base / "detector", backbone=spec, train=train, scoring=ScoreSettings(), recipe="tiny-test")
    return base / "detector", root
