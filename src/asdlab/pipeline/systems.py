"""A detection system from its parts: backbone preset -> embeddings -> backend -> score files -> metric.

Files in, files out: the embeddings table, then everything `score_embeddings` writes (DCASE
score/decision CSVs, out-of-fold training scores, settings.json and, when the test clips carry
labels, the evaluation table) under the system's folder.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from asdlab.data.index import index_dataset
from asdlab.embeddings.extract import ClipFailure, ProgressCallback, extract_embeddings
from asdlab.encoders.backbone import Pooling, build_backbone
from asdlab.metrics.dcase import EvaluationSummary
from asdlab.pipeline.scoring import ScoreSettings, score_embeddings

__all__ = ["SystemResult", "run_embedding_system"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SystemResult:
    """What one system produced: its folder, the evaluation (None without labels), skipped clips."""

    name: str
    out_dir: Path
    summary: EvaluationSummary | None
    failures: tuple[ClipFailure, ...]


def run_embedding_system(
    name: str,
    data_root: str | Path,
    out_dir: str | Path,
    *,
    encoder: str,
    scoring: ScoreSettings = ScoreSettings(),
    encoder_options: dict | None = None,
    weights: str | Path | None = None,
    pooling: Pooling | None = None,
    sample_rate: int = 16000,
    batch_size: int = 16,
    seed: int = 0,
    progress: ProgressCallback | None = None,
) -> SystemResult:
    """Embed every clip under `data_root`, score each machine's test clips, evaluate if labelled.

    Args:
        name: the system's name, used in logs and reports.
        data_root: a DCASE-layout dataset root.
        out_dir: the system's output folder (embeddings.npz, score files, evaluation.csv).
        encoder: backbone preset (`asdlab.encoders.backbone.build_backbone`), e.g. "logmel-stats".
        scoring: backend, normalisation and threshold of the scoring stage (`score_embeddings`).
        encoder_options: keyword overrides for the preset.
        weights: the encoder's weights file; None = the preset's initialisation.
        pooling: clip pooling of EAT presets ("cls", "mean", "both"); None = the default.
        sample_rate: rate the clips are loaded at (and the backbone built for).
        batch_size: clips per forward pass.
        seed: initialises an encoder that gets no `weights`, without touching global random state.
        progress: called as `progress(clips_done, clips_total)`.
    """
    out_dir = Path(out_dir)
    records = [r for r in index_dataset(data_root) if r.split in ("train", "test")]
    options = encoder_options or {}
    model = build_backbone(
        encoder, pooling=pooling, weights=weights, sample_rate=sample_rate, seed=seed, **options
    )
    extraction = extract_embeddings(
        records, model, sample_rate=model.sample_rate, batch_size=batch_size, progress=progress
    )
    extraction.table.save(out_dir / "embeddings.npz")
    labelled = (extraction.table.label[extraction.table.split == "test"] != "").all()
    scored = score_embeddings(extraction.table, out_dir, scoring, ground_truth=data_root if labelled else None)
    logger.info("%s: %d clips embedded, %d skipped", name, len(extraction.table), len(extraction.failures))
    return SystemResult(name=name, out_dir=out_dir, summary=scored.summary, failures=extraction.failures)
