"""load_audio / load_clips on tiny WAVs written into tmp_path: channels, rates, lengths, bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asdlab.data import fit_length, load_audio, load_clips, parse_clip_name
from asdlab.data import audio as audio_module
from asdlab.errors import AudioError, DataError

RATE = 16000


def _write(path: Path, data: np.ndarray, rate: int = RATE, subtype: str | None = None,
           format: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, data, rate, subtype=subtype, format=format)
    return path


def _ramp(n: int, channels: int = 1) -> np.ndarray:
    """(n, channels) float32; channel c holds (c + 1) * 0.1 * a ramp, so channels are told apart."""
    ramp = np.linspace(-1, 1, n, dtype=np.float32)[:, None]
    return ramp * (0.1 * np.arange(1, channels + 1, dtype=np.float32))


def test_mono_roundtrip_dtype_and_shape(tmp_path):
    data = _ramp(800)
    wave = load_audio(_write(tmp_path / "a.wav", data, subtype="FLOAT"))
    assert wave.dtype == np.float32 and wave.shape == (800,) and wave.flags.c_contiguous
    np.testing.assert_array_equal(wave, data[:, 0])


def test_channel_selection_on_8_channel_extensible_wav(tmp_path):
    data = _ramp(400, channels=8)
    path = _write(tmp_path / "m.wav", data, subtype="PCM_16", format="WAVEX")  # as MIMII ships them
    assert sf.info(path).format == "WAVEX"
    for channel in (0, 7):
        np.testing.assert_allclose(load_audio(path, channel=channel), data[:, channel], atol=1 / 32768)


def test_channel_out_of_range(tmp_path):
    path = _write(tmp_path / "stereo.wav", _ramp(400, channels=2))
    with pytest.raises(AudioError, match=r"stereo.wav: channel 2 requested but the file has 2 channel\(s\)"):
        load_audio(path, channel=2)
    with pytest.raises(AudioError, match="channel -1 requested"):
        load_audio(path, channel=-1)


@pytest.mark.parametrize("use_soxr", [True, False])
def test_resampling_length_dtype_and_content(tmp_path, monkeypatch, use_soxr):
    if not use_soxr:
        monkeypatch.setattr(audio_module, "soxr", None)  # the scipy fallback
    t = np.arange(4410) / 44100
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    wave = load_audio(_write(tmp_path / "cd.wav", tone, rate=44100, subtype="FLOAT"), sample_rate=RATE)
    assert wave.dtype == np.float32 and wave.shape == (1600,)
    expected = 0.5 * np.sin(2 * np.pi * 440 * np.arange(1600) / RATE)
    # Away from the edges, where the filters' transients live, the 440 Hz tone survives.
    np.testing.assert_allclose(wave[200:-200], expected[200:-200], atol=2e-3)


def test_wrong_rate_without_resampling(tmp_path):
    path = _write(tmp_path / "r.wav", _ramp(441), rate=44100)
    with pytest.raises(AudioError, match=r"r.wav: sample rate 44100 Hz, expected 16000 Hz \(resampling disabled\)"):
        load_audio(path, resample=False)


@pytest.mark.parametrize(("fit", "n", "expected"), [
    ("pad", 7, [1, 2, 3, 0, 0, 0, 0]),
    ("tile", 7, [1, 2, 3, 1, 2, 3, 1]),
    ("crop", 7, [1, 2, 3]),
    ("pad", 2, [1, 2]),
    ("tile", 2, [1, 2]),
    ("crop", 2, [1, 2]),
])
def test_fit_length(fit, n, expected):
    out = fit_length(np.array([1, 2, 3], np.float32), n, fit=fit)
    np.testing.assert_array_equal(out, np.array(expected, np.float32))
    assert out.dtype == np.float32


def test_fit_length_rejects_bad_arguments():
    with pytest.raises(DataError, match="fit='stretch'"):
        fit_length(np.ones(3, np.float32), 5, fit="stretch")
    with pytest.raises(DataError, match="must be positive"):
        fit_length(np.ones(3, np.float32), 0)


def test_duration_in_seconds(tmp_path):
    path = _write(tmp_path / "short.wav", _ramp(800))
    assert load_audio(path, duration_s=0.1).shape == (1600,)
    assert load_audio(path, duration_s=0.01).shape == (160,)


@pytest.mark.parametrize(("make", "match"), [
    (lambda p: p.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" * 4), "unreadable or corrupt"),
    (lambda p: p.write_bytes(b""), r"empty file \(0 bytes\)"),
    (lambda p: p.write_text("not audio at all\n" * 20), "not an audio file"),
    (lambda p: _write(p, np.zeros((0, 1), np.float32)), r"empty audio file \(0 samples\)"),
    (lambda p: _write(p, np.zeros(400, np.float32)), "all-silent audio"),
    (lambda p: _write(p, np.full(400, 1e-9, np.float32), subtype="FLOAT"), "all-silent audio"),
    (lambda p: _write(p, np.array([0.1, np.nan, 0.2], np.float32), subtype="FLOAT"), "NaN or inf"),
    (lambda p: _write(p, np.array([0.1, np.inf, 0.2], np.float32), subtype="FLOAT"), "NaN or inf"),
])
def test_bad_files_raise_audio_error_naming_the_file(tmp_path, make, match):
    path = tmp_path / "bad.wav"
    make(path)
    with pytest.raises(AudioError, match=match) as info:
        load_audio(path)
    assert info.value.path == path and str(path) in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(AudioError, match="file not found"):
        load_audio(tmp_path / "nope.wav")


def test_load_clips_skips_bad_clips_and_reports_them(tmp_path, caplog):
    good = [_write(tmp_path / f"fan/train/section_00_source_train_normal_000{i}_m-n_W.wav", _ramp(100 * (i + 1)))
            for i in range(3)]
    bad = _write(tmp_path / "fan/train/section_00_source_train_normal_0009_m-n_W.wav", np.zeros(100, np.float32))
    records = [parse_clip_name(p) for p in (good[0], bad, good[1], good[2])]
    calls = []
    audio, kept, failures = load_clips(records, duration_s=0.02, stack=True,
                                       progress=lambda done, total: calls.append((done, total)))
    assert audio.shape == (3, 320) and audio.dtype == np.float32
    assert [r.path for r in kept] == good
    assert failures == [(bad, failures[0][1])] and "all-silent" in failures[0][1]
    assert calls[-1] == (4, 4) and len(calls) == 4
    assert "0009_m-n_W.wav" in caplog.text
    # One by one and batched agree.
    np.testing.assert_array_equal(audio[1], load_audio(good[1], duration_s=0.02))


def test_load_clips_without_stack_keeps_lengths_and_stack_needs_equal_lengths(tmp_path):
    records = [parse_clip_name(_write(tmp_path / f"fan/train/section_00_source_train_normal_000{i}_a_1.wav",
                                      _ramp(100 * (i + 1)))) for i in range(2)]
    audio, _, failures = load_clips(records)
    assert [len(a) for a in audio] == [100, 200] and failures == []
    with pytest.raises(DataError, match=r"different lengths \[100, 200\]"):
        load_clips(records, stack=True)
