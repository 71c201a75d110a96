"""Backbone(level="rms"): embeddings independent of a clip's gain; the level recorded in weights files."""

from __future__ import annotations

import pytest
import torch

from asdlab.encoders.backbone import build_backbone
from asdlab.encoders.checkpoints import save_encoder
from asdlab.encoders.registry import create_encoder
from asdlab.errors import ConfigError
from asdlab.features.level import TYPICAL_RMS

SAMPLES = 9600  # 0.6 s at 16 kHz


def _waves(seed: int = 0) -> torch.Tensor:
    return 0.05 * torch.randn(2, SAMPLES, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", ["two-branch-cnn-small", "eat-tiny"])
def test_rms_level_makes_embeddings_gain_invariant(name):
    x = _waves()
    rms = build_backbone(name, seed=0, level="rms").eval()
    plain = build_backbone(name, seed=0).eval()
    with torch.no_grad():
        reference = rms(x)
        for gain in (2.0, 0.5, 0.3):  # 0.3 is not a power of two: equal up to float rounding only
            torch.testing.assert_close(rms(gain * x), reference, rtol=1e-5, atol=1e-5)
        # The control: without normalisation the same weights do see the gain.
        assert not torch.allclose(plain(2.0 * x), plain(x), rtol=1e-3, atol=1e-3)
        # Clips already at TYPICAL_RMS pass unchanged: "rms" and "none" agree on level-normalised data.
        typical = x * (TYPICAL_RMS / x.pow(2).mean(dim=1, keepdim=True).sqrt())
        torch.testing.assert_close(plain(typical), reference, rtol=1e-5, atol=1e-5)


def test_level_is_in_settings_and_checked():
    backbone = build_backbone("logmel-stats")
    assert backbone.level == "none" and backbone.settings()["level"] == "none"  # presets keep their numbers
    backbone.level = "rms"
    assert backbone.settings()["level"] == "rms"
    with pytest.raises(ConfigError, match="level must be one of none, rms, got 'loud'"):
        backbone.level = "loud"
    with pytest.raises(ConfigError, match="level must be one of"):
        build_backbone("clip-level", level="peak")


def test_weights_file_records_the_level_and_an_explicit_level_wins(tmp_path):
    encoder = create_encoder("two-branch-cnn-small")
    save_encoder(encoder, tmp_path / "rms.safetensors", preset="two-branch-cnn-small", source="test",
                 extra={"level": "rms"})
    save_encoder(encoder, tmp_path / "old.safetensors", preset="two-branch-cnn-small", source="test")
    assert build_backbone("two-branch-cnn-small", weights=tmp_path / "rms.safetensors").level == "rms"
    assert build_backbone("two-branch-cnn-small", weights=tmp_path / "old.safetensors").level == "none"
    assert build_backbone("two-branch-cnn-small", weights=tmp_path / "rms.safetensors", level="none").level == "none"
    assert build_backbone("two-branch-cnn-small", weights=tmp_path / "old.safetensors", level="rms").level == "rms"
