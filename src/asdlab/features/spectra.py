"""Linear-magnitude inputs of Wilkinghoff's two-branch CNN (DCASE 2023; seeds/ssl-featex-summary.md).

Branch 1 sees |FFT| of the whole clip, branch 2 a magnitude STFT (1024-point frames, hop 512,
periodic Hann, no centring: TensorFlow's `tf.signal.stft` defaults used by the reference system,
wilkinghoff/ssl4asd). Neither is log-compressed. The temporal-mean normalisation of the
spectrogram is part of the network, after StatEx augmentation: `subtract_time_mean` is the
function the encoder applies there, not a front-end step.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from asdlab.errors import ConfigError, DataError

__all__ = [
    "MagnitudeSpectrogram",
    "WholeClipSpectrum",
    "magnitude_spectrogram",
    "subtract_time_mean",
    "whole_clip_spectrum",
]


def _check_waveform(waveform: Tensor) -> None:
    if waveform.ndim == 0 or not waveform.is_floating_point():
        raise DataError(
            f"waveform must be a float tensor of shape (*, S), got {waveform.dtype} {tuple(waveform.shape)}"
        )


def whole_clip_spectrum(waveform: Tensor) -> Tensor:
    """|FFT| of each entire waveform, first half of the bins (DC up to, excluding, Nyquist).

    Args:
        waveform: (*, S) float samples.

    Returns:
        (*, S // 2) linear magnitudes; bin k is at k * sample_rate / S Hz.

    Raises:
        DataError: non-float input.
    """
    _check_waveform(waveform)
    num_samples = waveform.shape[-1]
    x = waveform if waveform.dtype == torch.float64 else waveform.float()
    return torch.fft.rfft(x).abs()[..., : num_samples // 2]


def magnitude_spectrogram(
    waveform: Tensor, *, n_fft: int = 1024, hop_length: int = 512, window: Tensor | None = None
) -> Tensor:
    """Linear-magnitude STFT, frames only where they fit (no centring or padding).

    Args:
        waveform: (*, S) float samples (Wilkinghoff: 16 kHz).
        n_fft: frame and FFT length in samples.
        hop_length: frame shift in samples.
        window: (n_fft,) window; periodic Hann (`tf.signal.hann_window`'s default) when None.

    Returns:
        (*, T, n_fft // 2 + 1) magnitudes, T = 1 + (S - n_fft) // hop_length.

    Raises:
        ConfigError: non-positive sizes or a window of the wrong length.
        DataError: non-float input or S < n_fft.
    """
    _check_waveform(waveform)
    if n_fft < 1 or hop_length < 1:
        raise ConfigError(f"n_fft and hop_length must be >= 1, got {n_fft} and {hop_length}")
    if waveform.shape[-1] < n_fft:
        raise DataError(f"waveform of {waveform.shape[-1]} samples is shorter than one {n_fft}-sample frame")
    x = waveform if waveform.dtype == torch.float64 else waveform.float()
    if window is None:
        window = torch.hann_window(n_fft, periodic=True, dtype=x.dtype, device=x.device)
    elif window.shape != (n_fft,):
        raise ConfigError(f"window must have shape ({n_fft},), got {tuple(window.shape)}")
    frames = x.unfold(-1, n_fft, hop_length)  # (*, T, n_fft) view
    return torch.fft.rfft(frames * window.to(device=x.device, dtype=x.dtype)).abs()


def subtract_time_mean(spectrogram: Tensor) -> Tensor:
    """Remove each frequency bin's mean over time (Wilkinghoff's "CMN-like normalisation").

    Args:
        spectrogram: (*, T, F).

    Returns:
        (*, T, F) with zero mean over T per bin.
    """
    return spectrogram - spectrogram.mean(dim=-2, keepdim=True)


class WholeClipSpectrum(nn.Module):
    """`whole_clip_spectrum` as a module: (*, S) -> (*, S // 2)."""

    def forward(self, waveform: Tensor) -> Tensor:
        return whole_clip_spectrum(waveform)


class MagnitudeSpectrogram(nn.Module):
    """`magnitude_spectrogram` as a module, the window a non-persistent buffer: (*, S) -> (*, T, F)."""

    def __init__(self, *, n_fft: int = 1024, hop_length: int = 512) -> None:
        super().__init__()
        if n_fft < 1 or hop_length < 1:
            raise ConfigError(f"n_fft and hop_length must be >= 1, got {n_fft} and {hop_length}")
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.register_buffer("window", torch.hann_window(n_fft, periodic=True), persistent=False)

    def forward(self, waveform: Tensor) -> Tensor:
        return magnitude_spectrogram(waveform, n_fft=self.n_fft, hop_length=self.hop_length, window=self.window)
