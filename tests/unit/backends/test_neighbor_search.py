"""NeighborSearch: exact distances on hand-made points, faiss == NumPy (ties included), approximate indexes."""

import pickle

import numpy as np
import pytest

from asdlab.backends.search import ApproximateIndex, NeighborSearch, faiss_available
from asdlab.errors import ConfigError, DataError, NotFittedError

needs_faiss = pytest.mark.skipif(not faiss_available(), reason="faiss is not installed")
BACKENDS = ["numpy", pytest.param("faiss", marks=needs_faiss)]

SQUARE = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])


@pytest.mark.parametrize("backend", BACKENDS)
def test_euclidean_distances_by_hand(backend):
    search = NeighborSearch("euclidean", search_backend=backend).fit(SQUARE)
    dist, idx = search.search([[0.0, 0.0], [3.0, 4.0]], 2)
    assert dist.dtype == np.float64 and idx.dtype == np.int64
    # (0, 0): itself, then two references at distance 1 -> the lower index (1) wins the tie.
    np.testing.assert_array_equal(idx[0], [0, 1])
    np.testing.assert_allclose(dist[0], [0.0, 1.0])
    np.testing.assert_allclose(dist[1], [np.sqrt(4 + 9), np.sqrt(9 + 9)])
    np.testing.assert_array_equal(idx[1], [3, 2])


@pytest.mark.parametrize("backend", BACKENDS)
def test_cosine_distances_by_hand(backend):
    refs = np.array([[1.0, 0.0], [0.0, 2.0], [-3.0, 0.0]])
    search = NeighborSearch("cosine", search_backend=backend).fit(refs)
    dist, idx = search.search([[5.0, 0.0], [1.0, 1.0]], 3)
    np.testing.assert_array_equal(idx[0], [0, 1, 2])
    assert dist[0, 0] == 0.0  # same direction, any length: exactly zero
    np.testing.assert_allclose(dist[0], [0.0, 1.0, 2.0], atol=1e-12)
    np.testing.assert_allclose(dist[1], [1 - np.sqrt(0.5), 1 - np.sqrt(0.5), 1 + np.sqrt(0.5)], atol=1e-7)
    np.testing.assert_array_equal(idx[1], [0, 1, 2])


@pytest.mark.parametrize("backend", BACKENDS)
def test_search_self_leaves_self_out_even_with_duplicates(backend):
    refs = np.array([[0.0, 0.0], [0.0, 0.0], [2.0, 0.0], [5.0, 0.0]])
    search = NeighborSearch("euclidean", search_backend=backend).fit(refs)
    dist, idx = search.search_self(1)
    np.testing.assert_array_equal(idx[:, 0], [1, 0, 0, 2])
    np.testing.assert_allclose(dist[:, 0], [0.0, 0.0, 2.0, 3.0])
    assert not (idx == np.arange(4)[:, None]).any()


@needs_faiss
@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
@pytest.mark.parametrize("k", [1, 4])
def test_faiss_equals_numpy_with_ties(metric, k):
    rng = np.random.default_rng(0)
    refs = rng.normal(size=(700, 16)).astype(np.float32)
    refs[10] = refs[11]  # exact duplicates: ties that straddle the k-th place
    refs[20:26] = refs[3]
    queries = np.concatenate([rng.normal(size=(60, 16)), refs[[3, 10, 11, 20]]]).astype(np.float32)
    fast = NeighborSearch(metric, search_backend="faiss").fit(refs)
    slow = NeighborSearch(metric, search_backend="numpy", block_size=7).fit(refs)
    for a, b in [(fast.search(queries, k), slow.search(queries, k)), (fast.search_self(k), slow.search_self(k))]:
        np.testing.assert_array_equal(a[1], b[1])
        np.testing.assert_array_equal(a[0], b[0])
    # Tied duplicates come out by index.
    np.testing.assert_array_equal(slow.search(refs[[3]], 4)[1][0], [3, 20, 21, 22])


def test_numpy_reference_blocks_merge(monkeypatch):
    import asdlab.backends.search as search_module

    rng = np.random.default_rng(1)
    refs = rng.normal(size=(300, 8))
    queries = rng.normal(size=(20, 8))
    whole = NeighborSearch("euclidean", search_backend="numpy").fit(refs).search(queries, 5)
    monkeypatch.setattr(search_module, "_BLOCK_ELEMENTS", 64)  # forces several reference blocks
    monkeypatch.setattr(search_module, "_REFERENCE_BLOCK", 37)
    blocked = NeighborSearch("euclidean", search_backend="numpy").fit(refs).search(queries, 5)
    np.testing.assert_array_equal(whole[1], blocked[1])
    brute = np.sqrt(((queries[:, None] - refs[None]) ** 2).sum(-1))
    np.testing.assert_array_equal(np.argsort(brute, axis=1, kind="stable")[:, :5], whole[1])
    np.testing.assert_allclose(np.sort(brute, axis=1)[:, :5], whole[0], rtol=1e-6)


@needs_faiss
@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_approximate_index_finds_neighbours_and_pickles(kind):
    rng = np.random.default_rng(2)
    refs = rng.normal(size=(2000, 8)).astype(np.float32)
    queries = refs[:50] + 0.01 * rng.normal(size=(50, 8)).astype(np.float32)
    spec = ApproximateIndex(kind, nlist=20, nprobe=20)  # nprobe = nlist: IVF scans everything
    search = NeighborSearch("cosine", index=spec).fit(refs)
    dist, idx = search.search(queries, 1)
    np.testing.assert_array_equal(idx[:, 0], np.arange(50))
    again = pickle.loads(pickle.dumps(search))
    np.testing.assert_array_equal(again.search(queries, 1)[1], idx)


def test_errors():
    with pytest.raises(NotFittedError, match="fit"):
        NeighborSearch().search(SQUARE, 1)
    with pytest.raises(ConfigError, match="metric"):
        NeighborSearch("manhattan").fit(SQUARE)
    with pytest.raises(ConfigError, match="approximate index needs faiss"):
        NeighborSearch(search_backend="numpy", index=ApproximateIndex()).fit(SQUARE)
    search = NeighborSearch(search_backend="numpy").fit(SQUARE)
    with pytest.raises(DataError, match="only 4"):
        search.search(SQUARE, 5)
    with pytest.raises(DataError, match="only 3"):
        search.search_self(4)
    with pytest.raises(DataError, match="3 columns"):
        search.search(np.zeros((1, 3)), 1)
    with pytest.raises(DataError, match="NaN"):
        NeighborSearch().fit([[0.0, np.nan]])


def test_without_faiss_auto_falls_back_to_numpy(monkeypatch):
    import asdlab.backends.search as search_module

    expected = NeighborSearch("euclidean", search_backend="numpy").fit(SQUARE).search([[0.2, 0.1]], 2)
    monkeypatch.setattr(search_module, "faiss", None)
    search = NeighborSearch("euclidean").fit(SQUARE)
    assert search.backend_ == "numpy"
    got = search.search([[0.2, 0.1]], 2)
    np.testing.assert_array_equal(got[1], expected[1])
    np.testing.assert_array_equal(got[0], expected[0])
    with pytest.raises(ConfigError, match="faiss is not installed"):
        NeighborSearch(search_backend="faiss").fit(SQUARE)
