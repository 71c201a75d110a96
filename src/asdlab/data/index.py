"""Find every clip under a dataset root and parse it into `ClipRecord`s (DCASE.md "Dataset layout").

The walk is recursive, so one function covers `<root>/<Machine>/<train|test>/`,
`<root>/[dcase2025t2/]{dev,eval}_data/raw/<Machine>/...`, flat folders of prefixed names
(`fan_train_section_00_...wav`) and MIMII (`<root>/fan/id_00/{normal,abnormal}/`).
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from asdlab.data.filenames import parse_clip_name
from asdlab.data.records import ClipRecord, Layout, Split
from asdlab.errors import DataError

__all__ = ["index_dataset", "SplitSummary", "summarize_records", "format_summary"]

logger = logging.getLogger(__name__)

_AUDIO_SUFFIXES = frozenset({".wav", ".flac"})
# Archive debris that sits beside real clips in unpacked DCASE zips.
_SKIPPED_DIRS = frozenset({"__MACOSX"})


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

    Args:
        root: dataset folder in any layout the module docstring lists.
        machines: keep only these machine types (exact names, e.g. "ToyCar").
        splits: keep only these splits ("train", "test").
        layout: year hint passed to `parse_clip_name` ("dcase2021", "dcase2026", "mimii", ...).
        mimii_split: split given to MIMII clips, which have none; the caller decides.
        strict: raise on the first unparseable file name instead of skipping it with a warning.

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
    failures: list[tuple[Path, str]] = []
    for path in _audio_files(root):
        try:
            record = parse_clip_name(path, layout=layout)
        except DataError as exc:
            if strict:
                raise
            failures.append((path, str(exc)))
            continue
        if record.layout == "mimii" and record.split != mimii_split:
            record = replace(record, split=mimii_split)
        records.append(record)
    if failures:
        logger.warning("%s: skipped %d file(s) whose names are not DCASE clips, e.g. %s",
                       root, len(failures), failures[0][1])
    if not records:
        detail = f"; first problem: {failures[0][1]}" if failures else ""
        raise DataError(f"{root}: no DCASE or MIMII clips found{detail}")

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
