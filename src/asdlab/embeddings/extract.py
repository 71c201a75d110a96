"""Embed many clips with a backbone (waveform batch -> embedding batch) into an EmbeddingTable.

Bad clips are reported and skipped; the rest are embedded. Clips are batched in file order,
and a batch is closed early when the clip length changes, so no clip is padded or cropped
unless the caller asks for a fixed `duration_s`.
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

__all__ = ["ClipFailure", "EmbeddedClips", "ExtractionResult", "embed_clips", "extract_embeddings"]

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
    """Embed every readable clip of `records` with `backbone`; never raises for bad clips.

    Args: as `extract_embeddings`.

    Returns:
        `EmbeddedClips` (possibly with no rows).
    """
    backbone = backbone.to(device).eval()
    kept: list[ClipRecord] = []
    chunks: list[np.ndarray] = []
    failures: list[ClipFailure] = []
    batch_records: list[ClipRecord] = []
    batch_waves: list[np.ndarray] = []

    def flush() -> None:
        if not batch_waves:
            return
        waves = torch.from_numpy(np.stack(batch_waves)).to(device)  # (B, S)
        chunks.append(backbone(waves).float().cpu().numpy())
        kept.extend(batch_records)
        batch_records.clear()
        batch_waves.clear()

    total = len(records)
    if progress is not None:
        progress(0, total)
    for done, record in enumerate(records, start=1):
        try:
            wave = load_audio(record.path, sample_rate=sample_rate, duration_s=duration_s)
        except AudioError as error:
            logger.warning("skipping %s", error)
            failures.append(ClipFailure(Path(record.path), error.problem))
            continue
        if batch_waves and len(wave) != len(batch_waves[0]):
            flush()
        batch_records.append(record)
        batch_waves.append(wave)
        if len(batch_waves) == batch_size:
            flush()
            if progress is not None:
                progress(done, total)
    flush()
    if progress is not None:
        progress(total, total)
    embeddings = np.concatenate(chunks) if chunks else np.zeros((0, 0), dtype=np.float32)
    return EmbeddedClips(records=tuple(kept), embeddings=embeddings, failures=tuple(failures))


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
        The embeddings table and the clips that failed (each also logged as a warning).

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
