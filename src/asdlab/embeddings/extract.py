"""Embed many clips with a backbone (waveform batch -> embedding batch) into an EmbeddingTable.

Bad clips are reported and skipped; the rest are embedded. Clips are batched in file order,
and a batch is closed early when the clip length changes, so no clip is padded or cropped
unless the caller asks for a fixed `duration_s`. Decoding and resampling can run in threads, a
batch at a time, while the model embeds the previous batches.
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

__all__ = ["ClipFailure", "EmbeddedClips", "ExtractionResult", "Precision", "embed_clips", "extract_embeddings",
           "iter_embedded_chunks", "resolve_device", "resolve_inference_precision"]

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
    state: dict = {"kept": [], "outputs": [], "failures": []}  # of the current chunk
    pending: list[tuple[Tensor, list[int]]] = []  # (rows (n, S), positions) waiting to fill a batch
    pending_rows = 0

    def flush() -> None:
        nonlocal pending_rows
        if not pending:
            return
        waves = pending[0][0] if len(pending) == 1 else torch.cat([rows for rows, _ in pending])  # (B, S)
        with torch.inference_mode(), torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=autocast):
            state["outputs"].append(backbone(waves.to(device, non_blocking=True)).float())  # left on the device
        state["kept"].extend(records[i] for _, positions in pending for i in positions)
        pending.clear()
        pending_rows = 0

    def finish_chunk() -> EmbeddedClips:
        flush()
        outputs = state["outputs"]
        embeddings = torch.cat(outputs).cpu().numpy() if outputs else np.zeros((0, 0), dtype=np.float32)
        clips = EmbeddedClips(records=tuple(state["kept"]), embeddings=embeddings, failures=tuple(state["failures"]))
        state.update(kept=[], outputs=[], failures=[])
        return clips

    if progress is not None:
        progress(0, total)
    batches = _DecodedBatches(records, size=batch_size, sample_rate=sample_rate, duration_s=duration_s,
                              pin=device.type == "cuda")
    per_chunk = chunk_size // batch_size
    for index, (runs, bad) in enumerate(map_ahead(batches.__getitem__, len(batches), threads=num_workers)):
        for position, path, problem in bad:
            logger.warning("skipping %s: %s", path, problem)
            state["failures"].append(ClipFailure(Path(path), problem))
        for positions, waves in runs:
            if pending and waves.shape[1] != pending[0][0].shape[1]:
                flush()  # a batch holds clips of one length
            taken = 0
            while taken < len(positions):
                room = batch_size - pending_rows
                pending.append((waves[taken : taken + room], positions[taken : taken + room]))
                pending_rows += len(pending[-1][1])
                taken += room
                if pending_rows == batch_size:
                    flush()
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
    """Embed every readable clip of `records` with `backbone`; never raises for bad clips.

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
        The embeddings table and the clips that failed (each also logged as a warning).

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
