"""Embedding many clips: decoding threads, batches closed where the clip length changes, bad clips
reported, chunks of one pipeline: every way gives the embeddings of the plain one-clip-at-a-time path."""

import numpy as np
import pytest
import soundfile as sf
import torch
from torch import nn

from asdlab.data.records import ClipRecord
from asdlab.embeddings.extract import embed_clips, iter_embedded_chunks, resolve_device, resolve_inference_precision
from asdlab.errors import ConfigError


class Stats(nn.Module):
    """A deterministic 'encoder': mean, std and the first sample of each waveform (B, 3)."""

    sample_rate = 16000

    def forward(self, waveform):
        return torch.stack([waveform.mean(1), waveform.std(1), waveform[:, 0]], dim=1)


@pytest.fixture
def records(tmp_path):
    rng = np.random.default_rng(0)
    found = []
    for i, samples in enumerate([1600, 1600, 1600, 2400, 0, 2400, 1600]):  # a length change and an empty file
        path = tmp_path / f"section_00_source_train_normal_{i:04d}_noAttribute.wav"
        sf.write(path, 0.1 * rng.standard_normal(samples), 16000)
        found.append(ClipRecord(path=path, machine="fan", section="00", split="train", label="normal",
                                domain="source"))
    return found


def _one_by_one(records):
    rows = []
    for record in records:
        clips = embed_clips([record], Stats(), batch_size=1, device="cpu")
        rows.extend(clips.embeddings)
    return np.array(rows)


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("batch_size", [2, 4])
def test_threads_and_batching_give_the_one_by_one_embeddings(records, workers, batch_size):
    clips = embed_clips(records, Stats(), batch_size=batch_size, device="cpu", num_workers=workers)
    assert [r.path for r in clips.records] == [r.path for i, r in enumerate(records) if i != 4]
    assert [f.path for f in clips.failures] == [records[4].path]
    np.testing.assert_allclose(clips.embeddings, _one_by_one(records), rtol=1e-6, atol=1e-7)


def test_chunks_cover_the_records_in_order(records):
    chunks = list(iter_embedded_chunks(records, Stats(), chunk_size=4, batch_size=2, device="cpu", num_workers=2))
    assert [start for start, _ in chunks] == [0, 4]
    assert sum(len(c.records) for _, c in chunks) == 6 and len(chunks[1][1].failures) == 1
    with pytest.raises(ConfigError, match="multiple of batch_size"):
        next(iter_embedded_chunks(records, Stats(), chunk_size=3, batch_size=2))


def test_auto_device_and_precision():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_inference_precision("auto", torch.device("cpu")) == "fp32"
    assert resolve_inference_precision("auto", torch.device("cuda")) == "bf16"
    with pytest.raises(ConfigError, match="precision"):
        resolve_inference_precision("fp8", torch.device("cpu"))
