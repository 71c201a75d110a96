"""Stage (4): fit a backend per machine on normal training embeddings, score the test clips.

Thresholds need scores of normal clips that the backend has not memorised (a kNN bank scores
its own members 0), so training scores are computed out-of-fold: each fold is scored by a
backend fitted on the other folds, with folds drawn within each domain. The same out-of-fold
scores fit the optional per-machine normalisation (z-score or rank), which is applied to test
and training scores alike, so the threshold lives on the scale of the written scores.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
from numpy.typing import NDArray

from asdlab import __version__
from asdlab._io import atomic_write_text, sha256_file
from asdlab.backends.normalize import ScoreNormalizer
from asdlab.backends.registry import make_backend
from asdlab.backends.thresholds import ThresholdMethod, decide, fit_threshold
from asdlab.embeddings.table import EmbeddingTable
from asdlab.errors import ConfigError, DataError, EvaluationError
from asdlab.metrics.dcase import EvaluationSummary, evaluate
from asdlab.metrics.files import (
    MissingScores,
    align_scores,
    load_ground_truth,
    read_anomaly_scores,
    score_file_name,
    write_anomaly_scores,
    write_decisions,
    write_ground_truth,
    write_summary_csv,
)

__all__ = [
    "Backend",
    "Normalization",
    "MachineScores",
    "MachineReference",
    "fit_machine_reference",
    "score_machines",
    "write_score_files",
    "training_score_file_name",
    "write_training_scores",
    "read_training_scores",
    "SETTINGS_FILE",
    "GROUND_TRUTH_DIR",
    "ScoreSettings",
    "ScoringResult",
    "parse_params",
    "write_table_ground_truth",
    "score_embeddings",
]

logger = logging.getLogger(__name__)

Normalization = Literal["none", "zscore", "rank"]
_NORMALIZATIONS: tuple[str, ...] = ("none", "zscore", "rank")
_THRESHOLDS: tuple[str, ...] = ("gamma", "percentile")
SETTINGS_FILE = "settings.json"  # what produced a scores folder, beside its CSVs
GROUND_TRUTH_DIR = "ground_truth"  # labels an embeddings table carried, in the evaluator's layout


class Backend(Protocol):
    def fit(self, X: NDArray[np.floating], y=None, *, domains: NDArray[np.str_] | None = None) -> "Backend": ...

    def score_samples(self, X: NDArray[np.floating]) -> NDArray[np.float64]: ...


@dataclass(frozen=True)
class MachineScores:
    """Scores of one (machine, section): test clips, out-of-fold training clips, decisions.

    Test and training scores are on the same scale (normalised when asked), and so is `threshold`.
    """

    machine: str
    section: str
    test_filenames: NDArray[np.str_]
    test_scores: NDArray[np.float64]
    train_filenames: NDArray[np.str_]
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
    if len(X) < 2:
        raise DataError(f"out-of-fold training scores (for the decision threshold) need at least 2 training clips, "
                        f"got {len(X)}")
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
        try:
            backend = make_backend().fit(X[~held_out], domains=domains[~held_out])
        except DataError as error:
            raise DataError(f"out-of-fold training scores (for the decision threshold) fit the backend on "
                            f"{int((~held_out).sum())} of the {len(X)} training clips, and it cannot: {error}") from error
        scores[held_out] = backend.score_samples(X[held_out])
    return scores


@dataclass(frozen=True, eq=False)
class MachineReference:
    """What scoring one (machine, section) needs, fitted on its normal training embeddings.

    Attributes:
        backend: the fitted backend (higher = more anomalous).
        normalizer: the fitted per-machine normalisation, or None for "none".
        train_filenames: the training clips.
        train_scores: their out-of-fold scores, on the written (normalised) scale.
        threshold: the decision threshold on that scale.
    """

    machine: str
    section: str
    backend: Backend
    normalizer: ScoreNormalizer | None
    train_filenames: NDArray[np.str_]
    train_scores: NDArray[np.float64]
    threshold: float

    def score(self, embeddings: NDArray[np.floating]) -> NDArray[np.float64]:
        """Scores (N,) of embeddings (N, D) on the written scale; each row's score depends on that row only."""
        scores = np.asarray(self.backend.score_samples(embeddings), dtype=np.float64)
        return scores if self.normalizer is None else self.normalizer.transform(scores)

    def percentile(self, scores: NDArray[np.floating]) -> NDArray[np.float64]:
        """Percent (0-100) of the training clips' out-of-fold scores at or below each score."""
        ranked = np.sort(self.train_scores)
        return 100.0 * np.searchsorted(ranked, np.asarray(scores, dtype=np.float64), side="right") / len(ranked)


def _check_methods(threshold_method: str, normalization: str) -> None:
    if threshold_method not in _THRESHOLDS:
        raise ConfigError(f"threshold method must be one of {_THRESHOLDS}, got {threshold_method!r}")
    if normalization not in _NORMALIZATIONS:
        raise ConfigError(f"normalization must be one of {_NORMALIZATIONS}, got {normalization!r}")


def fit_machine_reference(
    train: EmbeddingTable,
    make_backend: Callable[[], Backend],
    *,
    threshold_method: ThresholdMethod = "gamma",
    normalization: Normalization = "none",
    n_folds: int = 5,
    seed: int = 0,
) -> MachineReference:
    """Fit the backend, the out-of-fold training scores, the normalisation and the threshold of one machine.

    Args:
        train: the training rows of one (machine, section).
        make_backend, threshold_method, normalization, n_folds, seed: as in `score_machines`.

    Raises:
        ConfigError: unknown threshold method or normalisation.
        DataError: no training rows, or more than one (machine, section).
    """
    _check_methods(threshold_method, normalization)
    pairs = set(zip(train.machine.tolist(), train.section.tolist()))
    if len(pairs) != 1:
        raise DataError(f"a machine reference is fitted on one (machine, section), got {sorted(pairs)}")
    machine, section = pairs.pop()
    train_domains = np.where(train.domain == "", "source", train.domain)
    try:  # too few clips fail in one of these three; the message names the machine and its clips
        backend = make_backend().fit(train.embeddings, domains=train_domains)
        train_scores = _out_of_fold_scores(
            make_backend, train.embeddings, train_domains, n_folds=min(n_folds, len(train)), seed=seed
        )
        normalizer = None
        if normalization != "none":
            normalizer = ScoreNormalizer(normalization).fit(train_scores)
            train_scores = normalizer.transform(train_scores)
        threshold = float(fit_threshold(train_scores, method=threshold_method))
    except DataError as error:
        counts = ", ".join(f"{d} {int((train_domains == d).sum())}" for d in np.unique(train_domains))
        raise DataError(f"{machine} section {section} ({len(train)} training clip(s): {counts}): {error}") from error
    return MachineReference(
        machine=machine, section=section, backend=backend, normalizer=normalizer,
        train_filenames=train.filename, train_scores=train_scores, threshold=threshold,
    )


def score_machines(
    table: EmbeddingTable,
    make_backend: Callable[[], Backend],
    *,
    threshold_method: ThresholdMethod = "gamma",
    normalization: Normalization = "none",
    n_folds: int = 5,
    seed: int = 0,
) -> list[MachineScores]:
    """Fit `make_backend()` per (machine, section) on its train rows and score its test rows.

    Args:
        table: embeddings of train and test clips (column `split`).
        make_backend: returns a fresh, unfitted backend (fit / score_samples, higher = anomalous).
        threshold_method: how the decision threshold is set from out-of-fold training scores.
        normalization: "none", or a `ScoreNormalizer` method ("zscore", "rank") fitted per
            machine on the out-of-fold training scores and applied to test and training scores.
        n_folds: folds for the out-of-fold training scores.
        seed: fold assignment.

    Raises:
        ConfigError: unknown threshold method or normalisation.
        DataError: a machine has test clips but no training clips.
    """
    _check_methods(threshold_method, normalization)
    results = []
    for machine, section in sorted(set(zip(table.machine.tolist(), table.section.tolist()))):
        rows = (table.machine == machine) & (table.section == section)
        train = table.select(rows & (table.split == "train"))
        test = table.select(rows & (table.split == "test"))
        if len(test) == 0:
            continue
        if len(train) == 0:
            raise DataError(f"machine {machine!r} section {section}: test clips but no training clips")
        reference = fit_machine_reference(
            train, make_backend, threshold_method=threshold_method, normalization=normalization,
            n_folds=n_folds, seed=seed,
        )
        test_scores = reference.score(test.embeddings)
        results.append(
            MachineScores(
                machine=machine,
                section=section,
                test_filenames=test.filename,
                test_scores=test_scores,
                train_filenames=reference.train_filenames,
                train_scores=reference.train_scores,
                threshold=reference.threshold,
                decisions=decide(test_scores, reference.threshold).astype(np.int64),
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


def training_score_file_name(machine: str, section: str) -> str:
    """`train_scores_<machine>_section_<section>.csv`: out-of-fold scores of the normal training clips."""
    return score_file_name(machine, section).replace("anomaly_score_", "train_scores_", 1).replace("_test.csv", ".csv")


def write_training_scores(results: list[MachineScores], out_dir: str | Path) -> list[Path]:
    """Write each machine's out-of-fold training scores (`filename,score`, no header), atomically.

    Ensembles normalise a system's test scores with these (see `asdlab.pipeline.ensemble`).
    """
    written = []
    for r in results:
        path = Path(out_dir) / training_score_file_name(r.machine, r.section)
        if not np.isfinite(r.train_scores).all():
            raise DataError(f"{path}: training scores contain NaN or infinite values")
        atomic_write_text(path, "".join(f"{n},{float(v)!r}\n" for n, v in zip(r.train_filenames, r.train_scores)))
        written.append(path)
    return written


def read_training_scores(
    out_dir: str | Path, machine: str, section: str
) -> tuple[tuple[str, ...], NDArray[np.float64]]:
    """Read back `write_training_scores`' file of one machine: (file names, scores (N,)).

    Raises:
        DataError: the file is missing.
    """
    path = Path(out_dir) / training_score_file_name(machine, section)
    if not path.is_file():
        raise DataError(
            f"{path} not found: {machine} section {section} has no training scores "
            "(systems written by `asdlab score` have them)"
        )
    return read_anomaly_scores(path)


@dataclass(frozen=True)
class ScoreSettings:
    """How `score_embeddings` scores, as saved in `settings.json`.

    Attributes:
        backend: registered backend name (`asdlab.backends.available_backends()`).
        params: the backend's keyword hyper-parameters.
        normalization: per-machine normalisation of the written scores.
        threshold: decision-threshold method, applied to the written (normalised) scale.
        n_folds: folds of the out-of-fold training scores.
        seed: fold assignment.
    """

    backend: str = "knn"
    params: Mapping[str, Any] = field(default_factory=dict)
    normalization: Normalization = "none"
    threshold: ThresholdMethod = "gamma"
    n_folds: int = 5
    seed: int = 0

    def new_backend(self) -> Backend:
        """A fresh unfitted backend (raises ConfigError for an unknown name or parameter)."""
        return make_backend(self.backend, **dict(self.params))

    def as_dict(self) -> dict[str, Any]:
        return {
            "backend": self.backend, "params": dict(self.params), "normalization": self.normalization,
            "threshold": self.threshold, "n_folds": self.n_folds, "seed": self.seed,
        }


@dataclass(frozen=True)
class ScoringResult:
    """What `score_embeddings` wrote: the folder, per-machine scores, the evaluation (None without truth).

    `skipped` lists (path, problem) of clips that could not be scored, when the caller embedded them.
    """

    out_dir: Path
    machines: tuple[MachineScores, ...]
    summary: EvaluationSummary | None
    ground_truth: Path | None
    skipped: tuple[tuple[str, str], ...] = ()


def parse_params(pairs: Sequence[str]) -> dict[str, Any]:
    """`["n_neighbors=3", "metric=euclidean"]` -> {"n_neighbors": 3, "metric": "euclidean"}.

    Values are read as JSON where they parse (numbers, true/false, null), else kept as strings.

    Raises:
        ConfigError: an item without `=`, an empty key, or a key given twice.
    """
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set {pair!r}: expected KEY=VALUE, e.g. n_neighbors=3")
        if key in params:
            raise ConfigError(f"--set: parameter {key!r} given twice")
        try:
            params[key] = json.loads(text)
        except json.JSONDecodeError:
            params[key] = text.strip()
    return params


def _has_truth(table: EmbeddingTable) -> bool:
    test = table.split == "test"
    return bool(test.any()) and bool(np.isin(table.label[test], ("normal", "anomaly")).all()) and bool(
        np.isin(table.domain[test], ("source", "target")).all()
    )


def write_table_ground_truth(table: EmbeddingTable, directory: str | Path) -> Path:
    """Write the test rows' labels and domains in the organisers' evaluator layout under `directory`.

    `asdlab.metrics.files.load_ground_truth(directory)` reads them back, so a table's own labels
    are evaluated by the same alignment code as a dataset root.

    Raises:
        DataError: a test row lacks its label or domain.
    """
    if not _has_truth(table):
        raise DataError("the embeddings' test rows do not all carry a label (normal/anomaly) and a domain (source/target)")
    test = table.select(table.split == "test")
    for machine, section in sorted(set(zip(test.machine.tolist(), test.section.tolist()))):
        rows = test.select((test.machine == machine) & (test.section == section))
        write_ground_truth(directory, machine, section, rows.filename, rows.label == "anomaly", rows.domain == "target")
    return Path(directory)


def _load_table(embeddings: str | os.PathLike) -> EmbeddingTable:
    path = Path(embeddings)
    if path.is_dir():
        raise DataError(
            f"{path} is a folder; scoring takes an embeddings file (.npz, from `asdlab embed`). "
            "Scoring a model on a dataset root comes with a later release."
        )
    if not path.is_file():
        raise DataError(f"{path}: embeddings file not found")
    return EmbeddingTable.load(path)


def score_embeddings(
    embeddings: str | os.PathLike | EmbeddingTable,
    out_dir: str | os.PathLike,
    settings: ScoreSettings = ScoreSettings(),
    *,
    ground_truth: str | os.PathLike | None = None,
    confidence_interval: bool = True,
    missing_scores: MissingScores = "warn",
) -> ScoringResult:
    """The scoring stage, files in and files out: embeddings -> DCASE score files (+ evaluation).

    Writes under `out_dir`: `anomaly_score_*` and `decision_result_*` per machine, the out-of-fold
    `train_scores_*` (for thresholds and ensembles), `settings.json`, and, when evaluated,
    `evaluation.csv`. Evaluation uses `ground_truth` (a dataset root or evaluator folder) or, without
    it, the table's own labels when every test row has one, copied to `out_dir/ground_truth/`.

    Args:
        embeddings: an `EmbeddingTable` or its `.npz` file, with train and test rows.
        out_dir: the system's scores folder.
        settings: backend, parameters, normalisation, threshold.
        ground_truth: dataset root or evaluator folder; None to use the table's labels if any.
        confidence_interval: compute the evaluator's jackknife interval.
        missing_scores: ground-truth clips the table lacks (clips skipped when embedding): "warn"
            evaluates the others with a warning naming how many (and leaves the run unevaluated, with
            a warning, when what is left cannot be evaluated); "error" refuses, as the DCASE evaluator.

    Raises:
        ConfigError: unknown backend, parameter, normalisation or threshold method.
        DataError: unreadable embeddings, no train or no test rows.
        EvaluationError: `ground_truth` missing, or score files that do not line up with it.
    """
    source = None if isinstance(embeddings, EmbeddingTable) else Path(embeddings)
    table = embeddings if source is None else _load_table(source)
    for split in ("train", "test"):
        if not (table.split == split).any():
            raise DataError(f"{source or 'the embeddings table'} has no {split} rows; scoring needs both")
    settings.new_backend()  # fail on a bad name or parameter before any work
    if ground_truth is not None and not Path(ground_truth).exists():
        raise EvaluationError(f"{ground_truth}: ground truth not found")
    out_dir = Path(out_dir)
    results = score_machines(
        table, settings.new_backend, threshold_method=settings.threshold, normalization=settings.normalization,
        n_folds=settings.n_folds, seed=settings.seed,
    )
    write_score_files(results, out_dir)
    write_training_scores(results, out_dir)
    truth = None
    if ground_truth is not None:
        truth = Path(ground_truth)
    elif _has_truth(table):
        truth = write_table_ground_truth(table, out_dir / GROUND_TRUTH_DIR)
    else:
        logger.info("the test rows carry no labels and no ground truth was given: not evaluated")
    record = {
        "stage": "score",
        **settings.as_dict(),
        "embeddings": None if source is None else str(source.resolve()),
        "embeddings_sha256": None if source is None else sha256_file(source),
        "ground_truth": None if truth is None else str(truth.resolve()),
        "thresholds": {f"{r.machine}/{r.section}": r.threshold for r in results},
        "asdlab_version": __version__,
    }
    atomic_write_text(out_dir / SETTINGS_FILE, json.dumps(record, indent=2, default=repr) + "\n")
    summary = None
    if truth is not None:
        machines = sorted({r.machine for r in results})
        truth_sections = load_ground_truth(truth)
        sections = align_scores(out_dir, truth_sections, machines=machines, missing=missing_scores)
        lacking = sum(len(truth_sections[s.machine, s.section].filenames) - len(s.filenames) for s in sections)
        try:
            summary = evaluate(sections, confidence_interval=confidence_interval)
        except EvaluationError as error:
            if not lacking:
                raise
            logger.warning("not evaluated: %d ground-truth clips have no score and the others cannot be "
                           "evaluated alone (%s)", lacking, error)
        if summary is not None:
            write_summary_csv(summary, out_dir / "evaluation.csv")
    return ScoringResult(out_dir=out_dir, machines=tuple(results), summary=summary, ground_truth=truth)
