"""Ensembles of scored systems (ensemble report, sec. 2): normalise, fuse, tune on one set, apply to another.

A system is a scores folder written by `score_embeddings`: test scores and out-of-fold training
scores per (machine, section). Each system's scores are normalised per (machine, section) from its
own training scores (z-score by default), then fused by the weighted mean of `FusionWeights`.
Weights are equal, read from a file, or searched (`search_weights`, the report's ACP) to maximise
the official score on a labelled development set and applied unchanged to another set. The
ensemble's threshold comes from the fused training scores, so it lives on the fused scale, and
the ensemble folder is itself a system (it can join another ensemble).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from asdlab import __version__
from asdlab._io import atomic_write_text
from asdlab.backends.ensemble import FusionWeights, WeightSearchResult, official_score_objective, search_weights
from asdlab.backends.normalize import ScoreNormalizer
from asdlab.backends.thresholds import ThresholdMethod, decide, fit_threshold
from asdlab.errors import ConfigError, DataError
from asdlab.metrics.dcase import EvaluationSummary
from asdlab.metrics.files import (
    align_scores,
    evaluate_scores_dir,
    find_score_files,
    load_ground_truth,
    read_anomaly_scores,
    write_summary_csv,
)
from asdlab.pipeline.scoring import (
    GROUND_TRUTH_DIR,
    SETTINGS_FILE,
    MachineScores,
    read_training_scores,
    write_score_files,
    write_training_scores,
)

__all__ = [
    "WEIGHTS_FILE",
    "SystemScores",
    "TuningResult",
    "EnsembleResult",
    "load_system",
    "load_weights",
    "fuse_systems",
    "tune_weights",
    "run_ensemble",
]

logger = logging.getLogger(__name__)

WEIGHTS_FILE = "weights.json"  # {system name: weight}; `load_weights` reads it back
EnsembleNormalization = Literal["zscore", "rank"]

SectionKey = tuple[str, str]  # (machine, section)
Scored = tuple[tuple[str, ...], NDArray[np.float64]]  # (file names, scores)


@dataclass(frozen=True)
class SystemScores:
    """One system's scores read from its folder.

    Attributes:
        name: the system's name (its folder name); fusion weights are matched by it.
        directory: the scores folder.
        test: (machine, section) -> (test file names, scores).
        train: (machine, section) -> (training file names, out-of-fold scores), same scale as test.
    """

    name: str
    directory: Path
    test: Mapping[SectionKey, Scored]
    train: Mapping[SectionKey, Scored]


@dataclass(frozen=True)
class TuningResult:
    """A weight search on a labelled development set.

    Attributes:
        search: the `search_weights` outcome (weights, tuned and uniform objective, history).
        member_scores: official score of each member alone on the development set.
        directories: the development systems' folders.
        ground_truth: where their labels came from.
    """

    search: WeightSearchResult
    member_scores: Mapping[str, float]
    directories: tuple[Path, ...]
    ground_truth: Path


@dataclass(frozen=True)
class EnsembleResult:
    """What `run_ensemble` wrote: weights, fused scores, evaluations of the ensemble and its members.

    `summary` and `member_summaries` are None / empty when there is no ground truth for the scored
    set; `tuning` is None unless the weights were searched.
    """

    out_dir: Path
    weights: FusionWeights
    machines: tuple[MachineScores, ...]
    summary: EvaluationSummary | None
    member_summaries: Mapping[str, EvaluationSummary]
    tuning: TuningResult | None
    ground_truth: Path | None


def load_system(directory: str | os.PathLike, *, name: str | None = None) -> SystemScores:
    """Read a system's test scores and out-of-fold training scores.

    Args:
        directory: a scores folder written by `score_embeddings` (or `run_ensemble`).
        name: the system's name (default: the folder name).

    Raises:
        DataError: no score files, or a machine without its `train_scores_*` file.
        EvaluationError: a malformed score file.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"{directory}: scores folder not found")
    files = find_score_files(directory)
    if not files:
        raise DataError(f"{directory}: no anomaly_score_<machine>_section_<SS>_test.csv files")
    test, train = {}, {}
    for key, paths in sorted(files.items()):
        if len(paths) != 1:
            raise DataError(f"{directory}: {key[0]} section {key[1]} has per-domain score files; ensembles need one per section")
        test[key] = read_anomaly_scores(paths[0])
        train[key] = read_training_scores(directory, *key)
    return SystemScores(name or directory.name, directory, test, train)


def load_weights(path: str | os.PathLike) -> FusionWeights:
    """Fusion weights from a JSON file `{system name: weight}` (as `run_ensemble` writes them).

    Raises:
        ConfigError: unreadable file, not a mapping of names to numbers, or invalid weights.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise ConfigError(f"{path}: cannot read fusion weights ({error})") from None
    if not isinstance(data, dict) or not data or not all(isinstance(v, (int, float)) for v in data.values()):
        raise ConfigError(f'{path}: expected {{"system name": weight, ...}}, got {str(data)[:80]}')
    try:
        return FusionWeights.from_dict(data)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None


def _check_systems(systems: Sequence[SystemScores]) -> list[SectionKey]:
    if not systems:
        raise ConfigError("an ensemble needs at least one system")
    names = [s.name for s in systems]
    if len(set(names)) != len(names):
        raise ConfigError(f"systems must have distinct names (folder names), got {names}")
    keys = sorted(set().union(*(s.test for s in systems)))
    for system in systems:
        missing = [k for k in keys if k not in system.test]
        if missing:
            shown = ", ".join(f"{m} section {s}" for m, s in missing)
            raise DataError(
                f"system {system.name!r} ({system.directory}) has no scores for {shown}; "
                "every system of an ensemble must score the same machines"
            )
    return keys


def _check_weights(weights: FusionWeights, systems: Sequence[SystemScores]) -> None:
    names = sorted(s.name for s in systems)
    if sorted(weights.names) != names:
        raise ConfigError(f"the weights name systems {sorted(weights.names)} but the ensemble has {names}")


def _normalized(system: SystemScores, method: EnsembleNormalization) -> SystemScores:
    """The system with each section's test and training scores normalised from its training scores."""
    test, train = {}, {}
    for key, (names, scores) in system.test.items():
        train_names, train_scores = system.train[key]
        normalizer = ScoreNormalizer(method).fit(train_scores)
        test[key] = (names, normalizer.transform(scores))
        train[key] = (train_names, normalizer.transform(train_scores))
    return SystemScores(system.name, system.directory, test, train)


def _matrix(systems: Sequence[SystemScores], key: SectionKey, part: str) -> tuple[tuple[str, ...], dict[str, NDArray[np.float64]]]:
    """Clip names (sorted) and each system's scores in that order, for one section's test or train part."""
    reference = getattr(systems[0], part)[key][0]
    names = tuple(sorted(reference))
    rows = {}
    for system in systems:
        clip_names, scores = getattr(system, part)[key]
        by_name = dict(zip(clip_names, scores))
        if set(by_name) != set(names) or len(by_name) != len(clip_names):
            differ = sorted(set(by_name) ^ set(names))[:3]
            raise DataError(
                f"{key[0]} section {key[1]}: the {part} clips of {system.name!r} and {systems[0].name!r} differ "
                f"(e.g. {differ}); systems of an ensemble must score the same clips"
            )
        rows[system.name] = np.array([by_name[n] for n in names], dtype=np.float64)
    return names, rows


def fuse_systems(
    systems: Sequence[SystemScores],
    weights: FusionWeights | None = None,
    *,
    normalization: EnsembleNormalization = "zscore",
    threshold_method: ThresholdMethod = "gamma",
) -> list[MachineScores]:
    """Normalise each system per (machine, section) and fuse test and training scores.

    Args:
        systems: systems scoring the same clips of the same machines.
        weights: one weight per system name (default: equal weights).
        normalization: per-section normalisation fitted on each system's training scores.
        threshold_method: the decision threshold from the fused training scores.

    Returns:
        One `MachineScores` per (machine, section), on the fused scale.

    Raises:
        ConfigError: duplicated names, or weights that do not name exactly these systems.
        DataError: a system lacks a machine or scores other clips than the rest.
    """
    keys = _check_systems(systems)
    weights = FusionWeights.uniform([s.name for s in systems]) if weights is None else weights
    _check_weights(weights, systems)
    normalized = [_normalized(s, normalization) for s in systems]
    results = []
    for key in keys:
        test_names, test_rows = _matrix(normalized, key, "test")
        train_names, train_rows = _matrix(normalized, key, "train")
        test_scores, train_scores = weights.apply(test_rows), weights.apply(train_rows)
        threshold = fit_threshold(train_scores, method=threshold_method)
        results.append(
            MachineScores(
                machine=key[0],
                section=key[1],
                test_filenames=np.array(test_names, dtype=np.str_),
                test_scores=test_scores,
                train_filenames=np.array(train_names, dtype=np.str_),
                train_scores=train_scores,
                threshold=float(threshold),
                decisions=decide(test_scores, threshold),
            )
        )
    return results


def _default_truth(directory: Path) -> Path | None:
    path = directory / GROUND_TRUTH_DIR
    return path if path.is_dir() else None


def tune_weights(
    systems: Sequence[SystemScores],
    ground_truth: str | os.PathLike,
    *,
    normalization: EnsembleNormalization = "zscore",
    n_iter: int = 200,
    step: float = 0.1,
    decay: float = 0.98,
    seed: int = 0,
    machines: Sequence[str] | None = None,
) -> TuningResult:
    """Search fusion weights maximising the official score (2023 rule) of the fused scores on a labelled set.

    Args:
        systems: development systems, all scoring the labelled test clips.
        ground_truth: their labels: a dataset root or an evaluator folder.
        normalization: as in `fuse_systems`.
        n_iter, step, decay: the search, as in `asdlab.backends.search_weights`.
        seed: seed of the search.
        machines: tune on these machine types only (e.g. the development set's, to apply the weights to
            held-out ones); None = every machine the systems scored.

    Raises:
        DataError: systems that do not line up, or ground truth without domains.
        EvaluationError: score files that do not match the ground truth.
    """
    keys = _check_systems(systems)
    truth = load_ground_truth(ground_truth)
    scored = sorted({m for m, _ in keys})
    if machines is not None and (unknown := sorted(set(machines) - set(scored))):
        raise ConfigError(f"cannot tune on machine type(s) {unknown}: the systems scored {scored}")
    machines = scored if machines is None else sorted(set(machines))
    columns: dict[str, list] = {"y": [], "machine": [], "section": [], "domain": []}
    scores: dict[str, NDArray[np.float64]] = {}
    for i, system in enumerate(systems):
        sections = align_scores(system.directory, truth, machines=machines)
        parts = []
        for x in sections:
            if x.domains is None:
                raise DataError(f"{ground_truth}: {x.machine} section {x.section} has no domains; tuning needs them")
            normalizer = ScoreNormalizer(normalization).fit(system.train[(x.machine, x.section)][1])
            parts.append(normalizer.transform(x.y_score))
            if i == 0:
                columns["y"].append(x.y_true)
                columns["machine"].append(np.full(len(x.y_true), x.machine))
                columns["section"].append(np.full(len(x.y_true), x.section))
                columns["domain"].append(x.domains)
        scores[system.name] = np.concatenate(parts)
    y, machine, section, domain = (np.concatenate(columns[c]) for c in ("y", "machine", "section", "domain"))
    objective = official_score_objective(y, machine, domain, sections=section)
    names = [s.name for s in systems]
    search = search_weights(scores, objective, names=names, n_iter=n_iter, step=step, decay=decay, seed=seed)
    members = {name: float(objective(scores[name])) for name in names}
    logger.info("tuned weights %s: official score %.4f (equal weights %.4f)", search.weights.as_dict(),
                search.objective, search.initial_objective)
    return TuningResult(search, members, tuple(s.directory for s in systems), Path(ground_truth))


def run_ensemble(
    system_dirs: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    names: Sequence[str] | None = None,
    weights: FusionWeights | None = None,
    tune_dirs: Sequence[str | os.PathLike] | None = None,
    tune_ground_truth: str | os.PathLike | None = None,
    ground_truth: str | os.PathLike | None = None,
    normalization: EnsembleNormalization = "zscore",
    threshold_method: ThresholdMethod = "gamma",
    n_iter: int = 200,
    seed: int = 0,
    confidence_interval: bool = True,
) -> EnsembleResult:
    """Fuse scored systems into a new scores folder, with equal, given or tuned weights.

    Writes under `out_dir` the DCASE score and decision files, `train_scores_*`, `weights.json`,
    `settings.json` and, with ground truth, `evaluation.csv`.

    Args:
        system_dirs: the systems' scores folders (names: folder names, distinct).
        out_dir: the ensemble's scores folder.
        names: the systems' names in `system_dirs` order, for folders whose names do not tell them
            apart (an experiment's `scores/` folders); `tune_dirs` then take the same names in order.
        weights: fixed weights by system name; None for equal weights or tuning.
        tune_dirs: the same systems (same folder names) scored on a labelled development set;
            weights are searched there and applied unchanged to `system_dirs`.
        tune_ground_truth: labels of the development set (default: `tune_dirs[0]/ground_truth`).
        ground_truth: labels of the scored set for the evaluation (default:
            `system_dirs[0]/ground_truth` if present, else no evaluation).
        normalization: per-section normalisation from each system's training scores.
        threshold_method: decision threshold from the fused training scores.
        n_iter: weight-search steps.
        seed: weight-search seed.
        confidence_interval: compute the evaluator's jackknife interval.

    Raises:
        ConfigError: both `weights` and `tune_dirs`, mismatched names, `names` not one per folder,
            no development labels, or `out_dir` is a member's folder.
        DataError: systems that do not line up.
        EvaluationError: score files that do not match the ground truth.
    """
    if weights is not None and tune_dirs:
        raise ConfigError("give fixed weights or development systems to tune them on, not both")
    if names is not None and len(names) != len(system_dirs):
        raise ConfigError(f"{len(names)} names for {len(system_dirs)} systems")
    systems = [load_system(d, name=None if names is None else names[i]) for i, d in enumerate(system_dirs)]
    keys = _check_systems(systems)
    if Path(out_dir).resolve() in {s.directory.resolve() for s in systems}:
        raise ConfigError(f"{out_dir} is one of the member systems; write the ensemble to another folder")
    tuning = None
    if tune_dirs:
        if names is not None and len(names) != len(tune_dirs):
            raise ConfigError(f"{len(names)} names for {len(tune_dirs)} development systems")
        dev = [load_system(d, name=None if names is None else names[i]) for i, d in enumerate(tune_dirs)]
        if sorted(s.name for s in dev) != sorted(s.name for s in systems):
            raise ConfigError(
                f"development systems {[s.name for s in dev]} and scored systems {[s.name for s in systems]} "
                "must have the same folder names: weights are matched by name"
            )
        dev_truth = tune_ground_truth if tune_ground_truth is not None else _default_truth(dev[0].directory)
        if dev_truth is None:
            raise ConfigError(f"no labels for the development systems: pass their ground truth "
                              f"({dev[0].directory / GROUND_TRUTH_DIR} does not exist)")
        tuning = tune_weights(dev, dev_truth, normalization=normalization, n_iter=n_iter, seed=seed)
        weights = tuning.search.weights
    elif weights is None:
        weights = FusionWeights.uniform([s.name for s in systems])
    results = fuse_systems(systems, weights, normalization=normalization, threshold_method=threshold_method)
    out_dir = Path(out_dir)
    write_score_files(results, out_dir)
    write_training_scores(results, out_dir)
    atomic_write_text(out_dir / WEIGHTS_FILE, json.dumps(weights.as_dict(), indent=2) + "\n")
    truth = Path(ground_truth) if ground_truth is not None else _default_truth(systems[0].directory)
    record = _record(systems, results, weights, tuning, truth, normalization, threshold_method, n_iter, seed)
    atomic_write_text(out_dir / SETTINGS_FILE, json.dumps(record, indent=2) + "\n")
    summary, members = None, {}
    if truth is not None:
        machines = sorted({m for m, _ in keys})
        summary = evaluate_scores_dir(out_dir, truth, machines=machines, confidence_interval=confidence_interval)
        write_summary_csv(summary, out_dir / "evaluation.csv")
        members = {s.name: evaluate_scores_dir(s.directory, truth, machines=machines, confidence_interval=False)
                   for s in systems}
    return EnsembleResult(out_dir, weights, tuple(results), summary, members, tuning, truth)


def _record(systems, results, weights, tuning, truth, normalization, threshold_method, n_iter, seed) -> dict[str, Any]:
    tuned = None
    if tuning is not None:
        tuned = {
            "systems": [str(d.resolve()) for d in tuning.directories],
            "ground_truth": str(tuning.ground_truth.resolve()),
            "n_iter": n_iter,
            "seed": seed,
            "official_score": tuning.search.objective,
            "official_score_equal_weights": tuning.search.initial_objective,
            "member_official_scores": dict(tuning.member_scores),
        }
    return {
        "stage": "ensemble",
        "systems": {s.name: str(s.directory.resolve()) for s in systems},
        "weights": weights.as_dict(),
        "tuning": tuned,
        "normalization": normalization,
        "threshold": threshold_method,
        "thresholds": {f"{r.machine}/{r.section}": r.threshold for r in results},  # as `score_embeddings` saves them
        "ground_truth": None if truth is None else str(truth.resolve()),
        "asdlab_version": __version__,
    }
