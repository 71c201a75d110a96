"""The DCASE score files and ground truth, read and aligned as the organisers' evaluator does.

Writes `anomaly_score_<Machine>_section_<SS>_test.csv` / `decision_result_..._test.csv` (no
header, `filename,value`) atomically. Ground truth comes from a dataset root (labels parsed from
test file names) or the evaluator's `ground_truth_data/` + `ground_truth_domain/` (+ optional
`ground_truth_attributes/`) folders; rows are sorted by file name before aligning (DCASE.md).
"""

from __future__ import annotations

import csv
import io
import logging
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from asdlab._io import atomic_write_text
from asdlab.errors import DataError, EvaluationError
from asdlab.metrics.dcase import MAX_FPR, EvaluationSummary, Rule, SectionScores, evaluate

__all__ = [
    "ScoreKind",
    "MissingScores",
    "score_file_name",
    "write_anomaly_scores",
    "write_decisions",
    "read_anomaly_scores",
    "read_decisions",
    "find_score_files",
    "SectionTruth",
    "ground_truth_from_dataset",
    "ground_truth_from_evaluator",
    "write_ground_truth",
    "load_ground_truth",
    "align_scores",
    "write_summary_csv",
    "evaluate_scores_dir",
]

logger = logging.getLogger(__name__)

ScoreKind = Literal["anomaly_score", "decision_result"]
# What to do with ground-truth clips that have no score: fail as the DCASE evaluator does, or evaluate
# the clips that have one with a warning (a scoring run that skipped unreadable clips).
MissingScores = Literal["error", "warn"]

# 2021+ `..._section_00_test.csv`, 2021's per-domain `..._section_00_source_test.csv`, 2020's `..._id_00.csv`.
_SCORE_FILE = re.compile(
    r"(?P<kind>anomaly_score|decision_result)_(?P<machine>.+?)_(?:section|id)_(?P<section>\d\d)"
    r"(?:_(?P<domain>source|target))?(?:_test)?\.csv"
)
_TRUTH_FILE = re.compile(
    r"ground_truth_(?P<machine>.+?)_section_(?P<section>\d\d)(?:_(?P<domain>source|target))?_test\.csv"
)
# Where the DCASE part of a (possibly prefixed, e.g. `fan_test_`) clip name starts.
_DCASE_PART = re.compile(r"(?:^|_)((?:section_\d\d_|(?:normal|anomaly)_id_\d\d_|id_\d\d_\d+\.).*)$")
_AUDIO_SUFFIXES = (".wav", ".flac")
_SHOWN_NAMES = 5  # how many file names an alignment error lists


def score_file_name(machine: str, section: str, *, kind: ScoreKind = "anomaly_score") -> str:
    """`anomaly_score_<machine>_section_<section>_test.csv` (or `decision_result_...`)."""
    if kind not in ("anomaly_score", "decision_result"):
        raise EvaluationError(f"kind must be 'anomaly_score' or 'decision_result', got {kind!r}")
    if not machine or any(c in machine for c in "/\\,") or not re.fullmatch(r"\d\d", str(section)):
        raise EvaluationError(f"bad machine {machine!r} or section {section!r} (two digits, e.g. '00')")
    return f"{kind}_{machine}_section_{section}_test.csv"


def _write(path: Path, filenames: Sequence[str], cells: Sequence[str]) -> Path:
    if len(filenames) != len(cells):
        raise EvaluationError(f"{path}: {len(filenames)} file names but {len(cells)} values")
    if len(set(filenames)) != len(filenames):
        raise EvaluationError(f"{path}: duplicated file names")
    lines = []
    for name, cell in zip(filenames, cells):
        if not name or any(c in name for c in ",\n\r\""):
            raise EvaluationError(f"{path}: file name {name!r} is empty or contains a comma, quote or newline")
        lines.append(f"{name},{cell}\n")
    atomic_write_text(path, "".join(lines))
    return path


def write_anomaly_scores(
    directory: str | os.PathLike, machine: str, section: str, filenames: Sequence[str], scores: ArrayLike
) -> Path:
    """Write one section's anomaly scores (`filename,score`, no header), atomically.

    Args:
        directory: the system's output folder.
        machine: machine type, e.g. "fan".
        section: two-digit section, e.g. "00".
        filenames: clip base names, shape (N,).
        scores: shape (N,), higher = more anomalous; written at full precision (`repr`).

    Returns:
        The file written.

    Raises:
        EvaluationError: length mismatch, NaN/infinite scores, duplicated or malformed names.
    """
    path = Path(directory) / score_file_name(machine, section, kind="anomaly_score")
    s = np.asarray(scores, dtype=np.float64).ravel()
    bad = ~np.isfinite(s)
    if bad.any():
        raise EvaluationError(f"{path}: {int(bad.sum())} scores are NaN or infinite")
    return _write(path, [os.path.basename(str(f)) for f in filenames], [repr(float(v)) for v in s])


def write_decisions(
    directory: str | os.PathLike, machine: str, section: str, filenames: Sequence[str], decisions: ArrayLike
) -> Path:
    """Write one section's decisions (`filename,0|1`, no header, 1 = anomaly), atomically.

    Raises:
        EvaluationError: length mismatch, values other than 0 and 1, malformed names.
    """
    path = Path(directory) / score_file_name(machine, section, kind="decision_result")
    d = np.asarray(decisions).ravel()
    if not np.all((d == 0) | (d == 1)):
        raise EvaluationError(f"{path}: decisions must be 0 or 1")
    return _write(path, [os.path.basename(str(f)) for f in filenames], [str(int(v)) for v in d])


def _read_rows(path: Path) -> list[tuple[int, str, str]]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise EvaluationError(f"{path}: cannot read: {error}") from None
    rows = []
    for number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) < 2:
            raise EvaluationError(f"{path}, line {number}: expected 'filename,value', got {row!r}")
        rows.append((number, row[0].strip(), row[1].strip()))
    return rows


def read_anomaly_scores(path: str | os.PathLike) -> tuple[tuple[str, ...], NDArray[np.float64]]:
    """Read a score file in file order: (file names, scores of shape (N,)).

    Raises:
        EvaluationError: unreadable file, a short row, or a value that is not a number
            (score files have no header).
    """
    path = Path(path)
    names, values = [], []
    for number, name, cell in _read_rows(path):
        try:
            values.append(float(cell))
        except ValueError:
            raise EvaluationError(
                f"{path}, line {number}: score {cell!r} is not a number (score files have no header)"
            ) from None
        names.append(name)
    return tuple(names), np.asarray(values, dtype=np.float64)


def read_decisions(path: str | os.PathLike) -> tuple[tuple[str, ...], NDArray[np.int64]]:
    """Read a decision file in file order: (file names, 0/1 decisions of shape (N,)).

    Raises:
        EvaluationError: unreadable file, a short row, or a value other than 0 and 1.
    """
    path = Path(path)
    names, values = [], []
    for number, name, cell in _read_rows(path):
        try:
            value = float(cell)  # the evaluator reads int(float(...))
        except ValueError:
            value = -1.0
        if value not in (0.0, 1.0):
            raise EvaluationError(f"{path}, line {number}: decision {cell!r} is not 0 or 1")
        names.append(name)
        values.append(int(value))
    return tuple(names), np.asarray(values, dtype=np.int64)


def find_score_files(
    scores_dir: str | os.PathLike, *, kind: ScoreKind = "anomaly_score"
) -> dict[tuple[str, str], list[Path]]:
    """Score files in a folder by (machine, section); 2021 systems have a source and a target file.

    Raises:
        EvaluationError: the folder does not exist.
    """
    scores_dir = Path(scores_dir)
    if not scores_dir.is_dir():
        raise EvaluationError(f"{scores_dir}: scores folder not found")
    found: dict[tuple[str, str], list[Path]] = {}
    for path in sorted(scores_dir.iterdir()):
        match = _SCORE_FILE.fullmatch(path.name)
        if match and match["kind"] == kind and path.is_file():
            found.setdefault((match["machine"], match["section"]), []).append(path)
    return found


@dataclass(frozen=True, eq=False)
class SectionTruth:
    """Ground truth of one (machine, section), sorted by file name.

    Attributes:
        machine: machine type.
        section: two-digit section.
        filenames: clip names (the DCASE part, without a `<machine>_test_` prefix), sorted.
        labels: shape (N,), 1 = anomaly.
        domains: shape (N,), 0 = source, 1 = target, or None where the data has no domains.
        aliases: revealing name -> anonymised name (`ground_truth_attributes/`), so score files
            may list either.
        source: the folder or files the truth was read from, for messages.
    """

    machine: str
    section: str
    filenames: tuple[str, ...]
    labels: NDArray[np.int64]
    domains: NDArray[np.int64] | None
    aliases: Mapping[str, str] = field(default_factory=dict)
    source: str = ""


def _clip_key(name: str) -> str:
    """The DCASE part of a clip name: base name without a redistribution prefix (`fan_test_`)."""
    base = os.path.basename(name.strip())
    match = _DCASE_PART.search(base)
    return match.group(1) if match else base


def _section_truth(
    machine: str,
    section: str,
    clips: Iterable[tuple[str, int, int | None]],
    *,
    source: str,
    aliases: Mapping[str, str] | None = None,
) -> SectionTruth:
    ordered = sorted(clips)  # the evaluator sorts ground-truth rows by file name
    names = [c[0] for c in ordered]
    duplicated = sorted({n for n, m in zip(names, names[1:]) if n == m})
    if duplicated:
        raise EvaluationError(
            f"{source}: {machine} section {section} lists {len(duplicated)} clip names twice, e.g. "
            f"{duplicated[:_SHOWN_NAMES]}; point the ground truth at one dataset year"
        )
    domains = [c[2] for c in ordered]
    has_domains = all(d is not None for d in domains)
    if not has_domains and any(d is not None for d in domains):
        raise EvaluationError(f"{source}: {machine} section {section}: some clips have a domain, others not")
    return SectionTruth(
        machine=machine,
        section=section,
        filenames=tuple(names),
        labels=np.asarray([c[1] for c in ordered], dtype=np.int64),
        domains=np.asarray(domains, dtype=np.int64) if has_domains else None,
        aliases=dict(aliases or {}),
        source=source,
    )


def ground_truth_from_dataset(root: str | os.PathLike) -> dict[tuple[str, str], SectionTruth]:
    """Ground truth of every labelled test clip under a dataset root, parsed from file names.

    Uses `asdlab.data.filenames.parse_clip_name`, so both `<Machine>/test/section_00_...wav`
    trees and renamed flat copies (`fan_test_section_00_...wav`) work; files need not be audio.
    Anonymised eval names carry no label and are skipped.

    Raises:
        EvaluationError: the root is missing, holds no labelled test clips, or lists a clip
            name twice within one (machine, section).
    """
    # Imported here so that `import asdlab.metrics` never runs `asdlab.data`'s package init,
    # which may pull in the torch Dataset (STYLE.md: metrics do not import torch).
    from asdlab.data.filenames import parse_clip_name

    root = Path(root)
    if not root.is_dir():
        raise EvaluationError(f"{root}: ground-truth dataset root not found")
    clips: dict[tuple[str, str], list[tuple[str, int, int | None]]] = {}
    skipped = 0
    for dirpath, _, files in os.walk(root):
        for name in files:
            if not name.lower().endswith(_AUDIO_SUFFIXES):
                continue
            try:
                record = parse_clip_name(Path(dirpath) / name)
            except DataError:
                skipped += 1
                continue
            if record.split != "test" or record.label is None or record.layout == "mimii":
                continue
            domain = None if record.domain is None else int(record.domain == "target")
            clips.setdefault((record.machine, record.section), []).append(
                (_clip_key(name), int(record.label == "anomaly"), domain)
            )
    if skipped:
        logger.info("%s: skipped %d audio files whose names are not DCASE clip names", root, skipped)
    if not clips:
        raise EvaluationError(
            f"{root}: no labelled test clips found (names like 'section_00_source_test_anomaly_0001_...wav'); "
            "for anonymised eval data pass the organisers' folder with ground_truth_data/"
        )
    return {key: _section_truth(*key, rows, source=str(root)) for key, rows in sorted(clips.items())}


def _read_truth_csv(path: Path, what: str) -> dict[str, int]:
    values: dict[str, int] = {}
    for number, name, cell in _read_rows(path):
        try:
            value = float(cell)  # the evaluator's read_score: float of column 1
        except ValueError:
            value = -1.0
        if value not in (0.0, 1.0):
            raise EvaluationError(f"{path}, line {number}: {what} {cell!r} is not 0 or 1")
        values[_clip_key(name)] = int(value)
    return values


def ground_truth_from_evaluator(directory: str | os.PathLike) -> dict[tuple[str, str], SectionTruth]:
    """Ground truth from the organisers' evaluator folder.

    Reads `ground_truth_data/ground_truth_<machine>_section_<SS>_test.csv` (`filename,0|1`,
    1 = anomaly), `ground_truth_domain/...` (`filename,0|1`, 1 = target) and, when present,
    `ground_truth_attributes/...` (`anonymised name,revealing name without .wav`). The 2021
    layout (`..._section_<SS>_<source|target>_test.csv`, domain in the file name) also works.

    Raises:
        EvaluationError: no ground-truth files, a missing domain file, or files that disagree.
    """
    directory = Path(directory)
    data_dir = directory / "ground_truth_data"
    if not data_dir.is_dir():
        raise EvaluationError(f"{directory}: no ground_truth_data/ folder")
    clips: dict[tuple[str, str], list[tuple[str, int, int | None]]] = {}
    aliases: dict[tuple[str, str], dict[str, str]] = {}
    for path in sorted(data_dir.iterdir()):
        match = _TRUTH_FILE.fullmatch(path.name)
        if not match:
            continue
        key = (match["machine"], match["section"])
        labels = _read_truth_csv(path, "label")
        if match["domain"]:
            domain_of = dict.fromkeys(labels, int(match["domain"] == "target"))
        else:
            domain_path = directory / "ground_truth_domain" / path.name
            if not domain_path.is_file():
                raise EvaluationError(f"{domain_path}: domain ground truth missing for {path}")
            domain_of = _read_truth_csv(domain_path, "domain")
            if set(domain_of) != set(labels):
                raise EvaluationError(f"{domain_path} and {path} list different clips")
        clips.setdefault(key, []).extend((name, label, domain_of[name]) for name, label in labels.items())
        attribute_path = directory / "ground_truth_attributes" / path.name
        if attribute_path.is_file():
            for _, anonymised, revealing in _read_rows(attribute_path):
                aliases.setdefault(key, {})[f"{revealing}.wav"] = anonymised
    if not clips:
        raise EvaluationError(f"{data_dir}: no ground_truth_<machine>_section_<SS>_test.csv files")
    return {
        key: _section_truth(*key, rows, source=str(directory), aliases=aliases.get(key))
        for key, rows in sorted(clips.items())
    }


def write_ground_truth(
    directory: str | os.PathLike,
    machine: str,
    section: str,
    filenames: Sequence[str],
    labels: ArrayLike,
    domains: ArrayLike,
) -> tuple[Path, Path]:
    """Write one section's truth in the organisers' evaluator layout, which `load_ground_truth` reads.

    Args:
        directory: the evaluator folder; files go to its `ground_truth_data/` and `ground_truth_domain/`.
        machine: machine type.
        section: two-digit section.
        filenames: clip base names, shape (N,).
        labels: shape (N,), 1 = anomaly, 0 = normal.
        domains: shape (N,), 1 = target, 0 = source.

    Returns:
        The label file and the domain file written.

    Raises:
        EvaluationError: length mismatch, values other than 0 and 1, malformed names.
    """
    name = score_file_name(machine, section).replace("anomaly_score_", "ground_truth_", 1)
    written = []
    for folder, values, what in (("ground_truth_data", labels, "labels"), ("ground_truth_domain", domains, "domains")):
        v = np.asarray(values).ravel()
        path = Path(directory) / folder / name
        if not np.all((v == 0) | (v == 1)):
            raise EvaluationError(f"{path}: {what} must be 0 or 1")
        written.append(_write(path, [os.path.basename(str(f)) for f in filenames], [str(int(x)) for x in v]))
    return written[0], written[1]


def load_ground_truth(path: str | os.PathLike) -> dict[tuple[str, str], SectionTruth]:
    """Ground truth from an evaluator folder (it has `ground_truth_data/`) or else a dataset root.

    Raises:
        EvaluationError: the path does not exist or holds no usable ground truth.
    """
    path = Path(path)
    if not path.exists():
        raise EvaluationError(f"{path}: ground truth not found")
    if path.name == "ground_truth_data":
        path = path.parent
    if (path / "ground_truth_data").is_dir():
        return ground_truth_from_evaluator(path)
    return ground_truth_from_dataset(path)


def _few(names: Iterable[str]) -> str:
    names = sorted(names)
    more = f" and {len(names) - _SHOWN_NAMES} more" if len(names) > _SHOWN_NAMES else ""
    return ", ".join(names[:_SHOWN_NAMES]) + more


def _select(
    truth: Mapping[tuple[str, str], SectionTruth], machines: Sequence[str] | None
) -> list[SectionTruth]:
    if machines is None:
        return [truth[k] for k in sorted(truth)]
    known = sorted({m for m, _ in truth})
    unknown = [m for m in machines if m not in known]
    if unknown:
        raise EvaluationError(f"machine(s) {unknown} not in the ground truth; it has {known}")
    return [truth[k] for k in sorted(truth) if k[0] in set(machines)]


def align_scores(
    scores_dir: str | os.PathLike,
    truth: Mapping[tuple[str, str], SectionTruth],
    *,
    machines: Sequence[str] | None = None,
    missing: MissingScores = "error",
) -> list[SectionScores]:
    """Pair each ground-truth section with its score file, sorted by file name as the evaluator does.

    Args:
        scores_dir: folder of `anomaly_score_<machine>_section_<SS>_test.csv` files.
        truth: from `load_ground_truth`.
        machines: evaluate only these machine types (default: every one in the ground truth).
        missing: "error" when a ground-truth clip has no score (the evaluator's rule), or "warn": log
            how many lack one and evaluate the others.

    Returns:
        One `SectionScores` per (machine, section).

    Raises:
        EvaluationError: a machine's score file is missing (the evaluator drops the whole
            system), or its clip names differ from the ground truth (a few are listed).
    """
    scores_dir = Path(scores_dir)
    files = find_score_files(scores_dir)
    sections = []
    for gt in _select(truth, machines):
        paths = files.get((gt.machine, gt.section))
        if not paths:
            expected = scores_dir / score_file_name(gt.machine, gt.section)
            raise EvaluationError(
                f"no anomaly scores for machine {gt.machine!r} section {gt.section}: expected {expected} "
                "(the DCASE evaluator drops a system that lacks any machine); evaluate a subset with machines="
            )
        scored: dict[str, float] = {}
        for path in paths:
            names, values = read_anomaly_scores(path)
            for name, value in zip(names, values):
                base = os.path.basename(name)
                key = gt.aliases.get(base) or gt.aliases.get(_clip_key(base)) or _clip_key(base)
                if key in scored:
                    raise EvaluationError(f"{path}: clip {name!r} is scored twice")
                scored[key] = float(value)
        where = ", ".join(str(p) for p in paths)
        unscored = set(gt.filenames) - set(scored)
        extra = set(scored) - set(gt.filenames)
        if unscored and missing == "warn" and not extra and len(unscored) < len(gt.filenames):
            logger.warning(
                "%s section %s: %d ground-truth clips have no score (%s); evaluating the %d that have one",
                gt.machine, gt.section, len(unscored), _few(unscored), len(gt.filenames) - len(unscored),
            )
            gt = _scored_only(gt, scored)
            unscored = set()
        if unscored or extra:
            parts = []
            if unscored:
                parts.append(f"{len(unscored)} ground-truth clips have no score ({_few(unscored)})")
            if extra:
                parts.append(f"{len(extra)} scored clips are not in the ground truth ({_few(extra)})")
            raise EvaluationError(f"{where} vs ground truth in {gt.source}: " + "; ".join(parts))
        sections.append(
            SectionScores(
                machine=gt.machine,
                section=gt.section,
                y_true=gt.labels,
                y_score=np.asarray([scored[name] for name in gt.filenames], dtype=np.float64),
                domains=gt.domains,
                filenames=gt.filenames,
            )
        )
    unused = sorted(set(files) - set(truth))
    if unused:
        logger.info("%s: no ground truth for %s; not evaluated", scores_dir, unused)
    return sections


def _scored_only(gt: SectionTruth, scored: Mapping[str, float]) -> SectionTruth:
    keep = np.array([name in scored for name in gt.filenames])
    return SectionTruth(
        machine=gt.machine, section=gt.section, filenames=tuple(n for n, k in zip(gt.filenames, keep) if k),
        labels=gt.labels[keep], domains=None if gt.domains is None else gt.domains[keep],
        aliases=gt.aliases, source=gt.source,
    )


def write_summary_csv(summary: EvaluationSummary, path: str | os.PathLike) -> Path:
    """Write `summary.to_csv()` atomically; returns the path."""
    path = Path(path)
    atomic_write_text(path, summary.to_csv())
    return path


def evaluate_scores_dir(
    scores_dir: str | os.PathLike,
    ground_truth: str | os.PathLike,
    *,
    rule: Rule = "dcase2023",
    machines: Sequence[str] | None = None,
    max_fpr: float = MAX_FPR,
    confidence_interval: bool = True,
    missing: MissingScores = "error",
) -> EvaluationSummary:
    """Evaluate a folder of DCASE score files against a dataset root or an evaluator folder.

    Args:
        scores_dir: folder of `anomaly_score_<machine>_section_<SS>_test.csv` files.
        ground_truth: dataset root, or the organisers' folder holding `ground_truth_data/`.
        rule: which year's evaluator to follow.
        machines: evaluate only these machine types.
        max_fpr: pAUC's false-positive-rate limit.
        confidence_interval: compute the evaluator's jackknife interval.
        missing: ground-truth clips without a score: "error" (the evaluator's rule) or "warn"
            (see `align_scores`).

    Returns:
        The `EvaluationSummary`.

    Raises:
        EvaluationError: missing or misaligned files, or any metric error.
    """
    truth = load_ground_truth(ground_truth)
    sections = align_scores(scores_dir, truth, machines=machines, missing=missing)
    return evaluate(sections, rule=rule, max_fpr=max_fpr, confidence_interval=confidence_interval)
