from pathlib import Path

import numpy as np
import pytest

from asdlab.data.records import ClipRecord
from asdlab.embeddings.table import EmbeddingTable
from asdlab.errors import DataError


def _records():
    return [
        ClipRecord(Path("/d/fan/train/section_00_source_train_normal_0000_a_1.wav"), "fan", "00", "train", "normal", "source", "0000", "a_1"),
        ClipRecord(Path("/d/fan/test/section_00_0003.wav"), "fan", "00", "test", None, None, "0003", "", "eval-anonymised"),
    ]


def test_round_trip_keeps_every_column(tmp_path):
    table = EmbeddingTable.from_records(_records(), np.arange(6, dtype=np.float64).reshape(2, 3))
    table.save(tmp_path / "emb.npz")
    loaded = EmbeddingTable.load(tmp_path / "emb.npz")
    assert loaded.embeddings.dtype == np.float32
    np.testing.assert_array_equal(loaded.embeddings, table.embeddings)
    assert loaded.label.tolist() == ["normal", ""]
    assert loaded.domain.tolist() == ["source", ""]
    assert loaded.filename.tolist() == ["section_00_source_train_normal_0000_a_1.wav", "section_00_0003.wav"]


def test_select_keeps_rows_aligned():
    table = EmbeddingTable.from_records(_records(), np.eye(2))
    picked = table.select(table.split == "test")
    assert len(picked) == 1
    assert picked.path.tolist() == ["/d/fan/test/section_00_0003.wav"]
    np.testing.assert_array_equal(picked.embeddings, [[0.0, 1.0]])


def test_mismatched_columns_are_rejected():
    table = EmbeddingTable.from_records(_records(), np.eye(2))
    with pytest.raises(DataError, match="column 'machine' has 1 rows"):
        EmbeddingTable(**{**table.__dict__, "machine": table.machine[:1]})


def test_loading_a_foreign_file_names_it(tmp_path):
    bad = tmp_path / "not_embeddings.npz"
    np.savez(bad, x=np.zeros(3))
    with pytest.raises(DataError, match="not_embeddings.npz"):
        EmbeddingTable.load(bad)
