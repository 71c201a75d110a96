"""Read clips as float32 mono waveforms: channel choice, resampling, fixed length, validation.

soundfile reads every DCASE year and MIMII's 8-channel WAVE_FORMAT_EXTENSIBLE files; soxr
resamples (scipy's polyphase filter when soxr is missing). A bad file raises an `AudioError`
naming it; `load_clips` reports such files and goes on with the rest (STYLE.md "Errors").
"""

from __future__ import annotations

import io
import logging
import math
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
import soundfile as sf
from numpy.typing import NDArray

from asdlab.data.records import ClipRecord
from asdlab.errors import AudioError, DataError

try:
    import soxr
except ImportError:  # soxr is a dependency, but a broken wheel should not stop loading
    soxr = None

__all__ = ["Fit", "AudioInfo", "load_audio", "decode_audio", "probe_audio", "fit_length", "LoadedClips", "load_clips"]

logger = logging.getLogger(__name__)

Fit = Literal["pad", "tile", "crop"]

# Peak below which a clip counts as silent: under one 24-bit step (2**-23 ~ 1.2e-7), so any
# real recording passes, while digital silence and denormal-level float noise do not.
SILENCE_FLOOR = 1e-7


def load_audio(
    path: str | os.PathLike,
    *,
    sample_rate: int = 16000,
    channel: int = 0,
    duration_s: float | None = None,
    fit: Fit = "pad",
    resample: bool = True,
    silence_floor: float = SILENCE_FLOOR,
    max_duration_s: float | None = None,
) -> NDArray[np.float32]:
    """Load one channel of a clip as float32 in [-1, 1].

    Args:
        path: audio file (WAV, FLAC, ...).
        sample_rate: output rate in Hz; other rates are resampled unless `resample` is False.
        channel: channel to keep, 0-based (0 = the near/legacy mic in 2026 and MIMII data).
        duration_s: target length in seconds; None keeps the clip's own length.
        fit: how to reach `duration_s` (see `fit_length`).
        resample: if False, a file at another rate raises instead of being resampled.
        silence_floor: a clip whose peak |x| is at or below this counts as silent.
        max_duration_s: refuse (before decoding) a clip longer than this; None = no limit.

    Returns:
        Waveform of shape (S,), float32, C-contiguous.

    Raises:
        AudioError: the file is missing, not a regular file, empty, not audio, truncated, unreadable
            or corrupt, has 0 samples, lacks `channel`, holds NaN/inf, is silent, is longer than
            `max_duration_s`, or has the wrong rate with `resample=False`.
    """
    path = Path(path)
    if not path.exists():
        problem = "broken symbolic link" if path.is_symlink() else "file not found"
        raise AudioError(path, problem)
    if not path.is_file():
        raise AudioError(path, "not a regular file")
    if path.stat().st_size == 0:
        raise AudioError(path, "empty file (0 bytes)")
    return _decode(path, path, sample_rate=sample_rate, channel=channel, duration_s=duration_s, fit=fit,
                   resample=resample, silence_floor=silence_floor, max_duration_s=max_duration_s)


def decode_audio(
    data: bytes,
    name: str,
    *,
    sample_rate: int = 16000,
    channel: int = 0,
    silence_floor: float = SILENCE_FLOOR,
    max_duration_s: float | None = None,
) -> NDArray[np.float32]:
    """`load_audio` for a file held in memory (an upload): the same checks, the same samples.

    Args:
        data: the file's bytes (WAV, FLAC, ...).
        name: what error messages call it (e.g. the upload's file name).
        sample_rate, channel, silence_floor, max_duration_s: as in `load_audio`.

    Raises:
        AudioError: as `load_audio`, with `path` = `name`.
    """
    if not data:
        raise AudioError(name, "empty file (0 bytes)")
    return _decode(io.BytesIO(data), name, sample_rate=sample_rate, channel=channel, duration_s=None, fit="pad",
                   resample=True, silence_floor=silence_floor, max_duration_s=max_duration_s)


# libsndfile's header log holds `data : <declared> (should be <present>)` when a WAV's data chunk is cut
# short; 0 and 0xFFFFFFFF are the "length unknown" sizes of streamed WAVs, which are not truncated.
_DATA_CHUNK_LOG = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
_UNKNOWN_SIZES = (0, 0xFFFFFFFF)


def _truncation(extra_info: str) -> str | None:
    match = _DATA_CHUNK_LOG.search(extra_info)
    if match is None:
        return None
    declared, present = int(match[1]), int(match[2])
    if declared in _UNKNOWN_SIZES or declared <= present:
        return None
    return f"truncated file: the header declares {declared} bytes of audio, the file holds {present}"


class AudioInfo(NamedTuple):
    """What a file's header says: sample rate (Hz), channels, samples per channel."""

    sample_rate: int
    channels: int
    frames: int

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate


def _libsndfile_problem(exc: Exception) -> str:
    text = str(exc)
    if "Format not recognised" in text:
        return "not an audio file (no format libsndfile reads: WAV, FLAC, OGG, ...)"
    if "unimplemented format" in text or "Malformed 'fmt '" in text:  # a codec tag libsndfile lacks
        return f"unknown or unsupported audio encoding ({text})"
    if "lost sync" in text:  # FLAC frames end early
        return f"truncated or corrupt audio data ({text})"
    return f"unreadable or corrupt audio file ({text})"


def _header(f: sf.SoundFile, name: str | os.PathLike) -> AudioInfo:
    truncated = _truncation(f.extra_info)
    if truncated:
        raise AudioError(name, truncated)
    return AudioInfo(f.samplerate, f.channels, f.frames)


def probe_audio(data: bytes, name: str) -> AudioInfo:
    """Check that in-memory bytes are audio libsndfile reads, and not truncated, without decoding them.

    Raises:
        AudioError: empty, not audio, an unknown encoding, a truncated or corrupt header.
    """
    if not data:
        raise AudioError(name, "empty file (0 bytes)")
    try:
        with sf.SoundFile(io.BytesIO(data)) as f:
            return _header(f, name)
    except (RuntimeError, OSError) as exc:  # soundfile's LibsndfileError is a RuntimeError
        raise AudioError(name, _libsndfile_problem(exc)) from None


def _decode(
    source: Path | io.BytesIO,
    name: str | os.PathLike,
    *,
    sample_rate: int,
    channel: int,
    duration_s: float | None,
    fit: Fit,
    resample: bool,
    silence_floor: float,
    max_duration_s: float | None,
) -> NDArray[np.float32]:
    try:
        with sf.SoundFile(source) as f:
            file_rate, n_channels, n_frames = _header(f, name)
            if max_duration_s is not None and n_frames > max_duration_s * file_rate:
                raise AudioError(name, f"clip of {n_frames / file_rate:.1f} s is longer than the "
                                       f"{max_duration_s:g} s limit")
            data = f.read(dtype="float32", always_2d=True)  # (S, C)
    except (RuntimeError, OSError) as exc:  # soundfile's LibsndfileError is a RuntimeError
        raise AudioError(name, _libsndfile_problem(exc)) from None
    n_samples = data.shape[0]
    if n_samples == 0:
        raise AudioError(name, "empty audio file (0 samples)")
    if n_frames > 0 and n_samples < n_frames:
        raise AudioError(name, f"truncated file: {n_samples} of the {n_frames} samples its header declares")
    if not 0 <= channel < n_channels:
        raise AudioError(name, f"channel {channel} requested but the file has {n_channels} channel(s)")
    wave = data[:, channel]
    if not np.isfinite(wave).all():
        raise AudioError(name, f"channel {channel} contains NaN or inf samples")
    peak = float(np.abs(wave).max())
    if peak <= silence_floor:
        raise AudioError(name, f"all-silent audio (channel {channel} peak {peak:.3g} <= {silence_floor:.3g})")
    if file_rate != sample_rate:
        if not resample:
            raise AudioError(name, f"sample rate {file_rate} Hz, expected {sample_rate} Hz (resampling disabled)")
        wave = _resample(wave, file_rate, sample_rate)
    if duration_s is not None:
        wave = fit_length(wave, round(duration_s * sample_rate), fit=fit)
    return np.ascontiguousarray(wave, dtype=np.float32)


def _resample(wave: NDArray[np.float32], rate_in: int, rate_out: int) -> NDArray[np.float32]:
    """Resample (S,) -> (round(S * rate_out / rate_in),)."""
    if soxr is not None:
        return soxr.resample(wave, rate_in, rate_out, quality="HQ")
    from scipy.signal import resample_poly

    g = math.gcd(rate_in, rate_out)
    return resample_poly(wave, rate_out // g, rate_in // g).astype(np.float32)


def fit_length(wave: NDArray[np.float32], n_samples: int, *, fit: Fit = "pad") -> NDArray[np.float32]:
    """Bring a waveform (S,) to `n_samples`.

    Args:
        wave: waveform of shape (S,).
        n_samples: target length; must be positive.
        fit: "pad" appends zeros to short clips; "tile" repeats short clips; both crop long
            clips to their first `n_samples`. "crop" only crops long clips and leaves short
            ones as they are (for front ends that take a padding mask).

    Returns:
        Shape (n_samples,) for "pad"/"tile"; (min(S, n_samples),) for "crop".

    Raises:
        DataError: `fit` is unknown or `n_samples` is not positive.
    """
    if n_samples <= 0:
        raise DataError(f"target length must be positive, got {n_samples} samples")
    if fit not in ("pad", "tile", "crop"):
        raise DataError(f"fit={fit!r}: expected 'pad', 'tile' or 'crop'")
    n = len(wave)
    if n >= n_samples or fit == "crop":
        return wave[:n_samples]
    if fit == "pad":
        return np.pad(wave, (0, n_samples - n))
    return np.tile(wave, -(-n_samples // n))[:n_samples]


class LoadedClips(NamedTuple):
    """What `load_clips` returns; unpacks as `audio, records, failures = load_clips(...)`.

    Attributes:
        audio: one (S,) array per kept clip, or one (N, S) array with `stack=True`.
        records: the kept records, aligned with `audio`.
        failures: (path, problem) for each clip that could not be used.
    """

    audio: list[NDArray[np.float32]] | NDArray[np.float32]
    records: list[ClipRecord]
    failures: list[tuple[Path, str]]


def load_clips(
    records: Sequence[ClipRecord],
    *,
    sample_rate: int = 16000,
    channel: int = 0,
    duration_s: float | None = None,
    fit: Fit = "pad",
    resample: bool = True,
    stack: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> LoadedClips:
    """Load many clips; a bad clip is logged and listed in `failures`, and loading goes on.

    Args:
        records: clips to load, in order.
        sample_rate, channel, duration_s, fit, resample: as in `load_audio`.
        stack: return audio as one (N, S) array; needs equal lengths (set `duration_s`
            with fit "pad" or "tile").
        progress: called as progress(done, total) after each clip.

    Returns:
        `LoadedClips(audio, records, failures)`.

    Raises:
        DataError: `stack` is set and the loaded clips differ in length.
    """
    audio: list[NDArray[np.float32]] = []
    kept: list[ClipRecord] = []
    failures: list[tuple[Path, str]] = []
    for i, record in enumerate(records):
        try:
            audio.append(load_audio(
                record.path, sample_rate=sample_rate, channel=channel, duration_s=duration_s,
                fit=fit, resample=resample,
            ))
            kept.append(record)
        except AudioError as exc:
            logger.warning("skipping %s", exc)
            failures.append((Path(exc.path), exc.problem))
        if progress is not None:
            progress(i + 1, len(records))
    if failures:
        logger.warning("%d of %d clip(s) could not be loaded", len(failures), len(records))
    if not stack:
        return LoadedClips(audio, kept, failures)
    lengths = {len(a) for a in audio}
    if len(lengths) > 1:
        raise DataError(f"cannot stack clips of different lengths {sorted(lengths)}; "
                        "set duration_s with fit='pad' or 'tile'")
    n = lengths.pop() if lengths else 0
    return LoadedClips(np.stack(audio) if audio else np.zeros((0, n), np.float32), kept, failures)
