"""Kaldi fbank: shapes, a literal per-frame reference, the mel bank, hand-derived cases, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from asdlab.errors import ConfigError, DataError
from asdlab.features import KaldiFbank, count_frames, fbank, kaldi_mel_banks, kaldi_window

LOG_EPS = math.log(torch.finfo(torch.float32).eps)  # -15.942...


def _noise(*shape: int, seed: int = 0) -> torch.Tensor:
    return 0.1 * torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _hz(mel: np.ndarray) -> np.ndarray:
    return 700.0 * np.expm1(mel / 1127.0)


def _mel(hz: np.ndarray | float) -> np.ndarray:
    return 1127.0 * np.log1p(np.asarray(hz, dtype=np.float64) / 700.0)


def _reference_fbank(x: np.ndarray, bank: np.ndarray, *, window_type: str, snip_edges: bool,
                     preemph: float, remove_dc: bool, use_energy: bool, raw_energy: bool) -> np.ndarray:
    """Kaldi's steps one frame at a time, float64, written from the Kaldi docs (no vectorisation)."""
    size, shift, padded = 400, 160, 512
    n = len(x)
    if snip_edges:
        starts = [t * shift for t in range(1 + (n - size) // shift)]
    else:
        starts = [t * shift + shift // 2 - size // 2 for t in range((n + shift // 2) // shift)]
    window = kaldi_window(window_type, size).float().double().numpy()  # the module keeps it in float32
    rows = []
    for start in starts:
        frame = np.empty(size)
        for k in range(size):
            s = start + k
            while s < 0 or s >= n:  # Kaldi's ExtractWindow mirror
                s = -s - 1 if s < 0 else 2 * n - 1 - s
            frame[k] = x[s]
        if remove_dc:
            frame = frame - frame.mean()
        energy = float(np.sum(frame**2))
        emphasised = frame.copy()
        for k in range(size - 1, 0, -1):
            emphasised[k] -= preemph * frame[k - 1]
        emphasised[0] -= preemph * frame[0]
        windowed = emphasised * window
        if not raw_energy:
            energy = float(np.sum(windowed**2))
        power = np.abs(np.fft.rfft(windowed, n=padded)) ** 2
        feats = np.log(np.maximum(bank @ power, np.finfo(np.float32).eps))
        if use_energy:
            feats = np.concatenate([[max(math.log(max(energy, np.finfo(np.float32).eps)), 0.0)], feats])
        rows.append(feats)
    return np.stack(rows)


def test_ten_seconds_at_16k_give_998_frames_of_128_bins():
    x = _noise(2, 160_000)
    out = fbank(x)
    assert out.shape == (2, 998, 128)
    assert out.dtype == torch.float32
    assert count_frames(160_000) == 998
    assert count_frames(160_000, snip_edges=False) == 1000
    assert fbank(x[0], snip_edges=False).shape == (1000, 128)
    assert count_frames(399) == 0


def test_batched_equals_one_by_one():
    x = _noise(3, 4000)
    batched = fbank(x)
    one_by_one = torch.stack([fbank(row) for row in x])
    torch.testing.assert_close(batched, one_by_one, rtol=0, atol=1e-6)
    assert fbank(x.reshape(3, 1, 4000)).shape == (3, 1, 23, 128)


@pytest.mark.parametrize("window_type", ["hanning", "povey", "hamming", "rectangular", "blackman"])
@pytest.mark.parametrize("snip_edges", [True, False])
def test_matches_a_literal_per_frame_kaldi_reference(window_type, snip_edges):
    x = _noise(3000, seed=1).double() + 0.05  # a DC offset, so DC removal matters
    bank = kaldi_mel_banks(40, 512, 16000.0, 20.0, 0.0).double().numpy()
    expected = _reference_fbank(x.numpy(), bank, window_type=window_type, snip_edges=snip_edges,
                                preemph=0.97, remove_dc=True, use_energy=False, raw_energy=True)
    out = fbank(x, num_mel_bins=40, window_type=window_type, snip_edges=snip_edges)
    assert out.dtype == torch.float64
    np.testing.assert_allclose(out.numpy(), expected, rtol=0, atol=1e-9)


@pytest.mark.parametrize(("preemph", "remove_dc", "raw_energy"), [(0.0, True, True), (0.97, False, False),
                                                                   (0.5, True, False), (1.0, False, True)])
def test_option_combinations_match_the_reference(preemph, remove_dc, raw_energy):
    x = _noise(2000, seed=2).double() + 0.02
    bank = kaldi_mel_banks(23, 512, 16000.0, 20.0, 0.0).double().numpy()
    expected = _reference_fbank(x.numpy(), bank, window_type="hamming", snip_edges=True, preemph=preemph,
                                remove_dc=remove_dc, use_energy=True, raw_energy=raw_energy)
    out = fbank(x, num_mel_bins=23, window_type="hamming", preemphasis_coefficient=preemph,
                remove_dc_offset=remove_dc, use_energy=True, raw_energy=raw_energy)
    np.testing.assert_allclose(out.numpy(), expected, rtol=0, atol=1e-9)


def test_energy_goes_first_or_last_and_mean_subtraction_centres_features():
    x = _noise(4000)
    plain = fbank(x)
    first = fbank(x, use_energy=True)
    last = fbank(x, use_energy=True, htk_compat=True)
    assert first.shape == (23, 129)
    torch.testing.assert_close(first[:, 1:], plain)
    torch.testing.assert_close(last[:, :-1], plain)
    torch.testing.assert_close(first[:, 0], last[:, -1])
    centred = fbank(x, subtract_mean=True)
    torch.testing.assert_close(centred.mean(dim=0), torch.zeros(128), atol=1e-5, rtol=0)
    linear = fbank(x, use_log_fbank=False, use_power=False)
    assert (linear >= 0).all()


def test_sine_at_4khz_lands_in_mel_bin_96():
    # mel(4000) = 1127 ln(1 + 4000/700) = 2146.08; EAT bins start at mel(20) = 31.75 with spacing
    # (mel(8000) - mel(20)) / 129 = 21.77, so centre b sits at 31.75 + (b + 1) 21.77: b = 96
    # is 0.13 spacings below 4 kHz (weight 0.87), b = 97 gets 0.13, b = 95 nothing.
    t = torch.arange(16_000) / 16_000.0
    out = fbank(0.5 * torch.sin(2 * math.pi * 4000.0 * t))
    assert (out.argmax(dim=-1) == 96).all()
    bank = kaldi_mel_banks(128, 512, 16000.0, 20.0, 0.0)
    assert bank[96, 128] == pytest.approx(0.8775, abs=1e-3)
    assert bank[95, 128] == 0.0


def test_constant_signal_is_floored_at_float32_eps():
    out = fbank(torch.full((2, 1600), 0.25))
    torch.testing.assert_close(out, torch.full_like(out, LOG_EPS))


def test_eat_config_keeps_mel_bin_3_empty_like_torchaudio():
    bank = kaldi_mel_banks(128, 512, 16000.0, 20.0, 0.0)
    empty = (bank.sum(dim=1) == 0).nonzero().flatten().tolist()
    assert empty == [3]
    out = fbank(_noise(8000))
    torch.testing.assert_close(out[:, 3], torch.full_like(out[:, 3], LOG_EPS))
    assert (out[:, [2, 4]] > LOG_EPS + 1).all()
    # The configurations kaldi-native-fbank accepts have no empty bin.
    for bins, low in [(128, 30.0), (126, 20.0)]:
        assert (kaldi_mel_banks(bins, 512, 16000.0, low, 0.0).sum(dim=1) > 0).all()


@pytest.mark.parametrize(("bins", "n_fft", "rate", "low", "high"),
                         [(128, 512, 16000.0, 20.0, 0.0), (126, 512, 16000.0, 20.0, -400.0),
                          (128, 1024, 32000.0, 0.0, 15000.0)])  # the last: EfficientAT's front end
def test_mel_bank_triangles(bins, n_fft, rate, low, high):
    bank = kaldi_mel_banks(bins, n_fft, rate, low, high).double().numpy()
    assert bank.shape == (bins, n_fft // 2 + 1)
    assert (bank >= 0).all() and bank.max() <= 1.0 + 1e-6
    assert (bank[:, -1] == 0).all()  # Nyquist
    top = high if high > 0 else rate / 2 + high
    edges_mel = np.linspace(_mel(low), _mel(top), bins + 2)
    fft_hz = np.arange(n_fft // 2 + 1) * rate / n_fft
    fft_mel = _mel(fft_hz)
    # Support: exactly the FFT bins strictly inside (left edge, right edge) in Hz, except bins
    # sitting on an edge (15 kHz is bin 480 at 32 kHz / 1024), where float32 leaves ~1e-5.
    left_hz, right_hz = _hz(edges_mel[:-2]), _hz(edges_mel[2:])
    inside = (fft_hz[None, :-1] > left_hz[:, None]) & (fft_hz[None, :-1] < right_hz[:, None])
    on_edge = np.minimum(np.abs(fft_mel[None, :-1] - edges_mel[:-2, None]),
                         np.abs(fft_mel[None, :-1] - edges_mel[2:, None])) < 1e-3
    np.testing.assert_array_equal((bank[:, :-1] > 0)[~on_edge], inside[~on_edge])
    assert (bank[:, :-1][on_edge] < 1e-4).all()
    # Equal spacing in mel: neighbouring triangles sum to 1 between the first and last centres.
    between = (fft_mel > edges_mel[1]) & (fft_mel < edges_mel[-2])
    np.testing.assert_allclose(bank[:, between].sum(axis=0), 1.0, atol=1e-5)


def test_mel_bank_peaks_at_one_on_a_fine_grid():
    fine = kaldi_mel_banks(128, 2**16, 16000.0, 20.0, 0.0)
    assert fine.max(dim=1).values.min() > 0.99
    assert kaldi_mel_banks(23, 512, 16000.0, 20.0, 0.0, dtype=torch.float64).dtype == torch.float64


def test_module_buffers_follow_dtype_and_input_device():
    module = KaldiFbank(num_mel_bins=64)
    assert module.state_dict() == {}  # nothing to save or load: a fixed front end
    assert module.num_features == 64
    x = _noise(2, 3200)
    out32 = module(x)
    out64 = module.double()(x.double())
    assert out64.dtype == torch.float64
    torch.testing.assert_close(out64.float(), out32, atol=1e-4, rtol=0)
    assert module(x).device == x.device
    if torch.cuda.is_available():
        torch.testing.assert_close(module.cuda()(x.cuda()).cpu(), out64.float(), atol=1e-3, rtol=0)


def test_dither_is_reproducible_with_a_generator_and_tiny_dither_changes_nothing():
    x = _noise(3200)
    a = fbank(x, dither=1.0, generator=torch.Generator().manual_seed(3))
    b = fbank(x, dither=1.0, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert (a - fbank(x)).abs().max() > 1.0
    # The dither path materialises frames; with negligible noise it must equal the fast path
    # (float64, so float32 round-off of quiet bins does not blur the comparison).
    x = x.double()
    for kwargs in ({}, {"use_energy": True}, {"use_energy": True, "raw_energy": False, "window_type": "hamming"}):
        tiny = fbank(x, dither=1e-12, generator=torch.Generator().manual_seed(0), **kwargs)
        torch.testing.assert_close(tiny, fbank(x, **kwargs), atol=1e-6, rtol=0)


def test_errors_name_the_problem():
    with pytest.raises(ConfigError, match="window_type"):
        fbank(_noise(800), window_type="hann")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="low_freq"):
        kaldi_mel_banks(23, 512, 16000.0, 9000.0, 0.0)
    with pytest.raises(ConfigError, match="num_mel_bins"):
        kaldi_mel_banks(2, 512, 16000.0, 20.0, 0.0)
    with pytest.raises(ConfigError, match="preemphasis"):
        KaldiFbank(preemphasis_coefficient=1.5)
    with pytest.raises(DataError, match="shorter than one 400-sample frame"):
        fbank(_noise(399))
    with pytest.raises(DataError, match="float"):
        fbank(torch.zeros(800, dtype=torch.int16))
