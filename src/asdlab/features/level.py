"""Per-clip level normalisation of waveforms, so embeddings do not depend on a recording's gain.

DCASE clips are level-normalised by the organisers; recordings of one's own machine are not. Scaling
each clip to a fixed RMS makes every later stage gain-invariant (a clip scaled by 2 or 0.5 gives the
same input up to float rounding). `Backbone(level=...)` and `ClipDataset(level=...)` apply it.
"""

from __future__ import annotations

from typing import Literal

from torch import Tensor, nn

from asdlab.errors import ConfigError

__all__ = ["TYPICAL_RMS", "Level", "LEVELS", "normalize_rms", "apply_level", "RMSNormalize"]

# About the RMS of DCASE 2020-2025 clips (float in [-1, 1]), so normalised clips stay in the range
# the EAT front end's AudioSet statistics were computed on.
TYPICAL_RMS = 0.05

Level = Literal["none", "rms"]
LEVELS: tuple[Level, ...] = ("none", "rms")


def normalize_rms(waveform: Tensor, *, target_rms: float = TYPICAL_RMS, eps: float = 1e-8) -> Tensor:
    """Scale each clip of (B, S) (or one clip (S,)) to RMS `target_rms`; the mean is left alone."""
    rms = waveform.pow(2).mean(dim=-1, keepdim=True).sqrt()  # (B, 1) or (1,)
    return waveform * (target_rms / rms.clamp_min(eps))


def apply_level(waveform: Tensor, level: Level) -> Tensor:
    """`normalize_rms(waveform)` for level "rms", the waveform itself for "none".

    Raises:
        ConfigError: an unknown level.
    """
    if level == "rms":
        return normalize_rms(waveform)
    if level == "none":
        return waveform
    raise ConfigError(f"level must be one of {', '.join(LEVELS)}, got {level!r}")


class RMSNormalize(nn.Module):
    """`normalize_rms` as a module (the first step of a gain-invariant backbone)."""

    def __init__(self, target_rms: float = TYPICAL_RMS):
        super().__init__()
        self.target_rms = target_rms

    def forward(self, waveform: Tensor) -> Tensor:
        return normalize_rms(waveform, target_rms=self.target_rms)

    def extra_repr(self) -> str:
        return f"target_rms={self.target_rms}"
