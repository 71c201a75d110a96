"""Stage (4): fit a backend per machine on normal training embeddings, score the test clips.

Thresholds need scores of normal clips that the backend has not memorised (a kNN bank scores
its own members 0), so training scores are computed out-of-fold: each fold is scored by a
backend fitted on the other folds, with folds drawn within each domain.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from asdlab.backends.thresholds import ThresholdMethod, decide, fit_threshold
from asdlab.embeddings.table import EmbeddingTable
from asdlab.errors import DataError
from asdlab.metrics.files import write_anomaly_scores, write_decisions

__all__ = ["Backend", "MachineScores", "score_machines", "write_score_files"]

logger = logging.getLogger(__name__)


class Backend(Protocol):
    def fit(self, X: NDArray[np.floating], y=None, *, domains: NDArray[np.str_] | None = None) -> "Backend": ...

    def score_samples(self, X: NDArray[np.floating]) -> NDArray[np.float64]: ...


@dataclass(frozen=True)
class MachineScores:
    """Scores of one (machine, section): test clips, out-of-fold training clips, decisions."""

    machine: str
    section: str
    test_filenames: NDArray[np.str_]
    test_scores: NDArray[np.float64]
    train_scores: NDArray[np.float64]
    threshold: float
    decisions: NDArray[np.int64]


def _out_of_fold_scores(
    make_backend: Callable[[], Backend],
    X: NDArray[np.floating],
    domains: NDArray[np.str_],
    *,
    n_folds: int,
    seed: int,
) -> NDArray[np.float64]:
    rng = np.random.default_rng(seed)
    fold = np.empty(len(X), dtype=np.int64)
    for domain in np.unique(domains):
        members = np.flatnonzero(domains == domain)
        fold[rng.permutation(members)] = np.arange(len(members)) % n_folds
    scores = np.empty(len(X), dtype=np.float64)
    for k in range(n_folds):
        held_out = fold == k
        if held_out.all() or not held_out.any():
            continue
        backend = make_backend().fit(X[~held_out], domains=domains[~held_out])
        scores[held_out] = backend.score_samples(X[held_out])
    return scores


def score_machines(
    table: EmbeddingTable,
    make_backend: Callable[[], Backend],
    *,
    threshold_method: ThresholdMethod = "gamma",
    n_folds: int = 5,
    seed: int = 0,
) -> list[MachineScores]:
    """Fit `make_backend()` per (machine, section) on its train rows and score its test rows.

    Args:
        table: embeddings of train and test clips (column `split`).
        make_backend: returns a fresh, unfitted backend (fit / score_samples, higher = anomalous).
        threshold_method: how the decision threshold is set from out-of-fold training scores.
        n_folds: folds for the out-of-fold training scores.
        seed: fold assignment.

    Raises:
        DataError: a machine has test clips but no training clips.
    """
    results = []
    for machine, section in sorted(set(zip(table.machine.tolist(), table.section.tolist()))):
        rows = (table.machine == machine) & (table.section == section)
        train = table.select(rows & (table.split == "train"))
        test = table.select(rows & (table.split == "test"))
        if len(test) == 0:
            continue
        if len(train) == 0:
            raise DataError(f"machine {machine!r} section {section}: test clips but no training clips")
        train_domains = np.where(train.domain == "", "source", train.domain)
        backend = make_backend().fit(train.embeddings, domains=train_domains)
        test_scores = np.asarray(backend.score_samples(test.embeddings), dtype=np.float64)
        train_scores = _out_of_fold_scores(
            make_backend, train.embeddings, train_domains, n_folds=min(n_folds, len(train)), seed=seed
        )
        threshold = fit_threshold(train_scores, method=threshold_method)
        results.append(
            MachineScores(
                machine=machine,
                section=section,
                test_filenames=test.filename,
                test_scores=test_scores,
                train_scores=train_scores,
                threshold=float(threshold),
                decisions=decide(test_scores, threshold).astype(np.int64),
            )
        )
        logger.info("scored %s section %s: %d test clips", machine, section, len(test))
    return results


def write_score_files(results: list[MachineScores], out_dir: str | Path) -> list[Path]:
    """Write `anomaly_score_*` and `decision_result_*` CSVs for every machine; returns their paths."""
    written = []
    for r in results:
        written.append(write_anomaly_scores(out_dir, r.machine, r.section, r.test_filenames, r.test_scores))
        written.append(write_decisions(out_dir, r.machine, r.section, r.test_filenames, r.decisions))
    return written
