"""Pseudo-attribute CSV: round trip, lookups by other spellings of a path, DCASE-format copy, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from asdlab.data.metadata import read_attributes_csv
from asdlab.data.records import parse_attribute_string
from asdlab.errors import DataError
from asdlab.pseudo.files import (
    PseudoAttributeRow,
    pseudo_attribute_name,
    read_pseudo_attribute_rows,
    read_pseudo_attributes,
    write_attributes_csv,
    write_pseudo_attributes,
)

NAME = "section_00_source_train_normal_0001_noAttribute.wav"
ROWS = [
    PseudoAttributeRow(f"dev_data/raw/SynFan/train/{NAME}", "SynFan", "00", "source", "pseudo_00"),
    PseudoAttributeRow(f"dev_data/raw/SynPump/train/{NAME}", "SynPump", "00", "source", "pseudo_02"),
    PseudoAttributeRow("dev_data/raw/SynPump/train/section_00_target_train_normal_0000_noAttribute.wav",
                       "SynPump", "00", "target", "pseudo_01"),
]


def test_name_parses_as_an_attribute_pair():
    assert pseudo_attribute_name(3) == "pseudo_03"
    assert parse_attribute_string(pseudo_attribute_name(12)) == (("pseudo", "12"),)


def test_round_trip(tmp_path: Path):
    path = tmp_path / "pseudo_attributes.csv"
    write_pseudo_attributes(path, ROWS)
    assert read_pseudo_attribute_rows(path) == ROWS
    mapping = read_pseudo_attributes(path)
    assert dict(mapping) == {r.path: r.pseudo_attribute for r in ROWS}
    assert path.read_text().splitlines()[0] == "path,machine,section,domain,pseudo_attribute"


def test_lookup_by_absolute_path_short_path_and_unique_name(tmp_path: Path):
    path = tmp_path / "p.csv"
    write_pseudo_attributes(path, ROWS)
    mapping = read_pseudo_attributes(path)
    assert mapping[f"/data/dcase/dev_data/raw/SynPump/train/{NAME}"] == "pseudo_02"
    assert mapping[Path("/data/dcase") / "dev_data/raw/SynFan/train" / NAME] == "pseudo_00"
    assert mapping[f"SynFan/train/{NAME}"] == "pseudo_00"
    assert mapping["section_00_target_train_normal_0000_noAttribute.wav"] == "pseudo_01"
    assert "section_00_target_train_normal_0000_noAttribute.wav" in mapping
    assert mapping.get("elsewhere/x.wav") is None
    with pytest.raises(KeyError, match="fits 2 clips"):
        mapping[NAME]  # the same file name under two machine types
    assert NAME not in mapping


def test_dcase_format_copy_reads_back_as_pseudo_strings(tmp_path: Path):
    path = tmp_path / "attributes_00.csv"
    write_attributes_csv(path, ROWS[1:])
    table = read_attributes_csv(path)
    assert table == {NAME: "pseudo_02", "section_00_target_train_normal_0000_noAttribute.wav": "pseudo_01"}
    assert path.read_text().splitlines()[1] == f"SynPump/train/{NAME},pseudo,02"


def test_errors_name_the_file_and_line(tmp_path: Path):
    path = tmp_path / "p.csv"
    with pytest.raises(DataError, match="listed twice"):
        write_pseudo_attributes(path, [ROWS[0], ROWS[0]])
    with pytest.raises(DataError, match="relative to the dataset root"):
        write_pseudo_attributes(path, [PseudoAttributeRow("/abs/x.wav", "m", "00", "", "pseudo_00")])
    path.write_text("file,attr\nx.wav,pseudo_00\n")
    with pytest.raises(DataError, match="line 1: expected the header"):
        read_pseudo_attributes(path)
    path.write_text("path,machine,section,domain,pseudo_attribute\nx.wav,m,00,source\n")
    with pytest.raises(DataError, match="line 2: expected 5 fields"):
        read_pseudo_attributes(path)
    with pytest.raises(DataError, match="not found"):
        read_pseudo_attributes(tmp_path / "missing.csv")
