"""Embed many clips with a backbone (waveform batch -> embedding batch) into an EmbeddingTable.

Bad clips are reported once and skipped; the rest are embedded. Clips are batched in file order
with clips of their own length, so no clip is padded or cropped unless the caller asks for a fixed
`duration_s`, and a bad clip does not change the batches of the good ones. Decoding and resampling
can run in threads, a batch at a time, while the model embeds the previous batches.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor, nn

from asdlab.data.audio import load_audio
from asdlab.data.dataset import map_ahead
from asdlab.data.records import ClipRecord
from asdlab.embeddings.table import EmbeddingTable
from asdlab.errors import AudioError, ConfigError, DataError

__all__ = ["ClipFailure", "EmbeddedClips", "ExtractionResult", "Precision", "embed_batch", "embed_clips",
           "extract_embeddings", "iter_embedded_chunks", "resolve_device", "resolve_inference_precision"]

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class ClipFailure:
    """A clip that could not be used, and why."""

    path: Path
    problem: str


@dataclass(frozen=True)
class ExtractionResult:
    """The table of the clips embedded and the clips skipped."""

    table: EmbeddingTable
    failures: tuple[ClipFailure, ...]


@dataclass(frozen=True)
class EmbeddedClips:
    """What `embed_clips` returns: the embedded clips in input order, and those that failed.

    Attributes:
        records: the clips embedded (input order, failures left out).
        embeddings: (N, D) float32, one row per record; (0, 0) when no clip could be embedded.
        failures: the clips that could not be read, and why.
    """

    records: tuple[ClipRecord, ...]
    embeddings: NDArray[np.float32]
    failures: tuple[ClipFailure, ...]


Precision = Literal["auto", "fp32", "bf16"]


def resolve_device(device: str | torch.device) -> torch.device:
    """`device` as a torch.device; "auto" is the GPU when there is one, else the CPU."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_inference_precision(precision: str, device: torch.device) -> str:
    """"auto" -> "bf16" on a GPU, "fp32" elsewhere; "fp32" / "bf16" as given.

    Raises:
        ConfigError: another value.
    """
    if precision not in ("auto", "fp32", "bf16"):
        raise ConfigError(f"precision must be auto, fp32 or bf16, got {precision!r}")
    if precision == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    return precision


class _DecodedBatches:
    """Item i = the clips records[i * size : (i + 1) * size] decoded: (runs, failures), runs of
    consecutive clips of one length stacked as (n, S) tensors (pinned for a GPU) with their
    positions, failures as (position, path, problem)."""

    def __init__(self, records: Sequence[ClipRecord], *, size: int, sample_rate: int, duration_s: float | None,
                 pin: bool):
        self.records, self.size = records, size
        self.sample_rate, self.duration_s, self.pin = sample_rate, duration_s, pin

    def __len__(self) -> int:
        return -(-len(self.records) // self.size)

    def __getitem__(self, index: int) -> tuple[list[tuple[list[int], Tensor]], list[tuple[int, str, str]]]:
        runs: list[tuple[list[int], list[np.ndarray]]] = []
        failures: list[tuple[int, str, str]] = []
        start = index * self.size
        for position in range(start, min(start + self.size, len(self.records))):
            record = self.records[position]
            try:
                wave = load_audio(record.path, sample_rate=self.sample_rate, duration_s=self.duration_s)
            except AudioError as error:
                failures.append((position, str(record.path), error.problem))
                continue
            if runs and len(runs[-1][1][0]) == len(wave):
                runs[-1][0].append(position)
                runs[-1][1].append(wave)
            else:
                runs.append(([position], [wave]))
        stacked = [(positions, torch.from_numpy(np.stack(waves))) for positions, waves in runs]
        if self.pin:  # page-locked, so the copy to the GPU runs asynchronously
            stacked = [(positions, waves.pin_memory()) for positions, waves in stacked]
        return stacked, failures


def _forward(
    waves: Tensor, backbone: nn.Module, device: torch.device, autocast: bool
) -> tuple[Tensor, tuple[int, ...], tuple[tuple[int, str], ...]]:
    """One forward pass over (B, S) equal-length waveforms; a batch the model refuses is retried clip by
    clip, so only the clips at fault are lost (a model raises `DataError` for input it cannot take, e.g.
    a clip shorter than one frame).

    Returns:
        (embeddings (K, D) float32 on `device`, indices of those K clips, (index, problem) of the others).
    """
    try:
        with torch.inference_mode(), torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=autocast):
            return backbone(waves.to(device, non_blocking=True)).float(), tuple(range(len(waves))), ()
    except DataError as error:
        if len(waves) == 1:
            return torch.zeros((0, 0), device=device), (), ((0, str(error)),)
    rows, kept, failed = [], [], []
    for i in range(len(waves)):
        embedding, ok, problems = _forward(waves[i : i + 1], backbone, device, autocast)
        if ok:
            rows.append(embedding)
            kept.append(i)
        else:
            failed.append((i, problems[0][1]))
    return (torch.cat(rows) if rows else torch.zeros((0, 0), device=device)), tuple(kept), tuple(failed)


def embed_batch(
    waves: Sequence[NDArray[np.float32]], backbone: nn.Module, *, device: str | torch.device = "auto",
    precision: Precision = "auto",
) -> tuple[NDArray[np.float32], tuple[int, ...], tuple[tuple[int, str], ...]]:
    """Embed equal-length waveforms in one forward pass; a clip the model refuses is retried alone and reported.

    Args:
        waves: (S,) float32 waveforms of one length S.
        backbone: module mapping (B, S) to (B, D), in eval mode, on `device`.
        device: where `backbone` lives ("auto" = the GPU when there is one).
        precision: as `extract_embeddings`.

    Returns:
        (embeddings (K, D) of the clips kept, their indices into `waves`, (index, problem) of the others).
    """
    device = resolve_device(device)
    autocast = resolve_inference_precision(precision, device) == "bf16"
    embeddings, kept, failed = _forward(torch.from_numpy(np.stack(waves)), backbone, device, autocast)
    return embeddings.cpu().numpy(), kept, failed


def iter_embedded_chunks(
    records: Sequence[ClipRecord],
    backbone: nn.Module,
    *,
    chunk_size: int,
    sample_rate: int = 16000,
    duration_s: float | None = None,
    batch_size: int = 16,
    device: str | torch.device = "auto",
    progress: ProgressCallback | None = None,
    num_workers: int = 0,
    precision: Precision = "auto",
) -> Iterator[tuple[int, EmbeddedClips]]:
    """Embed `records` chunk by chunk through one data pipeline: (start, clips of records[start :
    start + chunk_size]) for consecutive chunks, so a caller can save each while the next is decoded.

    Args: as `extract_embeddings`, and `chunk_size`, a multiple of `batch_size`.

    Raises:
        ConfigError: `chunk_size` is not a positive multiple of `batch_size`.
    """
    if batch_size < 1 or chunk_size < 1 or chunk_size % batch_size:
        raise ConfigError(f"chunk_size ({chunk_size}) must be a positive multiple of batch_size ({batch_size})")
    device = resolve_device(device)
    autocast = resolve_inference_precision(precision, device) == "bf16"
    backbone = backbone.to(device).eval()
    total = len(records)
    # Of the current chunk: embedded (position, row on the device), failures by position.
    state: dict = {"positions": [], "outputs": [], "failures": {}}
    pending: dict[int, list[tuple[list[int], Tensor]]] = {}  # clip length -> (positions, rows (n, S)) to batch

    def flush(length: int) -> None:
        group = pending.pop(length, [])
        if not group:
            return
        positions = [p for group_positions, _ in group for p in group_positions]
        waves = group[0][1] if len(group) == 1 else torch.cat([rows for _, rows in group])  # (B, S)
        embeddings, kept, failed = _forward(waves, backbone, device, autocast)
        if kept:
            state["positions"].extend(positions[i] for i in kept)
            state["outputs"].append(embeddings)  # left on the device until the chunk ends
        for i, problem in failed:
            path = records[positions[i]].path
            logger.warning("skipping %s: %s", path, problem)
            state["failures"][positions[i]] = ClipFailure(Path(path), problem)

    def finish_chunk() -> EmbeddedClips:
        for length in list(pending):
            flush(length)
        outputs, positions = state["outputs"], state["positions"]
        embeddings = torch.cat(outputs).cpu().numpy() if outputs else np.zeros((0, 0), dtype=np.float32)
        order = np.argsort(positions, kind="stable")  # batches by length finish out of file order
        failures = state["failures"]
        clips = EmbeddedClips(records=tuple(records[positions[i]] for i in order), embeddings=embeddings[order],
                              failures=tuple(failures[p] for p in sorted(failures)))
        state.update(positions=[], outputs=[], failures={})
        return clips

    if progress is not None:
        progress(0, total)
    batches = _DecodedBatches(records, size=batch_size, sample_rate=sample_rate, duration_s=duration_s,
                              pin=device.type == "cuda")
    per_chunk = chunk_size // batch_size
    for index, (runs, bad) in enumerate(map_ahead(batches.__getitem__, len(batches), threads=num_workers)):
        for position, path, problem in bad:
            logger.warning("skipping %s: %s", path, problem)
            state["failures"][position] = ClipFailure(Path(path), problem)
        for positions, waves in runs:
            length = waves.shape[1]
            taken = 0
            while taken < len(positions):
                group = pending.setdefault(length, [])
                room = batch_size - sum(len(p) for p, _ in group)
                group.append((positions[taken : taken + room], waves[taken : taken + room]))
                taken += room
                if sum(len(p) for p, _ in group) == batch_size:
                    flush(length)
        done = min((index + 1) * batch_size, total)
        if (index + 1) % per_chunk == 0 or done == total:
            start = (index // per_chunk) * chunk_size
            yield start, finish_chunk()
        if progress is not None:
            progress(done, total)


def embed_clips(
    records: Sequence[ClipRecord],
    backbone: nn.Module,
    *,
    sample_rate: int = 16000,
    duration_s: float | None = None,
    batch_size: int = 16,
    device: str | torch.device = "auto",
    progress: ProgressCallback | None = None,
    num_workers: int = 0,
    precision: Precision = "auto",
) -> EmbeddedClips:
    """Embed every usable clip of `records` with `backbone`; never raises for bad clips.

    Clips are batched with others of the same length in file order, so a bad clip (skipped, or of
    another length) does not change which good clips share a batch. Each bad clip is logged once.

    Args: as `extract_embeddings`.

    Returns:
        `EmbeddedClips` (possibly with no rows).
    """
    if not records:
        if progress is not None:
            progress(0, 0)
        return EmbeddedClips(records=(), embeddings=np.zeros((0, 0), dtype=np.float32), failures=())
    chunk = -(-len(records) // batch_size) * batch_size
    chunks = iter_embedded_chunks(
        records, backbone, chunk_size=chunk, sample_rate=sample_rate, duration_s=duration_s,
        batch_size=batch_size, device=device, progress=progress, num_workers=num_workers, precision=precision,
    )
    return next(chunks)[1]


def extract_embeddings(
    records: Sequence[ClipRecord],
    backbone: nn.Module,
    *,
    sample_rate: int = 16000,
    duration_s: float | None = None,
    batch_size: int = 16,
    device: str | torch.device = "auto",
    progress: ProgressCallback | None = None,
    num_workers: int = 0,
    precision: Precision = "auto",
) -> ExtractionResult:
    """Embed every clip of `records` with `backbone`.

    Args:
        records: clips to embed (the table keeps their order, minus failures).
        backbone: module mapping a waveform batch (B, S) float32 to embeddings (B, D), e.g. a
            `asdlab.encoders.backbone.Backbone`.
        sample_rate: rate the backbone expects; clips are resampled to it.
        duration_s: pad/crop every clip to this length; None keeps each clip's own length.
        batch_size: clips per forward pass.
        device: where the backbone runs; "auto" (default) = the GPU when there is one.
        progress: called as `progress(clips_done, clips_total)` after each batch.
        num_workers: threads decoding and resampling clips ahead of the model (0 = when needed, in
            this thread); batches go to a GPU from pinned memory.
        precision: "auto" (bf16 autocast on a GPU, fp32 elsewhere), "fp32" or "bf16". The front
            end's fbank always runs in fp32.

    Returns:
        The embeddings table and the clips that failed (each also logged once as a warning).

    Raises:
        DataError: no clip at all could be embedded.
    """
    clips = embed_clips(
        records, backbone, sample_rate=sample_rate, duration_s=duration_s, batch_size=batch_size,
        device=device, progress=progress, num_workers=num_workers, precision=precision,
    )
    if not clips.records:
        raise DataError(f"none of the {len(records)} clips could be embedded ({len(clips.failures)} failed)")
    table = EmbeddingTable.from_records(list(clips.records), clips.embeddings)
    return ExtractionResult(table=table, failures=clips.failures)
