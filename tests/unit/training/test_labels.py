"""Class tables: attributes, pseudo-attributes over noAttribute, the N/A baseline, domains, JSON round trip."""

from pathlib import Path

import pytest

from asdlab.data.records import ClipRecord
from asdlab.errors import ConfigError, DataError
from asdlab.training.labels import ClassKey, LabelMap, build_label_map, find_auxiliary_clips


def _clip(machine, name, attributes, *, domain="source", split="train", section="00"):
    return ClipRecord(path=Path(f"/data/{machine}/{split}/{name}.wav"), machine=machine, section=section,
                      split=split, label="normal", domain=domain, attributes=attributes)


RECORDS = [
    _clip("fan", "a", "vel_6"),
    _clip("fan", "b", "vel_8"),
    _clip("fan", "c", "vel_8", domain="target"),
    _clip("pump", "d", "noAttribute"),
    _clip("pump", "e", "noAttribute"),
    _clip("pump", "f", "noAttribute", split="test"),
]


def test_one_class_per_machine_section_attribute():
    table = build_label_map(RECORDS)
    assert [k.name() for k in table.classes] == ["fan/00/vel_6", "fan/00/vel_8", "pump/00/noAttribute"]
    assert table.labels(RECORDS[:5]) == [0, 1, 1, 2, 2]


def test_pseudo_attributes_replace_no_attribute_only():
    pseudo = {"/data/pump/train/d.wav": "pseudo_00", "e.wav": "pseudo_01", "a.wav": "pseudo_07"}
    table = build_label_map(RECORDS, pseudo_attributes=pseudo)
    assert [k.attribute for k in table.classes] == ["vel_6", "vel_8", "pseudo_00", "pseudo_01"]
    assert table.pseudo_attributes == 2
    assert table.labels(RECORDS[:5], pseudo=pseudo) == [0, 1, 1, 2, 3]  # the true vel_6 of clip a wins


def test_section_granularity_is_the_na_baseline_and_domain_splits_classes():
    assert build_label_map(RECORDS, granularity="section").classes == (ClassKey("fan", "00"), ClassKey("pump", "00"))
    with_domain = build_label_map(RECORDS, use_domain=True)
    assert ClassKey("fan", "00", "vel_8", "target") in with_domain.classes and with_domain.num_classes == 4
    assert build_label_map(RECORDS, granularity="machine").machine_groups() == {"fan": [0], "pump": [1]}


def test_round_trip_and_errors():
    table = build_label_map(RECORDS, use_domain=True)
    assert LabelMap.from_dict(table.to_dict()) == table
    with pytest.raises(DataError, match="not in the label map"):
        build_label_map(RECORDS[:2]).labels([RECORDS[3]])
    with pytest.raises(ConfigError, match="granularity"):
        build_label_map(RECORDS, granularity="clip")
    with pytest.raises(ConfigError, match="not an asdlab label map"):
        LabelMap.from_dict({"classes": []})
    with pytest.raises(DataError, match="no training clips"):
        build_label_map(RECORDS[5:])


def test_auxiliary_clips_become_classes(tmp_path):
    folder = tmp_path / "dev_data" / "raw" / "fan" / "supplemental"
    folder.mkdir(parents=True)
    for name in ("section_00_clean_0000.wav", "section_00_noise_0000.wav", "readme.txt"):
        (folder / name).write_bytes(b"")
    aux = find_auxiliary_clips(tmp_path)
    assert [(r.machine, r.attributes) for r in aux] == [("fan", "aux_clean"), ("fan", "aux_noise")]
    table = build_label_map(RECORDS + aux)
    assert ClassKey("fan", "00", "aux_noise") in table.classes
    assert find_auxiliary_clips(tmp_path, machines=["pump"]) == []
