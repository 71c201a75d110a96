"""The DCASE file-name grammar of DCASE.md, one case per layout and attribute-string form."""

from __future__ import annotations

from pathlib import Path

import pytest

from asdlab.data import NO_ATTRIBUTE, parse_clip_name
from asdlab.errors import DataError

# Real names of the shared DCASE 2023 samples: every attribute-string form they contain.
SAMPLE_NAMES = [
    ("ToyCar_test_section_00_source_test_normal_0028_car_C2_spd_34V_mic_1.wav",
     "ToyCar", "test", "source", "normal", "0028", "car_C2_spd_34V_mic_1"),
    ("bearing_test_section_00_target_test_anomaly_0021_vel_8_loc_G.wav",
     "bearing", "test", "target", "anomaly", "0021", "vel_8_loc_G"),
    ("gearbox_test_section_00_target_test_anomaly_0040_volt_1.5_wt_130.wav",
     "gearbox", "test", "target", "anomaly", "0040", "volt_1.5_wt_130"),
    ("fan_test_section_00_source_test_anomaly_0022_m-n_W.wav",
     "fan", "test", "source", "anomaly", "0022", "m-n_W"),
    ("slider_test_section_00_source_test_normal_0027_vel_730_ac_0.11.wav",
     "slider", "test", "source", "normal", "0027", "vel_730_ac_0.11"),
    ("valve_train_section_00_source_train_normal_0095_pat_01.wav",
     "valve", "train", "source", "normal", "0095", "pat_01"),
    ("fan_train_section_00_source_train_normal_0040_m-n_X.wav",
     "fan", "train", "source", "normal", "0040", "m-n_X"),
]


@pytest.mark.parametrize(("name", "machine", "split", "domain", "label", "index", "attrs"), SAMPLE_NAMES)
def test_prefixed_sample_names(name, machine, split, domain, label, index, attrs):
    r = parse_clip_name(Path("/flat/folder") / name)
    assert (r.machine, r.section, r.split, r.domain, r.label, r.index, r.attributes) == (
        machine, "00", split, domain, label, index, attrs)
    assert r.layout == "dcase2023" and r.channels_hint == 1
    assert r.filename == name


def test_attribute_values_keep_dots_and_dashes():
    r = parse_clip_name("gearbox/test/section_00_target_test_anomaly_0040_volt_1.5_wt_130.wav")
    assert r.attribute_values == (("volt", "1.5"), ("wt", "130"))
    assert parse_clip_name("fan/train/section_00_source_train_normal_0040_m-n_X.wav").attribute_values == (("m-n", "X"),)


def test_folder_layout_2023():
    r = parse_clip_name("root/dev_data/raw/ToyCar/train/section_00_source_train_normal_0040_car_A1_spd_28V_mic_1.wav")
    assert (r.machine, r.split, r.domain, r.label, r.attributes) == ("ToyCar", "train", "source", "normal",
                                                                     "car_A1_spd_28V_mic_1")


def test_no_attribute():
    r = parse_clip_name("bearing/train/section_00_target_train_normal_0003_noAttribute.wav")
    assert r.attributes == NO_ATTRIBUTE and not r.has_attributes and r.attribute_values == ()
    assert r.layout == "dcase2023"


def test_folder_wins_over_prefix_for_machine_and_name_wins_over_folder_for_split():
    r = parse_clip_name("fan/test/valve_train_section_00_source_train_normal_0095_pat_01.wav")
    assert r.machine == "fan"  # folder over prefix, as the brief asks
    assert r.split == "train"  # the DCASE part of the name over the folder (DCASE.md)


def test_explicit_machine_wins():
    assert parse_clip_name("fan/train/section_00_source_train_normal_0040_m-n_X.wav", machine="pump").machine == "pump"


def test_2020_names_take_split_from_folder():
    r = parse_clip_name("dev/fan/train/normal_id_02_00000123.wav")
    assert (r.machine, r.section, r.split, r.label, r.domain, r.index, r.layout) == (
        "fan", "02", "train", "normal", None, "00000123", "dcase2020")
    a = parse_clip_name("dev/pump/test/anomaly_id_04_00000001.wav")
    assert (a.split, a.label, a.section) == ("test", "anomaly", "04")


def test_2020_name_without_split_folder_needs_split():
    with pytest.raises(DataError, match="no train/test field"):
        parse_clip_name("somewhere/normal_id_00_00000000.wav", machine="fan")
    assert parse_clip_name("somewhere/normal_id_00_00000000.wav", machine="fan", split="train").split == "train"


def test_2020_anonymised_eval_name():
    r = parse_clip_name("eval/fan/test/id_05_00000001.wav")
    assert (r.section, r.label, r.layout, r.split) == ("05", None, "eval-anonymised", "test")


@pytest.mark.parametrize("name", [
    "section_03_source_test_anomaly_0012.wav",
    "section_05_target_train_normal_0999.wav",
])
def test_2021_names(name):
    r = parse_clip_name(f"ToyCar/test/{name}")
    assert r.layout == "dcase2021" and r.attributes == ""
    assert r.section == name.split("_")[1]


def test_2022_name_with_attributes_needs_hint_only_for_section_00():
    # Sections other than 00 only existed in 2021-2022.
    assert parse_clip_name("fan/train/section_01_source_train_normal_0001_m-n_W.wav").layout == "dcase2021"
    r = parse_clip_name("fan/train/section_00_source_train_normal_0001_m-n_W.wav", layout="dcase2021")
    assert (r.layout, r.attributes) == ("dcase2021", "m-n_W")


def test_robotic_arm_2024_names_lack_split_field():
    r = parse_clip_name("eval_data/raw/RoboticArm/test/section_00_source_normal_0035_weight15_BckgF.wav")
    assert (r.machine, r.split, r.domain, r.label, r.index, r.attributes, r.layout) == (
        "RoboticArm", "test", "source", "normal", "0035", "weight15_BckgF", "robotic-arm-2024")
    t = parse_clip_name("RoboticArm/train/section_00_target_normal_0001_weight35_BckgE.wav")
    assert (t.split, t.domain) == ("train", "target")


def test_2026_needs_the_layout_hint():
    name = "fan/train/section_00_source_train_normal_0001_m-n_W.wav"
    assert parse_clip_name(name).channels_hint == 1
    r = parse_clip_name(name, layout="dcase2026")
    assert (r.layout, r.channels_hint) == ("dcase2026", 2)


def test_anonymised_eval_names():
    r = parse_clip_name("eval_data/raw/AutoTrash/test/section_00_0007.wav")
    assert (r.machine, r.section, r.index, r.split) == ("AutoTrash", "00", "0007", "test")
    assert r.label is None and r.domain is None and r.is_anomaly is None
    assert r.layout == "eval-anonymised"
    assert parse_clip_name("AutoTrash/test/section_00_0007.wav", layout="dcase2026").channels_hint == 2


def test_prefixed_anonymised_name():
    r = parse_clip_name("flat/ToyPet_test_section_00_0001.wav")
    assert (r.machine, r.split, r.layout) == ("ToyPet", "test", "eval-anonymised")


def test_mimii_folders():
    r = parse_clip_name("mimii/fan/id_06/abnormal/00000042.wav")
    assert (r.machine, r.section, r.label, r.domain, r.split, r.layout, r.channels_hint) == (
        "fan", "06", "anomaly", None, "test", "mimii", 8)
    assert parse_clip_name("mimii/fan/id_06/normal/00000042.wav", split="train").split == "train"


@pytest.mark.parametrize(("path", "match"), [
    ("fan/train/readme.wav", "cannot parse the DCASE file name"),
    ("fan/train/section_00_sauce_train_normal_0040_a_b.wav", "cannot parse the DCASE file name"),
    ("fan/train/section_00_source_train_normal_abcd_a_b.wav", "cannot parse the DCASE file name"),
    ("flat/section_00_source_train_normal_0040_m-n_X.wav", "machine type unknown"),
    ("fan/train/section_00_source_train_normal_0040_m-n_X.wav", "but layout='dcase2020'"),
])
def test_unparseable_names_name_the_file(path, match):
    with pytest.raises(DataError, match=match) as info:
        parse_clip_name(path, layout="dcase2020" if "dcase2020" in match else None)
    assert Path(path).name in str(info.value)


def test_mimii_hint_on_a_dcase_name_fails():
    with pytest.raises(DataError, match="not a MIMII clip"):
        parse_clip_name("fan/train/section_00_source_train_normal_0040_m-n_X.wav", layout="mimii")
