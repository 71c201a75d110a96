"""Find every clip under a dataset root and parse it into `ClipRecord`s (DCASE.md "Dataset layout").

The walk is recursive, so one function covers `<root>/<Machine>/<train|test>/`,
`<root>/[dcase2025t2/]{dev,eval}_data/raw/<Machine>/...`, flat folders of prefixed names
(`fan_train_section_00_...wav`), MIMII (`<root>/fan/id_00/{normal,abnormal}/`) and one's own
recordings: `<Machine>/<train|test>/` folders whose file names are not DCASE names at all.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from asdlab.data.filenames import looks_like_clip_name, parse_clip_name
from asdlab.data.records import NO_ATTRIBUTE, ClipRecord, Layout, Split
from asdlab.errors import DataError

__all__ = ["index_dataset", "SplitSummary", "summarize_records", "format_summary"]

logger = logging.getLogger(__name__)

_AUDIO_SUFFIXES = frozenset({".wav", ".flac"})
# Archive debris that sits beside real clips in unpacked DCASE zips.
_SKIPPED_DIRS = frozenset({"__MACOSX"})
_SPLIT_FOLDERS = frozenset({"train", "test"})
# Own recordings have one section; score files are then anomaly_score_<Machine>_section_00_test.csv.
_OWN_SECTION = "00"
# Score files are `filename,score` rows without quoting (metrics/files.py), so these cannot appear in a name.
_UNWRITABLE_NAME_CHARS = frozenset(',"\n\r')


def index_dataset(
    root: str | os.PathLike,
    *,
    machines: Iterable[str] | None = None,
    splits: Iterable[Split] | None = None,
    layout: Layout | None = None,
    mimii_split: Split = "test",
    strict: bool = False,
) -> list[ClipRecord]:
    """Index every `.wav`/`.flac` clip under `root`.

    Own recordings: a `<Machine>` folder (anywhere under `root`) none of whose clips directly in
    its `train/` and `test/` folders has a DCASE or MIMII name (`looks_like_clip_name`) is read
    as layout "own-recordings", logged once at INFO: every clip is section "00" with attributes
    "noAttribute"; train clips are "normal" and "source"; test clips have no label and no domain
    (like anonymised eval names). File names are kept as they are (score files list them; names
    with a comma, quote or line break are skipped). A folder that mixes DCASE names with other
    names stays a DCASE folder whose other names are unparseable, so a mistyped DCASE name is
    still reported. Clips in sub-folders of `train/` or `test/` are never own recordings.

    Args:
        root: dataset folder in any layout the module docstring lists.
        machines: keep only these machine types (exact names, e.g. "ToyCar").
        splits: keep only these splits ("train", "test").
        layout: year hint passed to `parse_clip_name` ("dcase2021", "dcase2026", "mimii", ...).
        mimii_split: split given to MIMII clips, which have none; the caller decides.
        strict: raise on an unparseable file name (a mistyped DCASE name first) instead of
            skipping it with a warning.

    Returns:
        Records sorted by (machine, section, split, path), so the order is reproducible.

    Raises:
        DataError: `root` is missing, holds no parseable clip, a requested machine is absent,
            or (with `strict`) a file name is unparseable.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: dataset root does not exist or is not a folder")

    records: list[ClipRecord] = []
    failures: list[tuple[Path, DataError]] = []
    for path in _audio_files(root):
        try:
            record = parse_clip_name(path, layout=layout)
        except DataError as exc:
            failures.append((path, exc))
            continue
        if record.layout == "mimii" and record.split != mimii_split:
            record = replace(record, split=mimii_split)
        records.append(record)
    own, failures = _read_own_recordings(root, records, failures)
    records.extend(own)
    if failures:
        if strict:
            raise failures[0][1]
        logger.warning("%s: skipped %d file(s) whose names are not DCASE clips, e.g. %s",
                       root, len(failures), failures[0][1])
    if not records:
        detail = f"; first problem: {failures[0][1]}" if failures else ""
        raise DataError(f"{root}: no DCASE or MIMII clips found (nor own recordings in "
                        f"<Machine>/<train|test>/ folders){detail}")

    if machines is not None:
        wanted = set(machines)
        found = {r.machine for r in records}
        if missing := sorted(wanted - found):
            raise DataError(f"{root}: machine type(s) {missing} not found; available: {sorted(found)}")
        records = [r for r in records if r.machine in wanted]
    if splits is not None:
        wanted_splits = set(splits)
        records = [r for r in records if r.split in wanted_splits]
        if not records:
            raise DataError(f"{root}: no clips in split(s) {sorted(wanted_splits)}")
    records.sort(key=lambda r: (r.machine, r.section, r.split, str(r.path)))
    return records


def _machine_folder(root: Path, path: Path) -> Path | None:
    """The `<Machine>` folder of a `<root>/[...]/<Machine>/<train|test>/<file>` path, else None."""
    parts = path.relative_to(root).parts
    if len(parts) < 3 or parts[-2] not in _SPLIT_FOLDERS:
        return None
    return path.parent.parent


def _read_own_recordings(
    root: Path, records: list[ClipRecord], failures: list[tuple[Path, DataError]]
) -> tuple[list[ClipRecord], list[tuple[Path, DataError]]]:
    """Turn the unparseable clips of machine folders without any DCASE name into own-recording records.

    Returns the new records and the failures that remain: mistyped DCASE names first, so that
    errors and warnings name them, then the rest, each group in walk order.
    """
    # A folder with one DCASE-looking name, parsed or not, is a DCASE folder: its other names stay errors.
    dcase_folders = {_machine_folder(root, r.path) for r in records}
    dcase_folders |= {_machine_folder(root, p) for p, _ in failures if looks_like_clip_name(p)}
    remaining: list[tuple[Path, DataError]] = []
    foreign: dict[Path, list[Path]] = {}
    mixed: dict[Path, list[Path]] = {}
    for path, exc in failures:
        folder = _machine_folder(root, path)
        if folder is not None and folder not in dcase_folders:
            foreign.setdefault(folder, []).append(path)
            continue
        remaining.append((path, exc))
        if folder is not None and not looks_like_clip_name(path):
            mixed.setdefault(folder, []).append(path)
    for folder, paths in mixed.items():
        logger.warning("%s: mixes DCASE file names with %d other name(s) such as %s, which are skipped; a machine "
                       "folder is read as own recordings only when none of its names is a DCASE name",
                       folder, len(paths), paths[0].name)
    own: list[ClipRecord] = []
    for folder, paths in foreign.items():
        logger.info("%s: no DCASE file names; its %d clip(s) are read as own recordings (section %s; "
                    "train = normal, source domain; test = unlabelled)", folder, len(paths), _OWN_SECTION)
        for path in paths:
            if _UNWRITABLE_NAME_CHARS & set(path.name):
                remaining.append((path, DataError(
                    f"{path}: the file name contains a comma, quote or line break, which score files "
                    "(filename,score) cannot hold; rename the file")))
                continue
            own.append(_own_record(folder.name, path))
    remaining.sort(key=lambda failure: not looks_like_clip_name(failure[0]))
    return own, remaining


def _own_record(machine: str, path: Path) -> ClipRecord:
    """An own recording: the folder gives machine and split; label and domain are known for train only."""
    split: Split = "train" if path.parent.name == "train" else "test"
    train = split == "train"
    return ClipRecord(
        path=path,
        machine=machine,
        section=_OWN_SECTION,
        split=split,
        # Training clips are normal by definition of the task; test clips are what the user asks about.
        label="normal" if train else None,
        domain="source" if train else None,
        index=None,
        attributes=NO_ATTRIBUTE,
        layout="own-recordings",
    )


def _audio_files(root: Path) -> list[Path]:
    """Audio files under `root`, skipping hidden folders and archive debris."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in _SKIPPED_DIRS)
        found.extend(
            Path(dirpath) / f
            for f in sorted(filenames)
            if not f.startswith(".") and Path(f).suffix.lower() in _AUDIO_SUFFIXES
        )
    return found


@dataclass(frozen=True)
class SplitSummary:
    """Clip counts of one (machine, split); `unlabelled` counts anonymised clips."""

    machine: str
    split: str
    clips: int
    source: int
    target: int
    normal: int
    anomaly: int
    unlabelled: int
    sections: tuple[str, ...]


def summarize_records(records: Iterable[ClipRecord]) -> list[SplitSummary]:
    """Count clips per (machine, split) by domain and label, sorted by machine then split."""
    counts: dict[tuple[str, str], Counter[str]] = {}
    sections: dict[tuple[str, str], set[str]] = {}
    for r in records:
        key = (r.machine, r.split)
        c = counts.setdefault(key, Counter())
        c["clips"] += 1
        c[r.domain or "no-domain"] += 1
        c[r.label or "unlabelled"] += 1
        sections.setdefault(key, set()).add(r.section)
    return [
        SplitSummary(
            machine=m, split=s, clips=c["clips"], source=c["source"], target=c["target"],
            normal=c["normal"], anomaly=c["anomaly"], unlabelled=c["unlabelled"],
            sections=tuple(sorted(sections[(m, s)])),
        )
        for (m, s), c in sorted(counts.items())
    ]


def format_summary(rows: list[SplitSummary]) -> str:
    """A plain-text table of `summarize_records` output, one line per (machine, split)."""
    header = ("machine", "split", "clips", "source", "target", "normal", "anomaly", "unlabelled", "sections")
    lines = [
        (r.machine, r.split, r.clips, r.source, r.target, r.normal, r.anomaly, r.unlabelled, ",".join(r.sections))
        for r in rows
    ]
    table = [header] + [tuple(str(v) for v in line) for line in lines]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in table)
