"""A torch `Dataset` of decoded clips, cached once in a float32 memory-mapped file (N, S).

The cache is keyed by the clip list (paths, sizes, modification times) and the loading settings
(level normalisation included), so a rerun reuses it; decoding never happens in DataLoader workers,
and reading a clip is a slice of the mapped file, deterministic (no randomness here: masks and
augmentation belong to the task). This is the only module of `asdlab.data` that imports torch.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import soundfile as sf
import torch
from numpy.typing import NDArray
from torch.utils.data import Dataset

from asdlab._io import atomic_path, atomic_write_text
from asdlab.data.audio import Fit, fit_length, load_audio
from asdlab.data.records import ClipRecord
from asdlab.errors import AudioError, ConfigError, DataError
from asdlab.features.level import LEVELS, Level, apply_level  # the function `Backbone` applies at inference

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; concurrent builders then both write (atomically)
    fcntl = None

__all__ = ["ClipDataset", "collate_clips", "common_duration", "map_ahead"]

T = TypeVar("T")

logger = logging.getLogger(__name__)

_CACHE_VERSION = 1


def common_duration(
    records: Sequence[ClipRecord], *, sample_rate: int = 16000
) -> tuple[float | None, list[tuple[Path, str]]]:
    """The most common clip length in seconds (ties: the longer), read from file headers only.

    Returns:
        (duration_s or None when no header is readable, [(path, problem) for unreadable headers]).
    """
    counts: collections.Counter[int] = collections.Counter()
    failures: list[tuple[Path, str]] = []
    for record in records:
        try:
            info = sf.info(str(record.path))
        except (RuntimeError, OSError) as error:  # soundfile's LibsndfileError is a RuntimeError
            failures.append((Path(record.path), f"unreadable audio header ({error})"))
            continue
        counts[round(info.frames * sample_rate / info.samplerate)] += 1
    if not counts:
        return None, failures
    samples = max(counts, key=lambda n: (counts[n], n))
    return samples / sample_rate, failures


def _cache_key(records: Sequence[ClipRecord], settings: dict[str, Any]) -> str:
    clips = []
    for record in records:
        try:
            stat = os.stat(record.path)
            clips.append([str(record.path), stat.st_size, stat.st_mtime_ns])
        except OSError:
            clips.append([str(record.path), None, None])
    text = json.dumps({"version": _CACHE_VERSION, "settings": settings, "clips": clips}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    """Exclusive lock so that ranks sharing a cache folder decode once (the others wait, then reuse)."""
    if fcntl is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def map_ahead(function: Callable[[int], T], count: int, *, threads: int, ahead: int | None = None) -> Iterator[T]:
    """function(0), function(1), ... function(count - 1) in order, computed by `threads` threads up to
    `ahead` items (default 2 x threads) before they are taken; threads = 0 computes each when taken.

    Decoding (libsndfile) and resampling (soxr) release the GIL, so threads decode in parallel with
    no copy between processes (a DataLoader worker moves every decoded batch through new shared memory).
    """
    if threads <= 0:
        yield from (function(i) for i in range(count))
        return
    ahead = ahead or 2 * threads
    with concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="asdlab-decode") as pool:
        pending: collections.deque = collections.deque()
        try:
            for i in range(count):
                pending.append(pool.submit(function, i))
                if len(pending) > ahead:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:  # stopped early: drop what was not started
            for future in pending:
                future.cancel()


class _Decoded:
    """Item i = (clip i decoded by `load`, None) or (None, (path, problem)): what `map_ahead` decodes."""

    def __init__(self, records: Sequence[ClipRecord], load: Callable[[str | os.PathLike], NDArray[np.float32]]):
        self.records, self.load = records, load

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> tuple[NDArray[np.float32] | None, tuple[str, str] | None]:
        try:
            return self.load(self.records[index].path), None
        except AudioError as error:
            return None, (str(error.path), error.problem)


class ClipDataset(Dataset):
    """Every clip of `records` decoded once to float32 at `sample_rate` and brought to one length.

    Args:
        records: the clips, in order (unreadable ones are reported and skipped).
        sample_rate: Hz (clips at other rates are resampled).
        duration_s: length every clip is brought to; None = the most common length.
        fit: "pad" (zeros) or "tile" short clips; long clips are cut to their first `duration_s`
            seconds. "crop" cuts long clips and leaves short ones short: items then differ in
            length (batch them with `collate_clips`).
        cache_dir: folder of the memory-mapped cache (`clips-<key>.npy` + `.json`), reused when
            the clips and settings are unchanged; None = decode into memory.
        progress: called as progress(done, total) while decoding.
        level: "rms" scales each decoded clip, over its own samples before padding / tiling /
            cutting, to `asdlab.features.level.TYPICAL_RMS` (what `Backbone(level="rms")` does to
            a whole clip at inference); "none" (default) keeps the file's level. The cache stores
            the normalised clips and its key includes the level.
        num_workers: threads decoding (and resampling) clips in parallel while the cache is built.

    Attributes:
        records: the clips kept, aligned with the items.
        failures: (path, problem) of each clip skipped.
        num_samples: S, the stored length.
        duration_s: S / sample_rate.
        cache_path: the `.npy` file, or None in memory.

    Raises:
        DataError: no records, or no clip could be decoded.
        ConfigError: a bad `fit`, `duration_s` or `level`.
    """

    def __init__(
        self,
        records: Sequence[ClipRecord],
        *,
        sample_rate: int = 16000,
        duration_s: float | None = None,
        fit: Fit = "pad",
        cache_dir: str | os.PathLike | None = None,
        progress: Callable[[int, int], None] | None = None,
        level: Level = "none",
        num_workers: int = 0,
    ):
        if fit not in ("pad", "tile", "crop"):
            raise ConfigError(f"fit must be 'pad', 'tile' or 'crop', got {fit!r}")
        if level not in LEVELS:
            raise ConfigError(f"level must be one of {', '.join(LEVELS)}, got {level!r}")
        if duration_s is not None and duration_s <= 0:
            raise ConfigError(f"duration_s must be > 0, got {duration_s}")
        records = list(records)
        if not records:
            raise DataError("no clips to build a dataset from")
        header_failures: list[tuple[Path, str]] = []
        if duration_s is None:
            duration_s, header_failures = common_duration(records, sample_rate=sample_rate)
            if duration_s is None:
                raise DataError(f"none of the {len(records)} clips is readable, e.g. {header_failures[0]}")
        self.sample_rate = sample_rate
        self.fit = fit
        self.level = level
        self.num_workers = num_workers
        self.num_samples = round(duration_s * sample_rate)
        self.duration_s = self.num_samples / sample_rate
        self.cache_path: Path | None = None
        self._array: NDArray[np.float32] | None = None

        settings = {"sample_rate": sample_rate, "num_samples": self.num_samples, "fit": fit, "level": level}
        if cache_dir is None:
            array, lengths, kept, failures = self._decode(records, None, progress)
        else:
            key = _cache_key(records, settings)
            self.cache_path = Path(cache_dir) / f"clips-{key}.npy"
            with _lock(Path(cache_dir) / f"clips-{key}.lock"):
                cached = self._read_cache(records)
                if cached is None:
                    self._decode(records, self.cache_path, progress)
                    cached = self._read_cache(records)
                    assert cached is not None, "the cache just written must be readable"
            lengths, kept, failures = cached
            array = None
        if not kept:
            raise DataError(f"none of the {len(records)} clips could be decoded, e.g. {failures[0]}")
        self._array = array
        self.lengths = lengths
        self.records: list[ClipRecord] = kept
        self.failures: list[tuple[Path, str]] = failures

    def _meta_path(self) -> Path:
        assert self.cache_path is not None
        return self.cache_path.with_suffix(".json")

    def _read_cache(self, records: Sequence[ClipRecord]) -> tuple[NDArray[np.int64], list, list] | None:
        """(lengths, kept records, failures) of a finished cache, or None. The JSON is written last."""
        meta_path = self._meta_path()
        if not (meta_path.is_file() and self.cache_path.is_file()):
            return None
        try:
            meta = json.loads(meta_path.read_text())
            by_path = {str(r.path): r for r in records}
            kept = [by_path[p] for p in meta["kept"]]
        except (json.JSONDecodeError, KeyError) as error:
            logger.warning("%s: unreadable cache description (%s); decoding again", meta_path, error)
            return None
        failures = [(Path(p), problem) for p, problem in meta["failures"]]
        logger.info("reusing %d decoded clips from %s", len(kept), self.cache_path)
        return np.asarray(meta["lengths"], dtype=np.int64), kept, failures

    def _load(self, path: str | os.PathLike) -> NDArray[np.float32]:
        """One clip at `sample_rate`, level-normalised over its own length, then brought to `num_samples`."""
        wave = load_audio(path, sample_rate=self.sample_rate)
        if self.level != "none":
            wave = apply_level(torch.from_numpy(wave), self.level).numpy()
        return fit_length(wave, self.num_samples, fit=self.fit)

    def _decode(
        self, records: Sequence[ClipRecord], path: Path | None, progress: Callable[[int, int], None] | None
    ) -> tuple[NDArray[np.float32] | None, NDArray[np.int64], list[ClipRecord], list[tuple[Path, str]]]:
        """Decode into memory (`path` None) or into the cache file, then write its description."""
        rows: list[NDArray[np.float32]] = []
        kept: list[ClipRecord] = []
        failures: list[tuple[Path, str]] = []
        lengths: list[int] = []
        with contextlib.ExitStack() as stack:
            array = None
            if path is not None:
                tmp = stack.enter_context(atomic_path(path, suffix=".npy"))
                array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32,
                                                  shape=(len(records), self.num_samples))
            decoded = map_ahead(_Decoded(records, self._load).__getitem__, len(records), threads=self.num_workers)
            for i, (record, (wave, problem)) in enumerate(zip(records, decoded, strict=True)):
                if problem is not None:
                    logger.warning("skipping %s: %s", *problem)
                    failures.append((Path(problem[0]), problem[1]))
                else:
                    row = np.zeros(self.num_samples, np.float32)
                    row[: len(wave)] = wave
                    if array is None:
                        rows.append(row)
                    else:
                        array[len(kept)] = row
                    lengths.append(len(wave))
                    kept.append(record)
                if progress is not None:
                    progress(i + 1, len(records))
            if array is not None:
                array.flush()  # rows past the kept ones (skipped clips) stay zero and unused
                del array
        if failures:
            logger.warning("%d of %d clip(s) could not be decoded", len(failures), len(records))
        lengths_array = np.asarray(lengths, dtype=np.int64)
        if path is not None:
            meta = {
                "version": _CACHE_VERSION,
                "kept": [str(r.path) for r in kept],
                "lengths": lengths,
                "failures": [[str(p), problem] for p, problem in failures],
                "sample_rate": self.sample_rate,
                "num_samples": self.num_samples,
                "fit": self.fit,
                "level": self.level,
            }
            atomic_write_text(self._meta_path(), json.dumps(meta))
            return None, lengths_array, kept, failures
        stacked = np.stack(rows) if rows else np.zeros((0, self.num_samples), np.float32)
        return stacked, lengths_array, kept, failures

    def _data(self) -> NDArray[np.float32]:
        if self._array is None:
            # Opened lazily in each process: a DataLoader worker maps the file itself instead of
            # receiving the whole array pickled.
            self._array = np.load(self.cache_path, mmap_mode="r")
        return self._array

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        if self.cache_path is not None:
            state["_array"] = None
        return state

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, Any]:
        """{"waveform": float32 (S,) (shorter with fit="crop"), "index": index}."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"clip {index} out of range for {len(self)} clips")
        index = index % len(self)
        length = int(self.lengths[index])
        row = np.array(self._data()[index, :length], dtype=np.float32)  # a writable copy of the mapped row
        return {"waveform": torch.from_numpy(row), "index": index}


def collate_clips(items: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Batch `ClipDataset` items of any lengths: zero-padded "waveform" (B, S_max), "length" (B,), "index" (B,)."""
    lengths = torch.tensor([len(item["waveform"]) for item in items], dtype=torch.long)
    waveform = torch.zeros(len(items), int(lengths.max()), dtype=torch.float32)
    for row, item in enumerate(items):
        waveform[row, : len(item["waveform"])] = item["waveform"]
    index = torch.tensor([int(item["index"]) for item in items], dtype=torch.long)
    return {"waveform": waveform, "length": lengths, "index": index}
