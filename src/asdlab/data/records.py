"""One clip of a DCASE-style dataset, as parsed from its file name (see DCASE.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

__all__ = ["ClipRecord", "Domain", "Split", "Label", "Layout", "NO_ATTRIBUTE", "parse_attribute_string"]

Domain = Literal["source", "target"]
Split = Literal["train", "test"]
Label = Literal["normal", "anomaly"]
# Which naming grammar the clip came from; DCASE.md "Older and newer layouts". "own-recordings":
# arbitrary names in `<Machine>/<train|test>/` folders (`asdlab.data.index.index_dataset`).
Layout = Literal[
    "dcase2020", "dcase2021", "dcase2023", "robotic-arm-2024", "dcase2026", "mimii", "eval-anonymised",
    "own-recordings",
]

NO_ATTRIBUTE = "noAttribute"


def parse_attribute_string(text: str) -> tuple[tuple[str, str], ...]:
    """Split `key_value` pairs (`volt_1.5_wt_130` -> (("volt","1.5"),("wt","130"))).

    Values may contain '.' and '-'; an odd number of fields, `noAttribute` or an empty
    string gives no pairs (the raw string is kept on the record either way).
    """
    if not text or text == NO_ATTRIBUTE:
        return ()
    parts = text.split("_")
    if len(parts) % 2:
        return ()
    return tuple((parts[i], parts[i + 1]) for i in range(0, len(parts), 2))


@dataclass(frozen=True)
class ClipRecord:
    """Everything the file name (and folder, for MIMII) says about one clip.

    Attributes:
        path: the audio file.
        machine: machine type, e.g. "fan", "ToyCar".
        section: two-digit section ("00"); for 2020 data the machine id ("id_00" -> "00").
        split: "train" or "test".
        label: "normal", "anomaly", or None where names are anonymised.
        domain: "source", "target", or None where the year has no domains (2020, MIMII).
        index: the clip number as written in the name ("0040"), or None.
        attributes: the raw attribute string ("volt_1.5_wt_130", "noAttribute", or "").
        layout: which naming grammar matched.
        channels_hint: channel count the layout implies (2 for 2026, 8 for MIMII), else 1.
    """

    path: Path
    machine: str
    section: str
    split: Split
    label: Label | None
    domain: Domain | None
    index: str | None = None
    attributes: str = ""
    layout: Layout = "dcase2023"
    channels_hint: int = 1
    attribute_values: tuple[tuple[str, str], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "attribute_values", parse_attribute_string(self.attributes))

    @property
    def filename(self) -> str:
        """Base name of the file, as DCASE score files list it."""
        return self.path.name

    @property
    def is_anomaly(self) -> bool | None:
        """True / False, or None where the label is unknown."""
        return None if self.label is None else self.label == "anomaly"

    @property
    def has_attributes(self) -> bool:
        """Whether the name carries a usable attribute string."""
        return bool(self.attributes) and self.attributes != NO_ATTRIBUTE
