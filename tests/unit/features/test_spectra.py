"""Inputs of the two-branch CNN: whole-clip |FFT| and magnitude STFT."""

from __future__ import annotations

import math

import pytest
import torch

from asdlab.errors import ConfigError, DataError
from asdlab.features import (
    MagnitudeSpectrogram,
    WholeClipSpectrum,
    magnitude_spectrogram,
    subtract_time_mean,
    whole_clip_spectrum,
)


def _sine(freq_hz: float, num_samples: int, amplitude: float = 0.5, rate: float = 16_000.0) -> torch.Tensor:
    return amplitude * torch.sin(2 * math.pi * freq_hz * torch.arange(num_samples, dtype=torch.float64) / rate)


def test_whole_clip_spectrum_of_a_sine_peaks_at_its_bin():
    # 1 s at 16 kHz: bins are 1 Hz apart, so 1000 Hz is bin 1000 with magnitude A * S / 2.
    x = _sine(1000.0, 16_000)
    spectrum = whole_clip_spectrum(x)
    assert spectrum.shape == (8000,)
    assert spectrum.argmax() == 1000
    assert spectrum[1000] == pytest.approx(0.5 * 16_000 / 2, rel=1e-9)
    assert whole_clip_spectrum(torch.randn(3, 1001)).shape == (3, 500)  # odd S: first S // 2 bins
    assert whole_clip_spectrum(x.float()).dtype == torch.float32


def test_whole_clip_spectrum_batched_equals_one_by_one_and_module():
    x = torch.randn(3, 4000, generator=torch.Generator().manual_seed(0))
    batched = WholeClipSpectrum()(x)
    torch.testing.assert_close(batched, torch.stack([whole_clip_spectrum(row) for row in x]))


def test_magnitude_spectrogram_shapes():
    assert magnitude_spectrogram(torch.zeros(2, 160_000)).shape == (2, 311, 513)  # 10 s
    assert magnitude_spectrogram(torch.zeros(288_000)).shape == (561, 513)  # 18 s, Wilkinghoff's clips
    assert MagnitudeSpectrogram(n_fft=512, hop_length=256)(torch.zeros(1, 16_000)).shape == (1, 61, 257)


def test_magnitude_spectrogram_matches_torch_stft_and_finds_a_sine():
    x = _sine(1000.0, 16_000).float()
    ours = magnitude_spectrogram(x[None])
    window = torch.hann_window(1024, periodic=True)
    reference = torch.stft(x[None], 1024, 512, window=window, center=False, return_complex=True).abs()
    torch.testing.assert_close(ours, reference.transpose(-1, -2))  # (B, F, T) -> (B, T, F)
    assert (ours[0].argmax(dim=-1) == 64).all()  # 1000 Hz / (16000 / 1024 Hz per bin)
    batched = torch.randn(3, 8000, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(
        MagnitudeSpectrogram()(batched), torch.stack([magnitude_spectrogram(row) for row in batched])
    )


def test_subtract_time_mean():
    spec = torch.rand(2, 30, 513)
    out = subtract_time_mean(spec)
    torch.testing.assert_close(out.mean(dim=1), torch.zeros(2, 513), atol=1e-6, rtol=0)
    torch.testing.assert_close(out[:, 1] - out[:, 0], spec[:, 1] - spec[:, 0])


def test_spectra_errors():
    with pytest.raises(DataError, match="shorter than one 1024-sample frame"):
        magnitude_spectrogram(torch.zeros(1000))
    with pytest.raises(ConfigError, match="window"):
        magnitude_spectrogram(torch.zeros(2048), window=torch.ones(512))
    with pytest.raises(DataError, match="float"):
        whole_clip_spectrum(torch.zeros(100, dtype=torch.int16))
