"""ClipDataset(level="rms"): a clip's gain on disk does not reach the training waveform; honest cache keys."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from asdlab.data.dataset import ClipDataset
from asdlab.data.records import ClipRecord
from asdlab.errors import ConfigError
from asdlab.features.level import TYPICAL_RMS


def _write(folder: Path, name: str, wave: np.ndarray) -> ClipRecord:
    path = folder / name
    sf.write(path, wave.astype(np.float32), 16000, subtype="FLOAT")  # float WAV: 2x does not clip
    return ClipRecord(path=path, machine="fan", section="00", split="train", label="normal", domain="source")


@pytest.fixture
def clips(tmp_path) -> tuple[list[ClipRecord], np.ndarray]:
    wave = 0.1 * np.random.default_rng(0).standard_normal(1600)
    records = [_write(tmp_path, "x.wav", wave), _write(tmp_path, "x2.wav", 2.0 * wave),
               _write(tmp_path, "x03.wav", 0.3 * wave), _write(tmp_path, "short.wav", 3.0 * wave[:800])]
    return records, wave


def test_a_clip_scaled_on_disk_gives_the_same_training_waveform(clips):
    records, wave = clips
    data = ClipDataset(records, level="rms")
    x = data[0]["waveform"]
    assert torch.equal(data[1]["waveform"], x)  # a power-of-two gain is removed exactly
    torch.testing.assert_close(data[2]["waveform"], x, rtol=1e-5, atol=1e-7)
    assert float(x.pow(2).mean().sqrt()) == pytest.approx(TYPICAL_RMS, rel=1e-5)
    # A short clip is normalised over its own samples, then padded (what the backbone does to it whole).
    short = data[3]["waveform"]
    assert float(short[:800].pow(2).mean().sqrt()) == pytest.approx(TYPICAL_RMS, rel=1e-5)
    assert torch.all(short[800:] == 0)
    plain = ClipDataset(records)
    assert plain.level == "none"
    torch.testing.assert_close(plain[1]["waveform"], torch.from_numpy(2.0 * wave).float())


def test_the_cache_key_includes_the_level(clips, tmp_path):
    records, _ = clips
    cache = tmp_path / "cache"
    rms = ClipDataset(records, level="rms", cache_dir=cache)
    plain = ClipDataset(records, cache_dir=cache)
    assert rms.cache_path != plain.cache_path and len(list(cache.glob("clips-*.npy"))) == 2
    assert json.loads(rms.cache_path.with_suffix(".json").read_text())["level"] == "rms"
    again = ClipDataset(records, level="rms", cache_dir=cache)
    assert again.cache_path == rms.cache_path and torch.equal(again[1]["waveform"], rms[0]["waveform"])
    torch.testing.assert_close(again[2]["waveform"], rms[0]["waveform"], rtol=1e-5, atol=1e-7)


def test_unknown_level_is_refused(clips):
    with pytest.raises(ConfigError, match="level must be one of none, rms, got 'peak'"):
        ClipDataset(clips[0], level="peak")
