"""index_dataset on folders of one's own recordings: `<Machine>/<train|test>/` with arbitrary file names."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asdlab.data import index_dataset
from asdlab.data.filenames import looks_like_clip_name
from asdlab.errors import DataError

_TONE = (0.1 * np.sin(np.arange(160) * 0.3)).astype(np.float32)
TRAIN = "section_00_source_train_normal_0001_m-n_W.wav"
TEST_A = "section_00_source_test_anomaly_0003_m-n_W.wav"
TYPO = "section_00_sorce_train_normal_0002_m-n_W.wav"  # "sorce": a mistyped DCASE name


def _touch_wavs(root: Path, *relative: str) -> None:
    for rel in relative:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, _TONE, 16000)


def test_own_folder_is_indexed_with_its_file_names_as_they_are(tmp_path, caplog):
    _touch_wavs(tmp_path, "MyPump/train/rec_001.wav", "MyPump/train/2024-05-01 morning.flac",
                "MyPump/test/new_clip.wav")
    with caplog.at_level(logging.INFO, logger="asdlab.data.index"):
        records = index_dataset(tmp_path)
    assert [(r.filename, r.machine, r.section, r.split, r.label, r.domain, r.attributes, r.layout)
            for r in records] == [
        ("new_clip.wav", "MyPump", "00", "test", None, None, "noAttribute", "own-recordings"),
        ("2024-05-01 morning.flac", "MyPump", "00", "train", "normal", "source", "noAttribute", "own-recordings"),
        ("rec_001.wav", "MyPump", "00", "train", "normal", "source", "noAttribute", "own-recordings"),
    ]
    assert all(r.index is None and r.attribute_values == () and r.channels_hint == 1 for r in records)
    own_logs = [rec for rec in caplog.records if "own recordings" in rec.getMessage()]
    assert len(own_logs) == 1 and own_logs[0].levelno == logging.INFO and "MyPump" in own_logs[0].getMessage()
    assert [r.filename for r in index_dataset(tmp_path, splits=["test"])] == ["new_clip.wav"]


def test_each_own_machine_folder_is_logged_once_and_dcase_folders_beside_it_are_unchanged(tmp_path, caplog):
    _touch_wavs(tmp_path, "MyPump/train/a.wav", "MyPump/test/b.wav", "Fan2/train/a.wav",
                f"dev_data/raw/ToyCar/train/{TRAIN}", f"dev_data/raw/ToyCar/test/{TEST_A}")
    with caplog.at_level(logging.INFO, logger="asdlab.data.index"):
        records = index_dataset(tmp_path)
    assert sorted(r.getMessage().split(":")[0] for r in caplog.records if "own recordings" in r.getMessage()) == [
        str(tmp_path / "Fan2"), str(tmp_path / "MyPump")]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    by_machine = {}
    for r in records:
        by_machine.setdefault(r.machine, set()).add((r.split, r.label, r.domain, r.layout))
    assert by_machine == {
        "Fan2": {("train", "normal", "source", "own-recordings")},
        "MyPump": {("train", "normal", "source", "own-recordings"), ("test", None, None, "own-recordings")},
        "ToyCar": {("train", "normal", "source", "dcase2023"), ("test", "anomaly", "source", "dcase2023")},
    }


def test_a_mixed_folder_reports_the_other_names_and_indexes_only_the_dcase_ones(tmp_path, caplog):
    _touch_wavs(tmp_path, f"fan/train/{TRAIN}", f"fan/test/{TEST_A}", "fan/test/my_clip.wav")
    with caplog.at_level(logging.INFO, logger="asdlab.data.index"):
        records = index_dataset(tmp_path)
    assert [(r.filename, r.layout) for r in records] == [(TEST_A, "dcase2023"), (TRAIN, "dcase2023")]
    assert "my_clip.wav" in caplog.text and "mixes DCASE file names" in caplog.text
    assert not [r for r in caplog.records if r.levelno == logging.INFO and "are read as own" in r.getMessage()]
    with pytest.raises(DataError, match=r"my_clip\.wav: cannot parse the DCASE file name"):
        index_dataset(tmp_path, strict=True)


def test_a_mistyped_dcase_name_is_still_named_even_among_foreign_names(tmp_path):
    # The typo alone makes the folder a DCASE folder, so nothing is read as own recordings and the
    # error names the typo, not the foreign clip that comes first in walk order.
    _touch_wavs(tmp_path, "MyPump/test/a_clip.wav", f"MyPump/train/{TYPO}")
    with pytest.raises(DataError, match=rf"no DCASE or MIMII clips found.*first problem: .*{TYPO}: cannot parse"):
        index_dataset(tmp_path)
    with pytest.raises(DataError, match=rf"{TYPO}: cannot parse the DCASE file name"):
        index_dataset(tmp_path, strict=True)


def test_only_direct_children_of_train_and_test_are_own_recordings(tmp_path, caplog):
    _touch_wavs(tmp_path, "MyPump/train/a.wav", "MyPump/train/day2/b.wav", "MyPump/notes/c.wav", "loose.wav",
                "train/d.wav")
    records = index_dataset(tmp_path)
    assert [r.path.relative_to(tmp_path).as_posix() for r in records] == ["MyPump/train/a.wav"]
    assert "skipped 4 file(s)" in caplog.text


def test_names_that_score_files_cannot_hold_are_skipped_with_a_reason(tmp_path, caplog):
    _touch_wavs(tmp_path, "MyPump/train/a.wav", "MyPump/test/b,c.wav")
    assert [r.filename for r in index_dataset(tmp_path)] == ["a.wav"]
    assert "b,c.wav: the file name contains a comma" in caplog.text
    with pytest.raises(DataError, match="contains a comma"):
        index_dataset(tmp_path, strict=True)


def test_strict_accepts_own_recordings(tmp_path):
    _touch_wavs(tmp_path, "MyPump/train/a.wav", "MyPump/test/b.wav")
    assert [r.split for r in index_dataset(tmp_path, strict=True)] == ["test", "train"]


@pytest.mark.parametrize("name, expected", [
    ("x/section_00_source_train_normal_0001_a_1.wav", True), ("x/section_01_0003.wav", True),
    ("x/normal_id_00_00000001.wav", True), ("x/id_02_00000001.wav", True), (f"x/{TYPO}", True),
    ("fan/id_00/abnormal/00000003.wav", True), ("x/rec_001.wav", False), ("x/section.wav", False),
    ("x/normal_take_2.wav", False),
])
def test_looks_like_clip_name(name, expected):
    assert looks_like_clip_name(name) is expected
