"""index_dataset on tiny temporary trees, one per layout, and the summary helpers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asdlab.data import format_summary, index_dataset, summarize_records
from asdlab.errors import DataError

_TONE = (0.1 * np.sin(np.arange(160) * 0.3)).astype(np.float32)


def _touch_wavs(root: Path, *relative: str, channels: int = 1) -> None:
    for rel in relative:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, np.tile(_TONE[:, None], (1, channels)), 16000)


TRAIN = "section_00_source_train_normal_0001_m-n_W.wav"
TEST_N = "section_00_target_test_normal_0002_m-n_X.wav"
TEST_A = "section_00_source_test_anomaly_0003_m-n_W.wav"


def test_machine_split_tree(tmp_path):
    _touch_wavs(tmp_path, f"fan/train/{TRAIN}", f"fan/test/{TEST_N}", f"fan/test/{TEST_A}",
                "valve/train/section_00_source_train_normal_0001_pat_01.wav")
    records = index_dataset(tmp_path)
    assert [(r.machine, r.split, r.label) for r in records] == [
        ("fan", "test", "anomaly"), ("fan", "test", "normal"), ("fan", "train", "normal"),
        ("valve", "train", "normal")]
    assert index_dataset(tmp_path) == records  # deterministic


@pytest.mark.parametrize("base", ["dev_data/raw", "eval_data/raw", "dcase2025t2/dev_data/raw"])
def test_dcase_raw_trees(tmp_path, base):
    _touch_wavs(tmp_path, f"{base}/ToyCar/train/{TRAIN}", f"{base}/ToyCar/test/{TEST_A}")
    records = index_dataset(tmp_path)
    assert {(r.machine, r.split) for r in records} == {("ToyCar", "train"), ("ToyCar", "test")}


def test_flat_prefixed_folder(tmp_path):
    _touch_wavs(tmp_path, f"fan_train_{TRAIN}", f"gearbox_test_{TEST_A}")
    records = index_dataset(tmp_path)
    assert [(r.machine, r.split, r.label) for r in records] == [("fan", "train", "normal"),
                                                                 ("gearbox", "test", "anomaly")]


def test_eval_tree_with_anonymised_and_robotic_arm_names(tmp_path):
    _touch_wavs(tmp_path, "eval_data/raw/AutoTrash/test/section_00_0000.wav",
                "eval_data/raw/AutoTrash/train/section_00_source_train_normal_0001_noAttribute.wav",
                "eval_data/raw/RoboticArm/test/section_00_target_anomaly_0004_weight25_BckgE.wav")
    by_layout = {r.layout: r for r in index_dataset(tmp_path)}
    assert set(by_layout) == {"eval-anonymised", "dcase2023", "robotic-arm-2024"}
    assert by_layout["robotic-arm-2024"].split == "test"


def test_2020_tree(tmp_path):
    _touch_wavs(tmp_path, "fan/train/normal_id_00_00000000.wav", "fan/test/anomaly_id_02_00000001.wav")
    records = index_dataset(tmp_path)
    assert [(r.section, r.split, r.layout) for r in records] == [("00", "train", "dcase2020"),
                                                                  ("02", "test", "dcase2020")]


def test_mimii_tree_split_is_the_callers(tmp_path):
    _touch_wavs(tmp_path, "fan/id_00/normal/00000000.wav", "fan/id_00/abnormal/00000000.wav", channels=8)
    records = index_dataset(tmp_path)
    assert [(r.label, r.split, r.layout, r.channels_hint) for r in records] == [
        ("anomaly", "test", "mimii", 8), ("normal", "test", "mimii", 8)]
    assert {r.split for r in index_dataset(tmp_path, mimii_split="train")} == {"train"}


def test_layout_hint_reaches_every_record(tmp_path):
    _touch_wavs(tmp_path, f"fan/train/{TRAIN}", channels=2)
    assert [r.channels_hint for r in index_dataset(tmp_path, layout="dcase2026")] == [2]


def test_filters(tmp_path):
    _touch_wavs(tmp_path, f"fan/train/{TRAIN}", f"fan/test/{TEST_A}", f"valve/train/{TRAIN}")
    assert {r.machine for r in index_dataset(tmp_path, machines=["valve"])} == {"valve"}
    assert {r.split for r in index_dataset(tmp_path, splits=["test"])} == {"test"}
    with pytest.raises(DataError, match=r"\['pump'\] not found; available: \['fan', 'valve'\]"):
        index_dataset(tmp_path, machines=["pump"])


def test_unparseable_files_are_skipped_with_a_warning_or_raised_when_strict(tmp_path, caplog):
    _touch_wavs(tmp_path, f"fan/train/{TRAIN}", "fan/train/notes.wav", ".hidden/fan/train/x.wav")
    assert len(index_dataset(tmp_path)) == 1
    assert "skipped 1 file(s)" in caplog.text and "notes.wav" in caplog.text
    with pytest.raises(DataError, match="notes.wav"):
        index_dataset(tmp_path, strict=True)


def test_missing_root_and_empty_root(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        index_dataset(tmp_path / "nope")
    (tmp_path / "fan").mkdir()
    with pytest.raises(DataError, match=f"{tmp_path}: no DCASE or MIMII clips found"):
        index_dataset(tmp_path)


def test_summary_counts(tmp_path):
    _touch_wavs(tmp_path, f"fan/train/{TRAIN}", f"fan/test/{TEST_N}", f"fan/test/{TEST_A}",
                "fan/test/section_00_0009.wav")
    rows = summarize_records(index_dataset(tmp_path))
    test_row = next(r for r in rows if r.split == "test")
    assert (test_row.clips, test_row.source, test_row.target, test_row.normal, test_row.anomaly,
            test_row.unlabelled) == (3, 1, 1, 1, 1, 1)
    text = format_summary(rows)
    assert text.splitlines()[0].split() == ["machine", "split", "clips", "source", "target", "normal",
                                            "anomaly", "unlabelled", "sections"]
    assert len(text.splitlines()) == 3
