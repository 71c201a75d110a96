"""BEATs' front end (x 2^15, povey-window Kaldi fbank, its normalisation) against kaldi-native-fbank on real
DCASE 2023 clips. BEATs' own 128 bins from 20 Hz leave mel bin 3 empty, which kaldi-native-fbank refuses, so
the nearest configuration it accepts is compared (128 bins from 30 Hz), as for EAT in test_fbank_kaldi.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from asdlab.features import KaldiFbank
from asdlab.features.normalize import BEATS_FBANK_MEAN, BEATS_FBANK_STD, beats_input

knf = pytest.importorskip("kaldi_native_fbank")
sf = pytest.importorskip("soundfile")


def _knf_povey(samples: np.ndarray) -> np.ndarray:
    opts = knf.FbankOptions()
    opts.frame_opts.dither = 0.0
    opts.frame_opts.window_type = "povey"  # torchaudio's default, which BEATs keeps
    opts.mel_opts.num_bins = 128
    opts.mel_opts.low_freq = 30.0
    extractor = knf.OnlineFbank(opts)
    extractor.accept_waveform(16000, samples.tolist())
    extractor.input_finished()
    return np.stack([extractor.get_frame(i) for i in range(extractor.num_frames_ready)])


def test_beats_input_matches_kaldi_native_fbank(dcase_samples_dir: Path):
    paths = sorted(dcase_samples_dir.glob("*.wav"))[:3]
    if not paths:
        pytest.skip(f"no clips in {dcase_samples_dir}")
    front_end = KaldiFbank(num_mel_bins=128, low_freq=30.0, window_type="povey")
    worst = 0.0
    for path in paths:
        samples, rate = sf.read(path, dtype="float32")
        assert rate == 16000
        ours = beats_input(torch.from_numpy(samples), max_frames=None, front_end=front_end)[0, 0].numpy()
        expected = (_knf_povey(samples * np.float32(32768.0)) - BEATS_FBANK_MEAN) / (2 * BEATS_FBANK_STD)
        frames = ours.shape[0]
        assert frames == expected.shape[0] // 16 * 16  # cut to whole patches, nothing padded
        worst = max(worst, float(np.abs(ours - expected[:frames]).max()))
    print(f"BEATs input, {len(paths)} clips: max |ours - knf| = {worst:.2e} (normalised units)")
    assert worst <= 1e-2 / (2 * BEATS_FBANK_STD)  # the int16-scale bound of test_fbank_kaldi.py, normalised
