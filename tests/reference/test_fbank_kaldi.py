"""asdlab's torch fbank against kaldi-native-fbank (independent C++ Kaldi) on real DCASE 2023 clips.

EAT's own configuration (128 bins from 20 Hz) leaves mel bin 3 empty and kaldi-native-fbank
refuses it (EAT.md "Front end"), so the shared code path is compared on the two nearest
configurations it accepts: 128 bins from 30 Hz and 126 bins from 20 Hz.
Both sides get identical float32 samples: EAT's scaling (soundfile floats in [-1, 1], clip mean
removed) is the asserted case; Kaldi's int16 scaling (x 32768) is checked with a looser bound.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from asdlab.features import KaldiFbank

knf = pytest.importorskip("kaldi_native_fbank")
sf = pytest.importorskip("soundfile")

CONFIGS = [(128, 30.0), (126, 20.0)]


def _knf_fbank(samples: np.ndarray, num_bins: int, low_freq: float, *, window_type: str = "hanning",
               snip_edges: bool = True) -> np.ndarray:
    opts = knf.FbankOptions()
    opts.frame_opts.dither = 0.0  # knf's default is 3e-5
    opts.frame_opts.window_type = window_type
    opts.frame_opts.snip_edges = snip_edges
    opts.mel_opts.num_bins = num_bins
    opts.mel_opts.low_freq = low_freq
    extractor = knf.OnlineFbank(opts)
    extractor.accept_waveform(16000, samples.tolist())
    extractor.input_finished()
    return np.stack([extractor.get_frame(i) for i in range(extractor.num_frames_ready)])


@pytest.fixture(scope="module")
def clips(dcase_samples_dir: Path) -> dict[str, np.ndarray]:
    """One full-length clip per machine type (7 types, 10 s and 12 s), mean removed, float32."""
    chosen: dict[str, np.ndarray] = {}
    for path in sorted(dcase_samples_dir.glob("*.wav")):
        machine = path.name.split("_")[0]
        if machine not in chosen:
            samples, rate = sf.read(path, dtype="float32")
            assert rate == 16000 and samples.ndim == 1
            chosen[machine] = samples - samples.mean()
    if len(chosen) < 5:
        pytest.skip(f"need clips of at least 5 machine types in {dcase_samples_dir}, found {sorted(chosen)}")
    return chosen


def _max_difference(clips: dict[str, np.ndarray], num_bins: int, low_freq: float, scale: float,
                    **kwargs: object) -> tuple[float, str]:
    front_end = KaldiFbank(num_mel_bins=num_bins, low_freq=low_freq, **kwargs)
    worst, where = 0.0, ""
    for machine, samples in clips.items():
        x = samples * np.float32(scale)
        expected = _knf_fbank(x, num_bins, low_freq, **kwargs)
        ours = front_end(torch.from_numpy(x)).numpy()
        assert ours.shape == expected.shape, machine
        diff = float(np.abs(ours - expected).max())
        if diff > worst:
            worst, where = diff, machine
    return worst, where


@pytest.mark.parametrize(("num_bins", "low_freq"), CONFIGS)
def test_matches_kaldi_native_fbank_at_eat_scaling(clips, num_bins, low_freq):
    worst, machine = _max_difference(clips, num_bins, low_freq, scale=1.0)
    print(f"[-1, 1] samples, {num_bins} bins from {low_freq} Hz, {len(clips)} clips: "
          f"max |torch - knf| = {worst:.2e} log-mel ({machine})")
    assert worst <= 1e-3


@pytest.mark.parametrize(("num_bins", "low_freq"), CONFIGS)
def test_matches_kaldi_native_fbank_at_int16_scaling(clips, num_bins, low_freq):
    # At int16 scale nothing falls under the float32-eps floor, so bins ~9 decades below their
    # frame's peak power (the lowest mel bins after pre-emphasis, on quiet clips) are compared
    # too; there float32 FFT round-off in either implementation reaches a few 1e-3.
    worst, machine = _max_difference(clips, num_bins, low_freq, scale=32768.0)
    print(f"int16-scaled samples, {num_bins} bins from {low_freq} Hz, {len(clips)} clips: "
          f"max |torch - knf| = {worst:.2e} log-mel ({machine})")
    assert worst <= 1e-2


@pytest.mark.parametrize(("window_type", "snip_edges"), [("povey", True), ("hamming", False), ("hanning", False)])
def test_other_windows_and_reflected_edges(clips, window_type, snip_edges):
    subset = dict(list(clips.items())[:2])
    worst, machine = _max_difference(subset, 128, 30.0, scale=1.0, window_type=window_type, snip_edges=snip_edges)
    print(f"{window_type}, snip_edges={snip_edges}: max |torch - knf| = {worst:.2e} ({machine})")
    assert worst <= 1e-3
