"""A detection system from its parts: backbone preset -> embeddings -> backend -> score files -> metric.

Files in, files out: the embeddings table, the DCASE score/decision CSVs and, when the test
clips carry labels, the evaluation table are all written under the system's folder.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from asdlab.backends.thresholds import ThresholdMethod
from asdlab.data.index import index_dataset
from asdlab.embeddings.extract import ClipFailure, ProgressCallback, extract_embeddings
from asdlab.encoders.backbone import Pooling, build_backbone
from asdlab.metrics.dcase import EvaluationSummary
from asdlab.metrics.files import evaluate_scores_dir, write_summary_csv
from asdlab.pipeline.scoring import Backend, score_machines, write_score_files

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
    make_backend: Callable[[], Backend],
    encoder_options: dict | None = None,
    weights: str | Path | None = None,
    pooling: Pooling | None = None,
    threshold_method: ThresholdMethod = "gamma",
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
        make_backend: returns a fresh unfitted backend.
        encoder_options: keyword overrides for the preset.
        weights: the encoder's weights file; None = the preset's initialisation.
        pooling: clip pooling of EAT presets ("cls", "mean", "both"); None = the default.
        threshold_method: decision threshold from out-of-fold training scores.
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
    results = score_machines(extraction.table, make_backend, threshold_method=threshold_method)
    write_score_files(results, out_dir)
    summary = None
    test_labels = extraction.table.label[extraction.table.split == "test"]
    if len(test_labels) and (test_labels != "").all():
        summary = evaluate_scores_dir(out_dir, data_root)
        write_summary_csv(summary, out_dir / "evaluation.csv")
    logger.info("%s: %d clips embedded, %d skipped", name, len(extraction.table), len(extraction.failures))
    return SystemResult(name=name, out_dir=out_dir, summary=summary, failures=extraction.failures)
