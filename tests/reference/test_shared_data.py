"""The data layer on the real clips in ../shared: DCASE 2023 samples and a MIMII fan sample.

Expected values come from each folder's manifest.csv (written when the data were collected),
not from the code under test. Skips cleanly when ../shared is absent.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from asdlab.data import index_dataset, load_audio, load_clips, summarize_records


def _manifest(folder: Path) -> list[dict[str, str]]:
    with open(folder / "manifest.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_dcase_samples_match_the_manifest(dcase_samples_dir):
    manifest = {row["path"]: row for row in _manifest(dcase_samples_dir)}
    records = index_dataset(dcase_samples_dir)
    assert len(records) == len(manifest) == 26
    assert len({r.machine for r in records}) == 7
    assert sum(r.label == "anomaly" for r in records) == 4
    for r in records:
        row = manifest[r.filename]
        assert (r.machine, r.split, r.section, r.domain, r.label, r.attributes) == (
            row["machine"], row["split"], row["section"], row["domain"], row["label"], row["attribute"])
        assert r.layout == "dcase2023"


def test_dcase_samples_load(dcase_samples_dir):
    manifest = {row["path"]: row for row in _manifest(dcase_samples_dir)}
    records = index_dataset(dcase_samples_dir, machines=["ToyCar", "fan"], splits=["test"])
    audio, kept, failures = load_clips(records)
    assert failures == [] and len(kept) == 4
    for wave, r in zip(audio, kept):
        assert wave.dtype == np.float32
        assert wave.shape == (round(float(manifest[r.filename]["duration_s"]) * 16000),)  # 12 s ToyCar, 10 s fan
        assert 0 < np.abs(wave).max() <= 1


def test_mimii_sample_labels_from_folders(mimii_dir):
    manifest = {Path(row["path"]).as_posix(): row for row in _manifest(mimii_dir)}
    records = index_dataset(mimii_dir)
    assert len(records) == len(manifest) == 40
    for r in records:
        row = manifest[r.path.relative_to(mimii_dir).as_posix()]
        assert r.label == {"normal": "normal", "abnormal": "anomaly"}[row["label"]]
        assert (r.machine, r.section, r.layout, r.channels_hint, r.split) == ("fan", "00", "mimii", 8, "test")
        assert r.channels_hint == int(row["channels"])
    (summary,) = summarize_records(records)
    assert (summary.normal, summary.anomaly) == (20, 20)


def test_mimii_eight_channel_extensible_file_loads_each_channel(mimii_dir):
    path = mimii_dir / "fan/id_00/normal/00000000.wav"
    ch0 = load_audio(path)
    ch7 = load_audio(path, channel=7)
    assert ch0.shape == ch7.shape == (160000,) and ch0.dtype == np.float32
    assert not np.array_equal(ch0, ch7)
    # SOURCE.md: adjacent mics of the array correlate 0.78-0.99, so channels 0 and 1 are similar.
    assert np.corrcoef(ch0, load_audio(path, channel=1))[0, 1] > 0.5
