"""The released EfficientAT mn04 AudioSet weights (../shared/models/efficientat-mn04): keys, strict load, tags."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from asdlab._io import sha256_file
from asdlab.encoders.mobilenet import (
    MN04_FILENAME,
    MN04_SHA256,
    EfficientATTagger,
    MobileNetV3,
    load_mn04_weights,
    mobilenet_mn04,
)
from asdlab.errors import CheckpointError


@pytest.fixture(scope="module")
def mn04_dir(shared_dir: Path) -> Path:
    path = shared_dir / "models" / "efficientat-mn04"
    if not (path / MN04_FILENAME).is_file():
        pytest.skip(f"{path / MN04_FILENAME} is missing from ../shared")
    return path


@pytest.fixture(scope="module")
def model(mn04_dir: Path) -> MobileNetV3:
    return load_mn04_weights(mn04_dir / MN04_FILENAME)


@pytest.fixture(scope="module")
def labels(mn04_dir: Path) -> list[str]:
    with open(mn04_dir / "class_labels_indices.csv", newline="") as f:
        return [row["display_name"] for row in csv.DictReader(f)]


def test_file_is_the_upstream_release(mn04_dir):
    assert sha256_file(mn04_dir / MN04_FILENAME) == MN04_SHA256


def test_random_model_has_the_checkpoint_keys_and_shapes(mn04_dir):
    checkpoint = torch.load(mn04_dir / MN04_FILENAME, map_location="cpu", weights_only=True)
    ours = mobilenet_mn04().state_dict()
    assert {k: tuple(v.shape) for k, v in ours.items()} == {k: tuple(v.shape) for k, v in checkpoint.items()}


def test_strict_load_and_a_corrupted_key(model, mn04_dir, tmp_path):
    assert not model.training
    checkpoint = torch.load(mn04_dir / MN04_FILENAME, map_location="cpu", weights_only=True)
    checkpoint["features.7.block.0.0.weight"] = checkpoint["features.7.block.0.0.weight"][:, :8]
    path = tmp_path / "corrupt.pt"
    torch.save(checkpoint, path)
    with pytest.raises(CheckpointError, match=r"mis-shaped \(1\): features\.7\.block\.0\.0\.weight"):
        load_mn04_weights(path)


def _top(probabilities: torch.Tensor, labels: list[str], k: int) -> list[str]:
    return [labels[i] for i in probabilities.topk(k).indices.tolist()]


@pytest.mark.parametrize("sample_rate", [32000, 16000])
def test_tags_of_a_sine_and_white_noise(model, labels, sample_rate):
    # 10 s as in SOURCE.md: a 1 s tone reads as "Beep, bleep" rather than "Sine wave".
    t = torch.arange(10 * sample_rate) / sample_rate
    sine = 0.5 * torch.sin(2 * torch.pi * 1000.0 * t)
    noise = 0.1 * torch.randn(t.shape, generator=torch.Generator().manual_seed(0))
    tagger = EfficientATTagger(model, sample_rate=sample_rate).eval()
    with torch.no_grad():
        probabilities = torch.sigmoid(tagger(torch.stack([sine, noise])))
    assert _top(probabilities[0], labels, 1) == ["Sine wave"]
    assert {"White noise", "Static"} & set(_top(probabilities[1], labels, 3))
