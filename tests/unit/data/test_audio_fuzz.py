"""Fuzzed audio files: whatever the bytes, loading returns a finite float32 waveform or raises AudioError naming the file."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf

from asdlab.data.audio import decode_audio, load_audio, probe_audio
from asdlab.errors import AudioError


def _clip(fmt: str, subtype: str) -> bytes:
    buffer = io.BytesIO()
    t = np.arange(4000) / 16000
    sf.write(buffer, (0.3 * np.sin(2 * np.pi * 300 * t)).astype(np.float32), 16000, format=fmt, subtype=subtype)
    return buffer.getvalue()


def _mutations(data: bytes, rng: np.random.Generator, count: int) -> list[bytes]:
    """Cut at a random point, overwrite random bytes (header-heavy), insert garbage, or shuffle blocks."""
    out = []
    for _ in range(count):
        kind = rng.integers(4)
        b = bytearray(data)
        if kind == 0:
            b = b[: rng.integers(0, len(b))]
        elif kind == 1:
            for _ in range(rng.integers(1, 8)):
                position = rng.integers(0, 64) if rng.random() < 0.7 else rng.integers(0, len(b))
                b[position] = rng.integers(0, 256)
        elif kind == 2:
            position = rng.integers(0, len(b))
            b[position:position] = rng.integers(0, 256, rng.integers(1, 200), dtype=np.uint8).tobytes()
        else:
            blocks = [b[i : i + 512] for i in range(0, len(b), 512)]
            rng.shuffle(blocks)
            b = bytearray(b"".join(blocks))
        out.append(bytes(b))
    return out


@pytest.mark.parametrize(("fmt", "subtype"), [("WAV", "PCM_16"), ("WAV", "FLOAT"), ("FLAC", "PCM_16")])
def test_mutated_files_load_or_raise_audio_error(tmp_path, fmt, subtype):
    rng = np.random.default_rng(7)
    outcomes = {"loaded": 0, "refused": 0}
    for i, data in enumerate(_mutations(_clip(fmt, subtype), rng, 60)):
        path = tmp_path / f"fuzz_{i}.wav"
        path.write_bytes(data)
        for load in (lambda: load_audio(path), lambda: decode_audio(data, path.name)):
            try:
                wave = load()
            except AudioError as error:
                assert path.name in str(error) and error.problem
                outcomes["refused"] += 1
                continue
            assert wave.dtype == np.float32 and wave.ndim == 1 and len(wave) > 0 and np.isfinite(wave).all()
            outcomes["loaded"] += 1
        try:
            probe_audio(data, path.name)
        except AudioError:
            pass
    assert outcomes["loaded"] > 0 and outcomes["refused"] > 0  # the mutations reach both outcomes


def test_file_and_bytes_decode_to_the_same_samples(tmp_path):
    for fmt, subtype in (("WAV", "PCM_16"), ("FLAC", "PCM_24")):
        data = _clip(fmt, subtype)
        path = tmp_path / f"clip.{fmt.lower()}"
        path.write_bytes(data)
        np.testing.assert_array_equal(load_audio(path, sample_rate=8000), decode_audio(data, "x", sample_rate=8000))


def test_truncated_wav_data_is_refused_but_a_streamed_wav_is_not(tmp_path):
    data = _clip("WAV", "PCM_16")
    with pytest.raises(AudioError, match=r"truncated file: the header declares 8000 bytes of audio, the file holds 1000"):
        decode_audio(data[:44 + 1000], "cut.wav")
    streamed = bytearray(data)
    streamed[40:44] = (0xFFFFFFFF).to_bytes(4, "little")  # "length unknown", as a WAV written to a pipe
    assert len(decode_audio(bytes(streamed), "stream.wav")) == 4000
    with pytest.raises(AudioError, match="unknown or unsupported audio encoding"):
        decode_audio(data[:20] + (0xFFFE).to_bytes(2, "little") + data[22:], "codec.wav")
    link = tmp_path / "dangling.wav"
    link.symlink_to(tmp_path / "nowhere.wav")
    with pytest.raises(AudioError, match="broken symbolic link"):
        load_audio(link)
    (tmp_path / "folder.wav").mkdir()
    with pytest.raises(AudioError, match="not a regular file"):
        load_audio(tmp_path / "folder.wav")
