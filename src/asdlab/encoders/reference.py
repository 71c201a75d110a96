"""Reference encoders without parameters: log-mel statistics, and clip level (a diagnostic).

`LogMelStats` subtracts the clip's overall log level first, so scaling a waveform by a gain g
(log-mel + 2 ln g) leaves its embedding unchanged. `ClipLevel` is the opposite: it sees only
the level, and a detector built on it should sit at chance on level-normalised data.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from asdlab.encoders.registry import register_encoder
from asdlab.features.fbank import KaldiFbank

__all__ = ["LogMelStats", "ClipLevel"]


class LogMelStats(nn.Module):
    """Waveform (B, S) at `sample_rate` -> [mean_t(logmel), std_t(logmel)] of shape (B, 2F).

    Args:
        sample_rate: input sample rate in Hz.
        num_mel_bins: F, mel bins of the Kaldi fbank.
        low_freq: lowest mel-bank edge in Hz.
    """

    def __init__(self, *, sample_rate: int = 16000, num_mel_bins: int = 64, low_freq: float = 20.0):
        super().__init__()
        self.fbank = KaldiFbank(sample_frequency=float(sample_rate), num_mel_bins=num_mel_bins, low_freq=low_freq)
        self.num_mel_bins = num_mel_bins
        self.sample_rate = sample_rate

    @property
    def embed_dim(self) -> int:
        return 2 * self.num_mel_bins

    def example_input(self, batch: int, *, generator: torch.Generator | None = None) -> Tensor:
        """A random waveform batch (B, S) of 0.5 s, for generic tests."""
        return 0.1 * torch.randn(batch, self.sample_rate // 2, generator=generator)

    def forward(self, waveform: Tensor) -> Tensor:
        logmel = self.fbank(waveform)  # (B, T, F)
        logmel = logmel - logmel.mean(dim=(1, 2), keepdim=True)  # remove the clip's gain
        return torch.cat([logmel.mean(dim=1), logmel.std(dim=1)], dim=1)  # (B, 2F)


class ClipLevel(nn.Module):
    """Waveform (B, S) -> its mean power in dB, shape (B, 1)."""

    embed_dim = 1

    def example_input(self, batch: int, *, generator: torch.Generator | None = None) -> Tensor:
        """A random waveform batch (B, S) of 4000 samples, for generic tests."""
        return 0.1 * torch.randn(batch, 4000, generator=generator)

    def forward(self, waveform: Tensor) -> Tensor:
        power = waveform.double().pow(2).mean(dim=1, keepdim=True)  # (B, 1)
        return (10.0 * torch.log10(power.clamp_min(1e-20))).float()


@register_encoder("logmel-stats")
def _logmel_stats(**overrides) -> LogMelStats:
    return LogMelStats(**overrides)


@register_encoder("clip-level")
def _clip_level(**overrides) -> ClipLevel:
    return ClipLevel(**overrides)
