"""The DCASE Task 2 file-name grammar, 2020-2026, plus MIMII folders (DCASE.md "Dataset layout").

One function, `parse_clip_name`, turns a clip path into a `ClipRecord`. Labels come from the
DCASE part of the name; folders only supply what a name leaves out (machine type, or the split
of 2020, 2024 RoboticArm and anonymised eval names). `looks_like_clip_name` says whether a name
even tries to follow the grammar (a typo) or is foreign (an own recording, `index_dataset`).
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from asdlab.data.records import ClipRecord, Domain, Label, Layout, Split
from asdlab.errors import DataError

__all__ = ["parse_clip_name", "looks_like_clip_name"]

logger = logging.getLogger(__name__)

_EXPECTED_NAMES = (
    "expected 'section_NN_<source|target>_<train|test>_<normal|anomaly>_NNNN[_<attributes>].wav', "
    "'section_NN_<source|target>_<normal|anomaly>_NNNN_<attributes>.wav' (2024 RoboticArm), "
    "'section_NN_NNNN.wav' (anonymised eval), '<normal|anomaly>_id_NN_NNNNNNNN.wav' (2020), "
    "or '<machine>/id_NN/<normal|abnormal>/NNNNNNNN.wav' (MIMII); "
    "an optional '<machine>_<train|test>_' prefix is allowed"
)

_SPLITS: frozenset[str] = frozenset({"train", "test"})
_DOMAINS: frozenset[str] = frozenset({"source", "target"})
_LABELS: frozenset[str] = frozenset({"normal", "anomaly"})
_MIMII_LABELS: dict[str, Label] = {"normal": "normal", "abnormal": "anomaly"}
_MIMII_ID = re.compile(r"id_(\d+)")
_AUDIO_SUFFIXES = frozenset({".wav", ".flac"})
# Layouts that share the `section_NN_<domain>_<split>_...` grammar; a caller's hint picks the year.
_SECTION_LAYOUTS: frozenset[str] = frozenset({"dcase2021", "dcase2023", "dcase2026"})
_CHANNELS: dict[str, int] = {"dcase2026": 2, "mimii": 8}


def parse_clip_name(
    path: str | os.PathLike,
    *,
    machine: str | None = None,
    split: Split | None = None,
    layout: Layout | None = None,
) -> ClipRecord:
    """Parse one clip path into a `ClipRecord`.

    Args:
        path: the audio file; only its name and up to three parent folders are read (no I/O).
        machine: machine type; when None it comes from `<Machine>/<train|test>/` folders,
            then from a `<machine>_<train|test>_` name prefix.
        split: split for names that carry none (2020, 2024 RoboticArm eval, anonymised eval,
            MIMII); when None it comes from a `train`/`test` folder, then a name prefix, and
            anonymised eval names and MIMII default to "test". A split in the name always wins.
        layout: which year's grammar the caller knows the data follows. It tells 2021-2022
            and 2026 (2-channel) data apart from 2023-2025, which share one grammar, and
            forces the MIMII folder grammar with "mimii". None infers it from the name:
            a section other than 00 or a name without attribute field means "dcase2021".

    Returns:
        The record; `channels_hint` is 2 for "dcase2026" and 8 for "mimii".

    Raises:
        DataError: the name fits no grammar, contradicts `layout`, or the machine type or
            split cannot be found; the message names the file and what was expected.
    """
    path = Path(path)
    if layout == "mimii" or _looks_like_mimii(path):
        return _parse_mimii(path, machine=machine, split=split)

    stem = path.stem if path.suffix.lower() in _AUDIO_SUFFIXES else path.name
    parts = stem.split("_")
    start = _grammar_start(parts)
    if start is None:
        raise DataError(f"{path}: cannot parse the DCASE file name: {_EXPECTED_NAMES}")
    prefix, fields = parts[:start], parts[start:]
    prefix_machine, prefix_split = _parse_prefix(path, prefix)
    folder_machine, folder_split = _from_folders(path.parent.parts)

    if folder_machine and prefix_machine and folder_machine != prefix_machine and machine is None:
        logger.warning("%s: folder says machine %r, name prefix says %r; using the folder",
                       path, folder_machine, prefix_machine)
    machine = machine or folder_machine or prefix_machine
    if not machine:
        raise DataError(
            f"{path}: machine type unknown: put the file under '<Machine>/<train|test>/', "
            "prefix its name with '<machine>_<train|test>_', or pass machine="
        )
    fallback_split = split or folder_split or prefix_split

    parse = _parse_section_fields if fields[0] == "section" else _parse_2020_fields
    name = parse(path, fields)
    resolved_layout = _resolve_layout(path, name, layout)
    name_split = name.split
    if name_split is None:
        name_split = fallback_split or ("test" if name.grammar == "eval-anonymised" else None)
        if name_split is None:
            raise DataError(
                f"{path}: the name has no train/test field; put it under a 'train' or 'test' "
                "folder or pass split="
            )
    elif folder_split and folder_split != name_split:
        # DCASE.md: redistributed copies misfile folders; the name is the authority.
        logger.debug("%s: in a %r folder but named %r; using the name", path, folder_split, name_split)

    return ClipRecord(
        path=path,
        machine=machine,
        section=name.section,
        split=name_split,
        label=name.label,
        domain=name.domain,
        index=name.index,
        attributes=name.attributes,
        layout=resolved_layout,
        channels_hint=_CHANNELS.get(layout or resolved_layout, 1),
    )


def looks_like_clip_name(path: str | os.PathLike) -> bool:
    """Whether a name carries a DCASE marker (`section_NN`, `<label>_id`, `id_NN_NNNN`) or a MIMII path.

    `index_dataset` uses it to tell a mistyped DCASE name (an error to report) from a foreign
    name (an own recording); it reads only the path, never the file.
    """
    path = Path(path)
    if _looks_like_mimii(path):
        return True
    stem = path.stem if path.suffix.lower() in _AUDIO_SUFFIXES else path.name
    return _grammar_start(stem.split("_")) is not None


def _grammar_start(parts: list[str]) -> int | None:
    """Index of the first field of the DCASE part of a split name, after any prefix."""
    for i in range(len(parts) - 1):
        head, nxt = parts[i], parts[i + 1]
        if head == "section" and nxt.isdigit():
            return i
        if head in _LABELS and nxt == "id":
            return i
        # 2020 eval test names are anonymised as id_NN_NNNNNNNN.
        if head == "id" and nxt.isdigit() and i + 3 == len(parts) and parts[i + 2].isdigit():
            return i
    return None


def _parse_prefix(path: Path, prefix: list[str]) -> tuple[str | None, Split | None]:
    """Machine and split from a redistribution prefix such as `fan_train_`."""
    if not prefix:
        return None, None
    split: Split | None = None
    if prefix[-1] in _SPLITS:
        split = prefix[-1]  # type: ignore[assignment]
        prefix = prefix[:-1]
    if not prefix or not all(prefix):
        raise DataError(f"{path}: cannot read the '<machine>_<train|test>_' prefix: {_EXPECTED_NAMES}")
    return "_".join(prefix), split


def _from_folders(parents: tuple[str, ...]) -> tuple[str | None, Split | None]:
    """Machine and split from a `<Machine>/<train|test>/file` tree; None where it says nothing."""
    if not parents or parents[-1] not in _SPLITS:
        return None, None
    machine = parents[-2] if len(parents) >= 2 and parents[-2] not in ("", "/", ".", "..") else None
    return machine, parents[-1]  # type: ignore[return-value]


@dataclass(frozen=True)
class _NameFields:
    """What the DCASE part of a name says; None where that grammar has no such field."""

    grammar: Layout
    section: str
    index: str
    split: Split | None = None
    label: Label | None = None
    domain: Domain | None = None
    attributes: str = ""


def _parse_section_fields(path: Path, f: list[str]) -> _NameFields:
    """2021-2026 names: `section_NN_...`, the RoboticArm variant and anonymised eval names."""
    n = len(f)
    if n == 3 and f[2].isdigit():
        return _NameFields("eval-anonymised", f[1], f[2])
    if n >= 6 and f[2] in _DOMAINS and f[3] in _SPLITS and f[4] in _LABELS and f[5].isdigit():
        return _NameFields("dcase2023", f[1], f[5], f[3], f[4], f[2], "_".join(f[6:]))  # type: ignore[arg-type]
    # 2024 eval RoboticArm: `section_00_source_normal_0035_weight15_BckgF`, no split field.
    if n >= 5 and f[2] in _DOMAINS and f[3] in _LABELS and f[4].isdigit():
        return _NameFields("robotic-arm-2024", f[1], f[4], None, f[3], f[2], "_".join(f[5:]))  # type: ignore[arg-type]
    raise DataError(f"{path}: cannot parse the DCASE file name: {_EXPECTED_NAMES}")


def _parse_2020_fields(path: Path, f: list[str]) -> _NameFields:
    """2020 names: `normal_id_00_00000000` (dev, eval train) and `id_00_00000000` (eval test)."""
    if len(f) == 4 and f[0] in _LABELS and f[1] == "id" and f[2].isdigit() and f[3].isdigit():
        return _NameFields("dcase2020", f[2], f[3], label=f[0])  # type: ignore[arg-type]
    if len(f) == 3 and f[0] == "id" and f[1].isdigit() and f[2].isdigit():
        return _NameFields("eval-anonymised", f[1], f[2])
    raise DataError(f"{path}: cannot parse the DCASE 2020 file name: {_EXPECTED_NAMES}")


def _resolve_layout(path: Path, name: _NameFields, hint: Layout | None) -> Layout:
    """Combine the grammar the name matched with the caller's year hint."""
    grammar = name.grammar
    if grammar == "dcase2023":
        if hint in _SECTION_LAYOUTS:
            return hint  # type: ignore[return-value]
        if hint == "robotic-arm-2024":
            return "dcase2023"  # a RoboticArm-year file that does carry its split field
        if hint is None:
            # 2023+ has one section per machine and always an attribute field (or noAttribute).
            return "dcase2021" if name.section != "00" or not name.attributes else "dcase2023"
    elif grammar == "eval-anonymised" or grammar == hint or hint is None:
        return grammar
    elif grammar == "robotic-arm-2024" and hint in _SECTION_LAYOUTS:
        return grammar
    raise DataError(f"{path}: the name follows the {grammar!r} grammar, but layout={hint!r} was asked for")


def _looks_like_mimii(path: Path) -> bool:
    """MIMII keeps labels in folders: `<machine>/id_NN/<normal|abnormal>/NNNNNNNN.wav`."""
    parents = path.parent.parts
    return (
        len(parents) >= 3
        and parents[-1] in _MIMII_LABELS
        and _MIMII_ID.fullmatch(parents[-2]) is not None
        and path.stem.isdigit()
    )


def _parse_mimii(path: Path, *, machine: str | None, split: Split | None) -> ClipRecord:
    parents = path.parent.parts
    if not _looks_like_mimii(path):
        raise DataError(f"{path}: not a MIMII clip: expected '<machine>/id_NN/<normal|abnormal>/NNNNNNNN.wav'")
    return ClipRecord(
        path=path,
        machine=machine or parents[-3],
        section=_MIMII_ID.fullmatch(parents[-2]).group(1),  # type: ignore[union-attr]
        # MIMII has no split; DCASE 2020 drew both its splits from it, so the caller decides.
        split=split or "test",
        label=_MIMII_LABELS[parents[-1]],
        domain=None,
        index=path.stem,
        attributes="",
        layout="mimii",
        channels_hint=_CHANNELS["mimii"],
    )
