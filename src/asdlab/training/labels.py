"""Class tables for machine-attribute classification (the paper's Eq. 10: l_attr = (machine, attribute)).

One class per (machine type, section, attribute[, domain]); a pseudo-attribute from the clustering
stage replaces `noAttribute`, and without either a machine's section is one class (the paper's "N/A"
baseline). Auxiliary classes for supplementary clean-machine / noise-only clips are added per machine.
The table is JSON-ready so it is saved with the model. No torch here.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from asdlab.data.records import NO_ATTRIBUTE, ClipRecord
from asdlab.errors import ConfigError, DataError

__all__ = [
    "AUXILIARY_KINDS",
    "ClassKey",
    "Granularity",
    "LabelMap",
    "build_label_map",
    "find_auxiliary_clips",
]

Granularity = Literal["attribute", "section", "machine"]
_GRANULARITIES = ("attribute", "section", "machine")
AUXILIARY_KINDS = ("clean", "noise")
_AUX_PREFIX = "aux_"  # attribute of an auxiliary class: "aux_clean", "aux_noise"
_AUX_FOLDER = "supplemental"  # DCASE 2025: <Machine>/supplemental/ beside train/ and test/
_AUDIO_SUFFIXES = (".wav", ".flac")
_FORMAT = "asdlab-label-map"


@dataclass(frozen=True, order=True)
class ClassKey:
    """What one class stands for. Empty strings mean "not distinguished" (e.g. domain off)."""

    machine: str
    section: str = ""
    attribute: str = ""
    domain: str = ""

    def name(self) -> str:
        """A readable id, e.g. `fan/00/vel_6_loc_A/source`."""
        return "/".join(p for p in (self.machine, self.section, self.attribute, self.domain) if p)


def _pseudo_lookup(pseudo: Mapping[str, str], record: ClipRecord) -> str | None:
    # A `PseudoAttributeMap` resolves absolute paths and file names itself; a plain dict may be
    # keyed by the posix path or by the file name.
    for key in (Path(record.path).as_posix(), record.filename):
        try:
            value = pseudo.get(key)
        except KeyError:  # an ambiguous file name in a PseudoAttributeMap
            value = None
        if value:
            return value
    return None


@dataclass(frozen=True)
class LabelMap:
    """Class index <-> `ClassKey`, and how clips are mapped to classes.

    Attributes:
        classes: the classes, sorted; the index in this tuple is the class id.
        granularity: "attribute" (machine, section, attribute), "section" (machine, section) or
            "machine" (machine type only).
        use_domain: source and target clips of the same attribute are different classes.
        pseudo_attributes: clips labelled by a pseudo-attribute (for the record).
    """

    classes: tuple[ClassKey, ...]
    granularity: Granularity = "attribute"
    use_domain: bool = False
    pseudo_attributes: int = 0

    @property
    def num_classes(self) -> int:
        """C."""
        return len(self.classes)

    def key_of(self, record: ClipRecord, *, pseudo: Mapping[str, str] | None = None) -> ClassKey:
        """The class key a training clip belongs to (it need not be in the table)."""
        attribute = ""
        if self.granularity == "attribute":
            attribute = record.attributes if record.has_attributes else NO_ATTRIBUTE
            if attribute == NO_ATTRIBUTE and pseudo is not None:
                attribute = _pseudo_lookup(pseudo, record) or NO_ATTRIBUTE
        section = "" if self.granularity == "machine" else record.section
        domain = (record.domain or "") if self.use_domain else ""
        return ClassKey(record.machine, section, attribute, domain)

    def index(self, key: ClassKey) -> int:
        """Class id of `key`.

        Raises:
            DataError: `key` is not a class of this table.
        """
        try:
            return self._positions()[key]
        except KeyError:
            raise DataError(f"class {key.name()!r} is not in the label map ({self.num_classes} classes)") from None

    def _positions(self) -> dict[ClassKey, int]:
        cached = self.__dict__.get("_cache")
        if cached is None:
            cached = {key: i for i, key in enumerate(self.classes)}
            object.__setattr__(self, "_cache", cached)
        return cached

    def labels(self, records: Sequence[ClipRecord], *, pseudo: Mapping[str, str] | None = None) -> list[int]:
        """Class id of each record (see `key_of`).

        Raises:
            DataError: a record whose class is not in the table (names it).
        """
        out = []
        for record in records:
            key = self.key_of(record, pseudo=pseudo)
            if key not in self._positions():
                raise DataError(f"{record.path}: class {key.name()!r} is not in the label map")
            out.append(self._positions()[key])
        return out

    def machine_groups(self) -> dict[str, list[int]]:
        """{machine: its class ids}."""
        groups: dict[str, list[int]] = {}
        for i, key in enumerate(self.classes):
            groups.setdefault(key.machine, []).append(i)
        return groups

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (`from_dict` reads it back)."""
        return {
            "format": _FORMAT,
            "granularity": self.granularity,
            "use_domain": self.use_domain,
            "pseudo_attributes": self.pseudo_attributes,
            "classes": [[k.machine, k.section, k.attribute, k.domain] for k in self.classes],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "label map") -> LabelMap:
        """Inverse of `to_dict`.

        Raises:
            ConfigError: not a label map, or a malformed class row (names `source`).
        """
        if data.get("format") != _FORMAT or data.get("granularity") not in _GRANULARITIES:
            raise ConfigError(f"{source}: not an asdlab label map (format/granularity)")
        try:
            classes = tuple(ClassKey(*map(str, row)) for row in data["classes"])
        except (KeyError, TypeError) as error:
            raise ConfigError(f"{source}: bad 'classes' rows ({error})") from None
        return cls(classes=classes, granularity=data["granularity"], use_domain=bool(data.get("use_domain")),
                   pseudo_attributes=int(data.get("pseudo_attributes", 0)))


def build_label_map(
    records: Iterable[ClipRecord],
    *,
    pseudo_attributes: Mapping[str, str] | None = None,
    granularity: Granularity = "attribute",
    use_domain: bool = False,
) -> LabelMap:
    """The class table of a set of training clips.

    Args:
        records: training clips (test clips are ignored).
        pseudo_attributes: {clip path or name: pseudo-attribute} (`asdlab.pseudo.files.
            read_pseudo_attributes`); used for clips named `noAttribute`, true attributes win.
        granularity: see `LabelMap`; "section" ignores attributes (the "N/A" baseline per section).
        use_domain: separate source and target classes.

    Returns:
        A `LabelMap` with sorted classes.

    Raises:
        ConfigError: unknown granularity.
        DataError: no training clips.
    """
    if granularity not in _GRANULARITIES:
        raise ConfigError(f"granularity must be one of {', '.join(_GRANULARITIES)}, got {granularity!r}")
    probe = LabelMap(classes=(), granularity=granularity, use_domain=use_domain)
    keys: set[ClassKey] = set()
    pseudo_count = 0
    for record in records:
        if record.split != "train":
            continue
        key = probe.key_of(record, pseudo=pseudo_attributes)
        if granularity == "attribute" and not record.has_attributes and key.attribute != NO_ATTRIBUTE:
            pseudo_count += 1
        keys.add(key)
    if not keys:
        raise DataError("no training clips to build classes from")
    return LabelMap(classes=tuple(sorted(keys)), granularity=granularity, use_domain=use_domain,
                    pseudo_attributes=pseudo_count)


def _section_of(name: str) -> str:
    parts = name.split("_")
    if len(parts) > 1 and parts[0] == "section":
        return parts[1]
    return ""


def find_auxiliary_clips(data_root: str | os.PathLike, machines: Iterable[str] | None = None) -> list[ClipRecord]:
    """Supplementary clean-machine and noise-only clips under `<root>/**/<Machine>/supplemental/`, as
    training records whose attribute is "aux_clean" or "aux_noise" (so each kind of each machine
    section becomes a class of its own).

    The kind comes from the file name: "noise" in it = noise-only, otherwise a clean machine
    recording (DCASE 2025 ships both kinds for some machine types; other years have none).

    Args:
        data_root: dataset root.
        machines: keep only these machine types; None = all.

    Returns:
        Records sorted by path; empty when there are none.
    """
    wanted = None if machines is None else set(machines)
    clips = []
    for folder in sorted(Path(data_root).rglob(_AUX_FOLDER)):
        machine = folder.parent.name
        if not folder.is_dir() or (wanted is not None and machine not in wanted):
            continue
        for path in sorted(folder.rglob("*")):
            if path.suffix.lower() in _AUDIO_SUFFIXES and path.is_file():
                kind = "noise" if "noise" in path.name.lower() else "clean"
                clips.append(ClipRecord(path=path, machine=machine, section=_section_of(path.name) or "00",
                                        split="train", label="normal", domain=None, attributes=_AUX_PREFIX + kind))
    return clips
