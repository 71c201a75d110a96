"""Embed many clips with a backbone (waveform batch -> embedding batch) into an EmbeddingTable.

Bad clips are reported once and skipped; the rest are embedded. Clips are batched in file order
with clips of their own length, so no clip is padded or cropped unless the caller asks for a fixed
`duration_s`, and a bad clip does not change the batches of the good ones.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from asdlab.data.audio import load_audio
from asdlab.data.records import ClipRecord
from asdlab.embeddings.table import EmbeddingTable
from asdlab.errors import AudioError, DataError

__all__ = ["ClipFailure", "EmbeddedClips", "ExtractionResult", "embed_batch", "embed_clips", "extract_embeddings"]

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


@torch.inference_mode()
def embed_batch(
    waves: Sequence[NDArray[np.float32]], backbone: nn.Module, *, device: str | torch.device = "cpu"
) -> tuple[NDArray[np.float32], tuple[int, ...], tuple[tuple[int, str], ...]]:
    """One forward pass over equal-length waveforms; a clip the model refuses is retried alone and reported.

    A model refuses input it cannot take (a clip shorter than one frame raises `DataError`); the batch is
    then embedded clip by clip, so only the clips at fault are lost.

    Args:
        waves: (S,) float32 waveforms of one length S.
        backbone: module mapping (B, S) to (B, D), in eval mode.
        device: where `backbone` lives.

    Returns:
        (embeddings (K, D) of the clips kept, their indices into `waves`, (index, problem) of the others).
    """
    try:
        batch = torch.from_numpy(np.stack(waves)).to(device)  # (B, S)
        return backbone(batch).float().cpu().numpy(), tuple(range(len(waves))), ()
    except DataError as error:
        if len(waves) == 1:
            return np.zeros((0, 0), np.float32), (), ((0, str(error)),)
    rows, kept, failed = [], [], []
    for i, wave in enumerate(waves):
        embedding, ok, problems = embed_batch([wave], backbone, device=device)
        if ok:
            rows.append(embedding)
            kept.append(i)
        else:
            failed.append((i, problems[0][1]))
    return (np.concatenate(rows) if rows else np.zeros((0, 0), np.float32)), tuple(kept), tuple(failed)


@torch.inference_mode()
def embed_clips(
    records: Sequence[ClipRecord],
    backbone: nn.Module,
    *,
    sample_rate: int = 16000,
    duration_s: float | None = None,
    batch_size: int = 16,
    device: str | torch.device = "cpu",
    progress: ProgressCallback | None = None,
) -> EmbeddedClips:
    """Embed every usable clip of `records` with `backbone`; never raises for bad clips.

    Clips are batched with others of the same length in file order, so a bad clip (skipped, or of
    another length) does not change which good clips share a batch. Each bad clip is logged once.

    Args: as `extract_embeddings`.

    Returns:
        `EmbeddedClips` (possibly with no rows).
    """
    backbone = backbone.to(device).eval()
    rows: dict[int, NDArray[np.float32]] = {}
    failures: dict[int, ClipFailure] = {}
    pending: dict[int, list[tuple[int, NDArray[np.float32]]]] = {}  # clip length -> (record index, wave)

    def flush(length: int) -> None:
        group = pending.pop(length, [])
        if not group:
            return
        embeddings, kept, failed = embed_batch([wave for _, wave in group], backbone, device=device)
        for row, i in enumerate(kept):
            rows[group[i][0]] = embeddings[row]
        for i, problem in failed:
            index = group[i][0]
            failures[index] = ClipFailure(Path(records[index].path), problem)
            logger.warning("skipping %s: %s", records[index].path, problem)

    total = len(records)
    if progress is not None:
        progress(0, total)
    for index, record in enumerate(records):
        try:
            wave = load_audio(record.path, sample_rate=sample_rate, duration_s=duration_s)
        except AudioError as error:
            logger.warning("skipping %s", error)
            failures[index] = ClipFailure(Path(record.path), error.problem)
            continue
        pending.setdefault(len(wave), []).append((index, wave))
        if len(pending[len(wave)]) == batch_size:
            flush(len(wave))
            if progress is not None:
                progress(index + 1, total)
    for length in list(pending):
        flush(length)
    if progress is not None:
        progress(total, total)
    kept = sorted(rows)
    embeddings = np.stack([rows[i] for i in kept]) if kept else np.zeros((0, 0), dtype=np.float32)
    return EmbeddedClips(records=tuple(records[i] for i in kept), embeddings=embeddings,
                         failures=tuple(failures[i] for i in sorted(failures)))


def extract_embeddings(
    records: Sequence[ClipRecord],
    backbone: nn.Module,
    *,
    sample_rate: int = 16000,
    duration_s: float | None = None,
    batch_size: int = 16,
    device: str | torch.device = "cpu",
    progress: ProgressCallback | None = None,
) -> ExtractionResult:
    """Embed every clip of `records` with `backbone`.

    Args:
        records: clips to embed (the table keeps their order, minus failures).
        backbone: module mapping a waveform batch (B, S) float32 to embeddings (B, D), e.g. a
            `asdlab.encoders.backbone.Backbone`.
        sample_rate: rate the backbone expects; clips are resampled to it.
        duration_s: pad/crop every clip to this length; None keeps each clip's own length.
        batch_size: clips per forward pass.
        device: where the backbone runs.
        progress: called as `progress(clips_done, clips_total)` after each batch.

    Returns:
        The embeddings table and the clips that failed (each also logged once as a warning).

    Raises:
        DataError: no clip at all could be embedded.
    """
    clips = embed_clips(
        records, backbone, sample_rate=sample_rate, duration_s=duration_s, batch_size=batch_size,
        device=device, progress=progress,
    )
    if not clips.records:
        raise DataError(f"none of the {len(records)} clips could be embedded ({len(clips.failures)} failed)")
    table = EmbeddingTable.from_records(list(clips.records), clips.embeddings)
    return ExtractionResult(table=table, failures=clips.failures)
