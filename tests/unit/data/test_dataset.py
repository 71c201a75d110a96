"""ClipDataset: common length, pad / tile / crop, the memory-mapped cache and its reuse, bad clips."""

import pickle
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import asdlab.data.dataset as dataset_module
from asdlab.data.dataset import ClipDataset, collate_clips, common_duration
from asdlab.data.records import ClipRecord
from asdlab.errors import DataError


def _clip(folder: Path, name: str, samples: int, value: float) -> ClipRecord:
    path = folder / name
    sf.write(path, np.full(samples, value, np.float32) * np.hanning(samples).astype(np.float32) + value,
             16000, subtype="FLOAT")
    return ClipRecord(path=path, machine="fan", section="00", split="train", label="normal", domain="source")


@pytest.fixture
def records(tmp_path):
    out = [_clip(tmp_path, f"c{i}.wav", 1600, 0.1 * (i + 1)) for i in range(3)]
    out.append(_clip(tmp_path, "short.wav", 800, 0.5))
    out.append(_clip(tmp_path, "long.wav", 2400, 0.6))
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"not audio")
    out.insert(2, ClipRecord(path=bad, machine="fan", section="00", split="train", label="normal", domain="source"))
    return out


def test_most_common_length_is_the_default(records):
    duration, failures = common_duration(records)
    assert duration == pytest.approx(0.1) and [p.name for p, _ in failures] == ["broken.wav"]
    data = ClipDataset(records)
    assert data.num_samples == 1600 and len(data) == 5
    assert [p.name for p, _ in data.failures] == ["broken.wav"]
    assert [r.path.name for r in data.records] == ["c0.wav", "c1.wav", "c2.wav", "short.wav", "long.wav"]
    item = data[3]
    assert item["index"] == 3 and item["waveform"].dtype == torch.float32 and item["waveform"].shape == (1600,)
    assert torch.all(item["waveform"][800:] == 0)  # padded
    assert data[4]["waveform"].shape == (1600,)  # cut


def test_tile_and_crop(records):
    tiled = ClipDataset(records, fit="tile")
    short = tiled[3]["waveform"]
    torch.testing.assert_close(short[800:], short[:800])
    cropped = ClipDataset(records, fit="crop", duration_s=0.12)
    assert cropped[3]["waveform"].shape == (800,) and cropped[4]["waveform"].shape == (1920,)
    batch = collate_clips([cropped[3], cropped[4]])
    assert batch["waveform"].shape == (2, 1920) and batch["length"].tolist() == [800, 1920]
    assert batch["index"].tolist() == [3, 4]


def test_cache_is_written_once_and_reused(records, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    first = ClipDataset(records, cache_dir=cache)
    assert first.cache_path.is_file() and first.cache_path.with_suffix(".json").is_file()
    expected = [first[i]["waveform"] for i in range(len(first))]
    in_memory = ClipDataset(records)
    for i, wave in enumerate(expected):
        torch.testing.assert_close(wave, in_memory[i]["waveform"], rtol=0, atol=0)

    def no_decoding(*args, **kwargs):
        raise AssertionError("a cached dataset must not decode again")

    monkeypatch.setattr(dataset_module, "load_audio", no_decoding)
    again = ClipDataset(records, cache_dir=cache)
    assert again.cache_path == first.cache_path and [p.name for p, _ in again.failures] == ["broken.wav"]
    for i, wave in enumerate(expected):
        torch.testing.assert_close(again[i]["waveform"], wave, rtol=0, atol=0)
    # Workers get the path, not the array.
    clone = pickle.loads(pickle.dumps(again))
    assert len(pickle.dumps(again)) < 20_000
    torch.testing.assert_close(clone[1]["waveform"], expected[1], rtol=0, atol=0)
    with pytest.raises(AssertionError, match="must not decode"):  # other settings: another cache
        ClipDataset(records, cache_dir=cache, fit="tile")


def test_no_usable_clip_is_an_error(tmp_path):
    bad = tmp_path / "x.wav"
    bad.write_bytes(b"")
    record = ClipRecord(path=bad, machine="fan", section="00", split="train", label=None, domain=None)
    with pytest.raises(DataError, match="none of the 1 clips"):
        ClipDataset([record])
    with pytest.raises(DataError, match="none of the 1 clips"):
        ClipDataset([record], duration_s=1.0, cache_dir=tmp_path / "c")
    with pytest.raises(IndexError):
        ClipDataset([_clip(tmp_path, "ok.wav", 400, 0.2)])[1]


def test_workers_decode_the_same_cache_and_report_the_same_bad_clips(tmp_path):
    rng = np.random.default_rng(0)
    records = []
    for i in range(5):
        path = tmp_path / f"section_00_source_train_normal_{i:04d}_noAttribute.wav"
        if i == 2:
            path.write_bytes(b"not audio")
        else:
            sf.write(path, 0.1 * rng.standard_normal(1600 + 100 * i), 16000)
        records.append(ClipRecord(path=path, machine="fan", section="00", split="train", label="normal",
                                  domain="source"))
    serial = ClipDataset(records, duration_s=0.1, cache_dir=tmp_path / "a")
    parallel = ClipDataset(records, duration_s=0.1, cache_dir=tmp_path / "b", num_workers=2)
    assert [r.path for r in parallel.records] == [r.path for r in serial.records] and len(serial) == 4
    assert [p for p, _ in parallel.failures] == [p for p, _ in serial.failures] == [records[2].path]
    for i in range(len(serial)):
        np.testing.assert_array_equal(parallel[i]["waveform"].numpy(), serial[i]["waveform"].numpy())
