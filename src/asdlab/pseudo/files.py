"""The pseudo-attribute CSV the fine-tuning stage reads, and a DCASE `attributes_NN.csv`-style copy.

`pseudo_attributes.csv` has one row per clustered clip, header
`path,machine,section,domain,pseudo_attribute`: `path` relative to the dataset root (posix),
`pseudo_attribute` a string such as `pseudo_03`, used exactly like a DCASE attribute string
(it parses as the pair ("pseudo", "03")). `domain` may be empty.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from asdlab._io import atomic_write_text
from asdlab.errors import DataError

__all__ = [
    "PSEUDO_KEY",
    "PseudoAttributeRow",
    "PseudoAttributeMap",
    "pseudo_attribute_name",
    "write_pseudo_attributes",
    "read_pseudo_attribute_rows",
    "read_pseudo_attributes",
    "write_attributes_csv",
]

PSEUDO_KEY = "pseudo"  # the attribute key of every pseudo-attribute ("pseudo_03" = ("pseudo", "03"))
_HEADER = ("path", "machine", "section", "domain", "pseudo_attribute")


def pseudo_attribute_name(cluster: int) -> str:
    """Cluster number -> attribute string (`3` -> `pseudo_03`)."""
    return f"{PSEUDO_KEY}_{cluster:02d}"


@dataclass(frozen=True)
class PseudoAttributeRow:
    """One clip and its pseudo-attribute.

    Attributes:
        path: the clip's path relative to the dataset root, posix separators.
        machine: machine type.
        section: two-digit section.
        domain: "source", "target" or "" when unknown.
        pseudo_attribute: e.g. "pseudo_03".
    """

    path: str
    machine: str
    section: str
    domain: str
    pseudo_attribute: str


class PseudoAttributeMap(dict[str, str]):
    """{relative posix path: pseudo-attribute} that also finds a clip by another spelling of its path.

    A key that is not stored is matched against the stored paths with the same file name: one of
    the two must end with the other at a folder boundary (an absolute path under the dataset root,
    or `<Machine>/train/<name>`), and a bare file name matches when only one stored clip has it.
    DCASE names repeat across machine types, so a key that fits several clips raises `KeyError`.
    """

    _by_name: dict[str, list[str]] | None = None

    def _resolve(self, key: str | os.PathLike) -> str | None:
        text = Path(key).as_posix()
        if dict.__contains__(self, text):
            return text
        if self._by_name is None or sum(map(len, self._by_name.values())) != len(self):
            self._by_name = {}
            for stored in self:
                self._by_name.setdefault(PurePosixPath(stored).name, []).append(stored)
        fits = [
            stored for stored in self._by_name.get(PurePosixPath(text).name, [])
            if text.endswith("/" + stored) or stored.endswith("/" + text) or stored == text
        ]
        if len(fits) > 1:
            raise KeyError(f"{text!r} fits {len(fits)} clips ({fits[0]}, {fits[1]}, ...); "
                           "look it up by its path relative to the dataset root")
        return fits[0] if fits else None

    def __missing__(self, key: str | os.PathLike) -> str:
        stored = self._resolve(key)
        if stored is None:
            raise KeyError(key)
        return dict.__getitem__(self, stored)

    def __contains__(self, key: object) -> bool:
        if dict.__contains__(self, key):
            return True
        try:
            return isinstance(key, str | os.PathLike) and self._resolve(key) is not None
        except KeyError:  # an ambiguous file name is not one clip
            return False

    def get(self, key: str | os.PathLike, default: str | None = None) -> str | None:  # type: ignore[override]
        """`self[key]` with the same fallbacks, or `default` when no clip matches."""
        try:
            return self[key]
        except KeyError:
            return default


def _csv_text(rows: Iterable[Sequence[str]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


def write_pseudo_attributes(path: str | os.PathLike, rows: Iterable[PseudoAttributeRow]) -> None:
    """Write `rows` to `path` (the module's CSV format) atomically.

    Raises:
        DataError: a clip listed twice, or an absolute clip path.
    """
    rows = list(rows)
    seen: set[str] = set()
    for row in rows:
        if PurePosixPath(row.path).is_absolute() or "\\" in row.path:
            raise DataError(f"{path}: clip path {row.path!r} must be relative to the dataset root, posix style")
        if row.path in seen:
            raise DataError(f"{path}: clip {row.path!r} is listed twice")
        seen.add(row.path)
    body = [[r.path, r.machine, r.section, r.domain, r.pseudo_attribute] for r in rows]
    atomic_write_text(path, _csv_text([_HEADER, *body]))


def read_pseudo_attribute_rows(path: str | os.PathLike) -> list[PseudoAttributeRow]:
    """Read every row of a pseudo-attribute CSV.

    Raises:
        DataError: missing file, wrong header, a short row, an empty attribute or a clip listed
            twice; the message names the file and line.
    """
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            lines = list(csv.reader(f))
    except FileNotFoundError:
        raise DataError(f"{path}: pseudo-attribute file not found") from None
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise DataError(f"{path}: cannot read the pseudo-attribute file ({error})") from None
    if not lines or tuple(c.strip() for c in lines[0]) != _HEADER:
        raise DataError(f"{path}: line 1: expected the header {','.join(_HEADER)}")
    rows: list[PseudoAttributeRow] = []
    seen: set[str] = set()
    for line_no, cells in enumerate(lines[1:], start=2):
        cells = [c.strip() for c in cells]
        if not any(cells):
            continue
        if len(cells) != len(_HEADER):
            raise DataError(f"{path}: line {line_no}: expected {len(_HEADER)} fields, got {len(cells)}")
        row = PseudoAttributeRow(*cells)
        if not row.path or not row.pseudo_attribute:
            raise DataError(f"{path}: line {line_no}: empty path or pseudo_attribute")
        if row.path in seen:
            raise DataError(f"{path}: line {line_no}: {row.path!r} is listed twice")
        seen.add(row.path)
        rows.append(row)
    return rows


def read_pseudo_attributes(path: str | os.PathLike) -> PseudoAttributeMap:
    """Read a pseudo-attribute CSV into {clip path relative to the dataset root: pseudo-attribute}.

    The returned mapping also answers lookups by absolute path or by an unambiguous file name (see
    `PseudoAttributeMap`).

    Raises:
        DataError: as `read_pseudo_attribute_rows`.
    """
    return PseudoAttributeMap((row.path, row.pseudo_attribute) for row in read_pseudo_attribute_rows(path))


def write_attributes_csv(path: str | os.PathLike, rows: Iterable[PseudoAttributeRow]) -> None:
    """Write rows as a DCASE `attributes_NN.csv` (`file_name,d1p,d1v`), e.g. `pseudo,03`.

    `file_name` is `<Machine>/<split folder>/<name>` as in the released files (the last three parts
    of the path), so `asdlab.data.metadata.read_attributes_csv` gives back `pseudo_03`.
    """
    body = []
    for row in rows:
        key, _, value = row.pseudo_attribute.partition("_")
        body.append(["/".join(PurePosixPath(row.path).parts[-3:]), key, value])
    atomic_write_text(path, _csv_text([("file_name", "d1p", "d1v"), *body]))
