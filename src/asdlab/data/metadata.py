"""Readers for the DCASE metadata CSVs and functions that apply them to clip records.

Sources (DCASE.md "Dataset layout"): `attributes_NN.csv` (`file_name,d1p,d1v,d2p,d2v,...`),
the organisers' `eval_data_list_20XX.csv` (a machine-name line, then `anonymised,revealing`
lines) and the released `attributes_00_{train,test}_correspondence.csv`
(`source_file_name,target_file_name`: the true-attribute name, then the `noAttribute` name).
"""

from __future__ import annotations

import csv
import logging
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path

from asdlab.data.filenames import parse_clip_name
from asdlab.data.records import NO_ATTRIBUTE, ClipRecord
from asdlab.errors import DataError

__all__ = [
    "read_attributes_csv",
    "read_eval_data_list",
    "read_attribute_correspondence",
    "load_attribute_tables",
    "load_attribute_correspondences",
    "apply_attribute_tables",
    "reveal_attributes",
    "reveal_eval_labels",
]

logger = logging.getLogger(__name__)

_PAIR_COLUMN = re.compile(r"d(\d+)([pv])")
_CORRESPONDENCE_GLOB = "attributes_*_correspondence.csv"


def _rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(1-based line number, stripped cells) of each non-blank CSV line; BOM tolerated."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            for line_no, row in enumerate(csv.reader(f), start=1):
                cells = [c.strip() for c in row]
                while cells and not cells[-1]:
                    cells.pop()
                if cells:
                    yield line_no, cells
    except FileNotFoundError:
        raise DataError(f"{path}: metadata file not found") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read metadata file ({exc.strerror})") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: not a readable CSV file ({exc})") from None


def read_attributes_csv(path: str | os.PathLike) -> dict[str, str]:
    """Read one `attributes_NN.csv` into {clip base name: attribute string}.

    The attribute string is written as in file names (`volt_1.5_wt_130`), so it compares
    with `ClipRecord.attributes`; rows marked `noAttribute` map to `NO_ATTRIBUTE`.
    Parameter/value columns are paired by number (`d1p` with `d1v`); headers without
    that naming are paired in order. Rows may stop early (fewer pairs than the header).

    Raises:
        DataError: missing `file_name` column, a parameter without value, or a duplicated
            file name; the message names the file and line.
    """
    path = Path(path)
    rows = _rows(path)
    try:
        _, header = next(rows)
    except StopIteration:
        raise DataError(f"{path}: empty attribute file, expected a 'file_name,d1p,d1v,...' header") from None
    lowered = [h.lower() for h in header]
    if "file_name" not in lowered:
        raise DataError(f"{path}: line 1: no 'file_name' column in header {header}")
    name_col = lowered.index("file_name")
    pairs = _pair_columns(lowered, name_col)

    table: dict[str, str] = {}
    for line_no, cells in rows:
        name = cells[name_col] if name_col < len(cells) else ""
        if not name:
            raise DataError(f"{path}: line {line_no}: empty file_name")
        parts: list[str] = []
        hidden = False
        for p_col, v_col in pairs:
            key = cells[p_col] if p_col < len(cells) else ""
            value = cells[v_col] if v_col < len(cells) else ""
            if NO_ATTRIBUTE in (key, value):
                hidden = True
            elif key and not value:
                raise DataError(f"{path}: line {line_no}: parameter {key!r} has no value")
            elif key:
                parts += [key, value]
        base = Path(name).name
        if base in table:
            raise DataError(f"{path}: line {line_no}: {base!r} is listed twice")
        table[base] = NO_ATTRIBUTE if hidden else "_".join(parts)
    return table


def _pair_columns(header: list[str], name_col: int) -> list[tuple[int, int]]:
    """(parameter column, value column) pairs of an attribute-file header."""
    numbered: dict[str, dict[str, int]] = {}
    for col, name in enumerate(header):
        if m := _PAIR_COLUMN.fullmatch(name):
            numbered.setdefault(m.group(1), {})[m.group(2)] = col
    if numbered and all(len(v) == 2 for v in numbered.values()):
        return [(v["p"], v["v"]) for _, v in sorted(numbered.items(), key=lambda kv: int(kv[0]))]
    # Variant headers without dNp/dNv names: the columns after file_name alternate key, value.
    rest = [c for c in range(len(header)) if c != name_col]
    return list(zip(rest[0::2], rest[1::2]))


def read_eval_data_list(path: str | os.PathLike) -> dict[str, dict[str, str]]:
    """Read an organisers' `eval_data_list_20XX.csv` into {machine: {anonymised: revealing}}.

    Raises:
        DataError: a name pair before any machine line, a line with more than two names,
            a name listed twice for one machine, or an empty file; message names file and line.
    """
    path = Path(path)
    lists: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    machine = ""
    for line_no, cells in _rows(path):
        if len(cells) == 1:
            machine = cells[0]
            current = lists.setdefault(machine, {})
        elif len(cells) == 2:
            if current is None:
                raise DataError(f"{path}: line {line_no}: name pair before any machine-type line")
            anonymised, revealing = (Path(c).name for c in cells)
            if anonymised in current:
                raise DataError(f"{path}: line {line_no}: {anonymised!r} listed twice for {machine}")
            current[anonymised] = revealing
        else:
            raise DataError(
                f"{path}: line {line_no}: expected a machine type or 'anonymised.wav,revealing.wav', "
                f"got {len(cells)} fields"
            )
    if not lists:
        raise DataError(f"{path}: empty eval data list")
    return lists


def read_attribute_correspondence(path: str | os.PathLike) -> dict[str, str]:
    """Read one `attributes_00_{train,test}_correspondence.csv` into {hidden name: revealing name}.

    In the released files `target_file_name` is the `noAttribute` name and `source_file_name`
    the one with true attributes; a file written the other way round is detected by which
    column holds the `noAttribute` names.

    Raises:
        DataError: wrong header, a line without two names, a pair whose section, domain,
            split, label or index differ, or a name listed twice; message names file and line.
    """
    path = Path(path)
    rows = list(_rows(path))
    if not rows or [h.lower() for h in rows[0][1]] != ["source_file_name", "target_file_name"]:
        raise DataError(f"{path}: line 1: expected the header 'source_file_name,target_file_name'")
    pairs: list[tuple[int, str, str]] = []
    for line_no, cells in rows[1:]:
        if len(cells) != 2:
            raise DataError(f"{path}: line {line_no}: expected 2 names, got {len(cells)} field(s)")
        pairs.append((line_no, Path(cells[0]).name, Path(cells[1]).name))
    source_hidden = sum(_is_hidden(s) for _, s, _ in pairs)
    target_hidden = sum(_is_hidden(t) for _, _, t in pairs)
    swap = source_hidden > target_hidden

    mapping: dict[str, str] = {}
    for line_no, source, target in pairs:
        hidden, revealing = (source, target) if swap else (target, source)
        # Both names share section, domain, split, label and index; only attributes differ.
        if _name_head(hidden) != _name_head(revealing):
            raise DataError(f"{path}: line {line_no}: {hidden!r} and {revealing!r} are not the same clip")
        if hidden in mapping:
            raise DataError(f"{path}: line {line_no}: {hidden!r} listed twice")
        mapping[hidden] = revealing
    return mapping


def _is_hidden(name: str) -> bool:
    return Path(name).stem.endswith("_" + NO_ATTRIBUTE)


def _name_head(name: str) -> list[str]:
    """The fields before the attribute string: section_NN_<domain>_<split>_<label>_<index>."""
    return Path(name).stem.split("_")[:6]


def load_attribute_tables(root: str | os.PathLike) -> dict[str, dict[str, str]]:
    """All `<Machine>/attributes_NN.csv` under `root`, as {machine: {base name: attributes}}.

    Sections of one machine are merged (their names differ by section).
    """
    tables: dict[str, dict[str, str]] = {}
    for path in sorted(Path(root).rglob("attributes_*.csv")):
        if path.match(_CORRESPONDENCE_GLOB):
            continue
        tables.setdefault(path.parent.name, {}).update(read_attributes_csv(path))
    return tables


def load_attribute_correspondences(root: str | os.PathLike) -> dict[str, dict[str, str]]:
    """All `<Machine>/attributes_00_*_correspondence.csv` under `root`, as {machine: {hidden: revealing}}."""
    found: dict[str, dict[str, str]] = {}
    for path in sorted(Path(root).rglob(_CORRESPONDENCE_GLOB)):
        found.setdefault(path.parent.name, {}).update(read_attribute_correspondence(path))
    return found


def apply_attribute_tables(
    records: Iterable[ClipRecord], tables: Mapping[str, Mapping[str, str]]
) -> list[ClipRecord]:
    """Fill in attributes from `attributes_NN.csv` tables where a name carries none.

    Only records with an empty or `noAttribute` attribute string change, and only when the
    table gives a usable value; every other record is returned as is.

    Args:
        records: clips, in any order (kept).
        tables: {machine: {base name: attribute string}}, as `load_attribute_tables` returns.
    """
    out = []
    for r in records:
        value = tables.get(r.machine, {}).get(r.filename, "")
        if not r.has_attributes and value and value != NO_ATTRIBUTE:
            r = replace(r, attributes=value)
        out.append(r)
    return out


def reveal_attributes(
    records: Iterable[ClipRecord], correspondences: Mapping[str, Mapping[str, str]]
) -> list[ClipRecord]:
    """Replace `noAttribute` with the true attributes from the correspondence files.

    Paths, labels and every other field stay; only `attributes` changes, so pseudo-attributes
    can be scored against the truth (ARI, NMI).

    Args:
        records: clips, in any order (kept).
        correspondences: {machine: {hidden name: revealing name}}, as
            `load_attribute_correspondences` returns.

    Returns:
        The records, revealed where the mapping knows them. A `noAttribute` clip of a machine
        that has a mapping but misses this clip is logged as a warning and kept unrevealed.
    """
    out = []
    missing: list[str] = []
    for r in records:
        mapping = correspondences.get(r.machine)
        if mapping is not None and r.attributes == NO_ATTRIBUTE:
            revealing = mapping.get(r.filename)
            if revealing is None:
                missing.append(f"{r.machine}/{r.filename}")
            else:
                true = parse_clip_name(Path(revealing), machine=r.machine, split=r.split)
                r = replace(r, attributes=true.attributes)
        out.append(r)
    if missing:
        logger.warning("no true attributes for %d noAttribute clip(s), e.g. %s", len(missing), missing[0])
    return out


def reveal_eval_labels(
    records: Iterable[ClipRecord], eval_lists: Mapping[str, Mapping[str, str]]
) -> list[ClipRecord]:
    """Give anonymised eval clips (`section_00_0000.wav`) the labels of their revealing names.

    The path, index and layout stay those of the anonymised name, which is what score files
    list; label, domain and attributes come from the revealing name. Other records pass unchanged.

    Args:
        records: clips, in any order (kept).
        eval_lists: {machine: {anonymised name: revealing name}}, as `read_eval_data_list`
            returns.

    Raises:
        DataError: an anonymised clip whose machine or name the list does not hold.
    """
    out = []
    for r in records:
        if r.layout == "eval-anonymised":
            if r.machine not in eval_lists:
                raise DataError(f"{r.path}: machine type {r.machine!r} is not in the eval data list; "
                                f"it has {sorted(eval_lists)}")
            revealing = eval_lists[r.machine].get(r.filename)
            if revealing is None:
                raise DataError(f"{r.path}: {r.filename!r} is not listed for {r.machine} in the eval data list")
            true = parse_clip_name(Path(revealing), machine=r.machine, split=r.split)
            r = replace(r, label=true.label, domain=true.domain, attributes=true.attributes)
        out.append(r)
    return out
