"""A kill during `embed_dataset`'s final clean-up leaves nothing that stops the rerun (found by benchmarks/kill_resume.py)."""

from __future__ import annotations

import numpy as np

from asdlab.embeddings.table import EmbeddingTable
from asdlab.pipeline.embed import EmbedConfig, embed_dataset, partial_dir


def test_chunks_without_their_state_are_discarded(tiny_hidden_root, tmp_path):
    config = EmbedConfig(backbone="logmel-stats")
    out = tmp_path / "emb.npz"
    first = EmbeddingTable.load(embed_dataset(tiny_hidden_root, out, config, batch_size=2, chunk_batches=1).table_path)
    assert not partial_dir(out).exists() and not partial_dir(out).with_name("emb.npz.partial.finished").exists()
    # What a kill in the middle of removing the partial folder used to leave: some chunks, no state.json.
    leftover = partial_dir(out)
    leftover.mkdir()
    (leftover / "chunk-00000002-00000004.npz").write_bytes(b"stale")
    again = embed_dataset(tiny_hidden_root, out, config, batch_size=2, chunk_batches=1)
    assert again.resumed_clips == 0 and not leftover.exists()
    assert np.array_equal(EmbeddingTable.load(out).embeddings, first.embeddings)
