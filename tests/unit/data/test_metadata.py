"""Metadata CSV readers on hand-written files, and applying them to records."""

from __future__ import annotations

from pathlib import Path

import pytest

from asdlab.data import (
    NO_ATTRIBUTE,
    apply_attribute_tables,
    load_attribute_correspondences,
    load_attribute_tables,
    parse_clip_name,
    read_attribute_correspondence,
    read_attributes_csv,
    read_eval_data_list,
    reveal_attributes,
    reveal_eval_labels,
)
from asdlab.errors import DataError


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# The format of the released files: `file_name` relative to the dataset, then dNp,dNv pairs.
ATTRIBUTES = """\ufefffile_name,d1p,d1v,d2p,d2v
gearbox/train/section_00_source_train_normal_0000_volt_1.5_wt_130.wav,volt,1.5,wt,130
gearbox/test/section_00_target_test_anomaly_0001_volt_1.0.wav,volt,1.0,,
bearing/train/section_00_source_train_normal_0000_noAttribute.wav,noAttribute,,,
"""


def test_read_attributes_csv(tmp_path):
    table = read_attributes_csv(_write(tmp_path / "attributes_00.csv", ATTRIBUTES))
    assert table == {
        "section_00_source_train_normal_0000_volt_1.5_wt_130.wav": "volt_1.5_wt_130",
        "section_00_target_test_anomaly_0001_volt_1.0.wav": "volt_1.0",
        "section_00_source_train_normal_0000_noAttribute.wav": NO_ATTRIBUTE,
    }
    # The table agrees with what the file names say.
    for name, attrs in table.items():
        assert parse_clip_name(f"m/train/{name}").attributes == attrs


def test_read_attributes_csv_variant_header_pairs_in_order(tmp_path):
    path = _write(tmp_path / "attributes_00.csv", "file_name,p1,v1\nx/section_00_source_train_normal_0000_pat_01.wav,pat,01\n")
    assert read_attributes_csv(path) == {"section_00_source_train_normal_0000_pat_01.wav": "pat_01"}


@pytest.mark.parametrize(("text", "match"), [
    ("name,d1p,d1v\na.wav,x,1\n", "line 1: no 'file_name' column"),
    ("file_name,d1p,d1v\na.wav,vel,\n", "line 2: parameter 'vel' has no value"),
    ("file_name,d1p,d1v\na.wav,x,1\n\nb/a.wav,x,2\n", "line 4: 'a.wav' is listed twice"),
    ("file_name,d1p,d1v\n,x,1\n", "line 2: empty file_name"),
    ("", "empty attribute file"),
])
def test_read_attributes_csv_errors_name_file_and_line(tmp_path, text, match):
    path = _write(tmp_path / "attributes_00.csv", text)
    with pytest.raises(DataError, match=match) as info:
        read_attributes_csv(path)
    assert str(path) in str(info.value)


def test_missing_metadata_file(tmp_path):
    with pytest.raises(DataError, match="metadata file not found"):
        read_eval_data_list(tmp_path / "eval_data_list_2025.csv")


EVAL_LIST = """ToyPet
section_00_0000.wav,section_00_target_test_anomaly_0012_noAttribute.wav
section_00_0001.wav,section_00_source_test_normal_0031_noAttribute.wav
RoboticArm
section_00_0000.wav,section_00_source_normal_0035_weight15_BckgF.wav
"""


def test_read_eval_data_list(tmp_path):
    lists = read_eval_data_list(_write(tmp_path / "eval_data_list_2025.csv", EVAL_LIST))
    assert list(lists) == ["ToyPet", "RoboticArm"]
    assert lists["ToyPet"]["section_00_0001.wav"] == "section_00_source_test_normal_0031_noAttribute.wav"
    assert len(lists["RoboticArm"]) == 1


@pytest.mark.parametrize(("text", "match"), [
    ("section_00_0000.wav,section_00_source_test_normal_0000_a_1.wav\n", "line 1: name pair before any machine"),
    ("fan\na.wav,b.wav,c.wav\n", "line 2: expected a machine type or"),
    ("fan\na.wav,b.wav\n\na.wav,c.wav\n", "line 4: 'a.wav' listed twice for fan"),
    ("\n\n", "empty eval data list"),
])
def test_read_eval_data_list_errors(tmp_path, text, match):
    with pytest.raises(DataError, match=match):
        read_eval_data_list(_write(tmp_path / "eval_data_list_2024.csv", text))


def test_reveal_eval_labels_keeps_the_anonymised_path(tmp_path):
    lists = read_eval_data_list(_write(tmp_path / "eval_data_list_2025.csv", EVAL_LIST))
    records = [parse_clip_name("eval/ToyPet/test/section_00_0000.wav"),
               parse_clip_name("eval/RoboticArm/test/section_00_0000.wav"),
               parse_clip_name("eval/ToyPet/train/section_00_source_train_normal_0001_noAttribute.wav")]
    toy, arm, train = reveal_eval_labels(records, lists)
    assert (toy.filename, toy.label, toy.domain, toy.attributes, toy.index, toy.layout) == (
        "section_00_0000.wav", "anomaly", "target", NO_ATTRIBUTE, "0000", "eval-anonymised")
    assert (arm.label, arm.domain, arm.attributes) == ("normal", "source", "weight15_BckgF")
    assert train is records[2]


def test_reveal_eval_labels_missing_entries(tmp_path):
    lists = read_eval_data_list(_write(tmp_path / "eval_data_list_2025.csv", EVAL_LIST))
    with pytest.raises(DataError, match="'section_00_0002.wav' is not listed for ToyPet"):
        reveal_eval_labels([parse_clip_name("ToyPet/test/section_00_0002.wav")], lists)
    with pytest.raises(DataError, match="machine type 'Polisher' is not in the eval data list"):
        reveal_eval_labels([parse_clip_name("Polisher/test/section_00_0002.wav")], lists)


# As released: source_file_name carries the true attributes, target_file_name is the hidden name.
CORRESPONDENCE = """source_file_name,target_file_name
section_00_source_test_anomaly_0000_pro_B_vel_8_loc_B.wav,section_00_source_test_anomaly_0000_noAttribute.wav
section_00_target_test_normal_0001_pro_A_wt_200_damage1.wav,section_00_target_test_normal_0001_noAttribute.wav
"""


def test_read_attribute_correspondence_maps_hidden_to_revealing(tmp_path):
    mapping = read_attribute_correspondence(_write(tmp_path / "c.csv", CORRESPONDENCE))
    assert mapping["section_00_source_test_anomaly_0000_noAttribute.wav"] == (
        "section_00_source_test_anomaly_0000_pro_B_vel_8_loc_B.wav")


def test_read_attribute_correspondence_detects_swapped_columns(tmp_path):
    lines = CORRESPONDENCE.splitlines()
    swapped = "\n".join([lines[0]] + [",".join(reversed(line.split(","))) for line in lines[1:]]) + "\n"
    assert read_attribute_correspondence(_write(tmp_path / "c.csv", swapped)) == read_attribute_correspondence(
        _write(tmp_path / "d.csv", CORRESPONDENCE))


@pytest.mark.parametrize(("text", "match"), [
    ("a,b\nx.wav,y.wav\n", "line 1: expected the header 'source_file_name,target_file_name'"),
    ("source_file_name,target_file_name\nx.wav\n", "line 2: expected 2 names, got 1"),
    ("source_file_name,target_file_name\nsection_00_source_test_normal_0001_a_1.wav,"
     "section_00_source_test_normal_0002_noAttribute.wav\n", "line 2: .* are not the same clip"),
])
def test_read_attribute_correspondence_errors(tmp_path, text, match):
    with pytest.raises(DataError, match=match):
        read_attribute_correspondence(_write(tmp_path / "c.csv", text))


def test_load_and_reveal_attributes(tmp_path, caplog):
    _write(tmp_path / "gt/dev_data/bearing/attributes_00_test_correspondence.csv", CORRESPONDENCE)
    _write(tmp_path / "gt/dev_data/bearing/attributes_00.csv", ATTRIBUTES)
    correspondences = load_attribute_correspondences(tmp_path / "gt")
    assert list(correspondences) == ["bearing"] and len(correspondences["bearing"]) == 2
    records = [
        parse_clip_name("bearing/test/section_00_source_test_anomaly_0000_noAttribute.wav"),
        parse_clip_name("bearing/test/section_00_target_test_normal_0001_noAttribute.wav"),
        parse_clip_name("bearing/test/section_00_target_test_normal_0099_noAttribute.wav"),
        parse_clip_name("fan/test/section_00_source_test_anomaly_0000_noAttribute.wav"),
    ]
    revealed = reveal_attributes(records, correspondences)
    assert [r.attributes for r in revealed] == ["pro_B_vel_8_loc_B", "pro_A_wt_200_damage1", NO_ATTRIBUTE,
                                                NO_ATTRIBUTE]
    assert revealed[0].attribute_values == (("pro", "B"), ("vel", "8"), ("loc", "B"))
    assert [r.path for r in revealed] == [r.path for r in records]
    assert "no true attributes for 1 noAttribute clip(s)" in caplog.text


def test_load_and_apply_attribute_tables(tmp_path):
    _write(tmp_path / "gearbox/attributes_00.csv", ATTRIBUTES)
    _write(tmp_path / "gearbox/attributes_00_test_correspondence.csv", CORRESPONDENCE)  # not an attribute table
    tables = load_attribute_tables(tmp_path)
    assert list(tables) == ["gearbox"] and len(tables["gearbox"]) == 3
    # A 2021-style name without attribute field gets them from the table; others stay.
    bare = parse_clip_name("gearbox/train/section_00_source_train_normal_0000_volt_1.5_wt_130.wav")
    no_field = parse_clip_name("gearbox/test/section_00_target_test_anomaly_0001.wav", machine="gearbox")
    assert no_field.attributes == ""
    table = {"gearbox": {no_field.filename: "volt_1.0", **tables["gearbox"]}}
    out = apply_attribute_tables([bare, no_field], table)
    assert out[0] is bare and out[1].attributes == "volt_1.0"
