"""Ward clustering: the tree matches SciPy, cuts give exactly K groups, small clusters merge into the nearest."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.cluster import hierarchy

from asdlab.errors import ConfigError, DataError
from asdlab.pseudo.ward import (
    cut_linkage,
    merge_small_clusters,
    prepare_embeddings,
    relabel_by_size,
    ward_linkage,
)


def _blobs(sizes, *, spread=0.05, dim=3, seed=0):
    rng = np.random.default_rng(seed)
    centres = np.eye(dim)[: len(sizes)] * 10
    X = np.concatenate([c + spread * rng.standard_normal((n, dim)) for c, n in zip(centres, sizes)])
    truth = np.repeat(np.arange(len(sizes)), sizes)
    return X, truth


def test_cut_recovers_separated_blobs_with_labels_by_size():
    X, truth = _blobs([4, 9, 6])
    labels = cut_linkage(ward_linkage(X), 3)
    # largest blob (truth 1) is pseudo 0, then truth 2 (6 clips), then truth 0 (4 clips)
    np.testing.assert_array_equal(labels, np.array([2, 0, 1])[truth])
    assert labels.dtype == np.int64


def test_cut_agrees_with_fcluster_for_every_k():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((25, 4))
    Z = ward_linkage(X)
    for k in range(1, 26):
        ours = cut_linkage(Z, k)
        theirs = hierarchy.fcluster(Z, k, criterion="maxclust")
        assert len(np.unique(ours)) == k
        # same partition: a one-to-one map between label sets
        pairs = set(zip(ours.tolist(), theirs.tolist()))
        assert len(pairs) == k == len({a for a, _ in pairs}) == len({b for _, b in pairs})


def test_cut_gives_exactly_k_groups_when_heights_tie():
    X = np.array([[0.0], [0.0], [0.0], [0.0]])  # every merge at height 0
    for k in (1, 2, 3, 4):
        assert len(np.unique(cut_linkage(ward_linkage(X), k))) == k


def test_cut_rejects_impossible_k():
    Z = ward_linkage(np.arange(6.0).reshape(3, 2))
    with pytest.raises(ConfigError, match="3 clips into 4 clusters"):
        cut_linkage(Z, 4)


def test_linkage_needs_two_clips():
    with pytest.raises(DataError, match="at least 2 clips"):
        ward_linkage(np.zeros((1, 3)))


def test_relabel_by_size_breaks_ties_by_first_appearance():
    np.testing.assert_array_equal(relabel_by_size(np.array([7, 3, 3, 7, 9])), [0, 1, 1, 0, 2])


def test_small_cluster_goes_to_the_ward_nearest_neighbour():
    # clusters: A (5 clips at 0), B (5 clips at 10), C (2 clips at 3): C is nearer A.
    X = np.array([[0.0]] * 5 + [[10.0]] * 5 + [[3.0]] * 2)
    labels = np.array([0] * 5 + [1] * 5 + [2] * 2)
    merged = merge_small_clusters(X, labels, 3)
    np.testing.assert_array_equal(merged, [0] * 5 + [1] * 5 + [0] * 2)


def test_ward_cost_not_centroid_distance_decides():
    # C (1 clip at 4.6) is nearer B's centroid (5, 1 clip) but merging with A (0, 20 clips)?
    # Ward cost to A: 20*1/21 * 4.6^2 = 20.15; to B: 1*1/2 * 0.4^2 = 0.08 -> B.  Then B+C (2 clips) < 3 -> A.
    X = np.array([[0.0]] * 20 + [[5.0]] + [[4.6]])
    labels = np.array([0] * 20 + [1] + [2])
    np.testing.assert_array_equal(merge_small_clusters(X, labels, 2), [0] * 20 + [1, 1])
    np.testing.assert_array_equal(merge_small_clusters(X, labels, 3), [0] * 22)


def test_merging_keeps_large_clusters_and_min_size_one_is_identity():
    X, truth = _blobs([5, 5])
    np.testing.assert_array_equal(merge_small_clusters(X, truth, 1), truth)
    np.testing.assert_array_equal(merge_small_clusters(X, truth, 5), truth)
    assert (merge_small_clusters(X, truth, 6) == 0).all()  # nothing reaches 6: one cluster left


def test_prepare_l2_and_pca_whiten():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 5)) * np.array([10.0, 3.0, 1.0, 0.1, 0.01])
    l2 = prepare_embeddings(X, "l2")
    np.testing.assert_allclose(np.linalg.norm(l2, axis=1), 1.0)
    white = prepare_embeddings(X, "pca-whiten", variance_kept=1.0)
    assert white.shape == (40, 5)
    np.testing.assert_allclose(np.cov(white, rowvar=False), np.eye(5), atol=1e-8)
    assert prepare_embeddings(X, "pca-whiten", variance_kept=0.8).shape[1] == 1  # the first axis holds ~90 %
    assert prepare_embeddings(X, "pca-whiten", max_components=2).shape[1] == 2
    np.testing.assert_array_equal(prepare_embeddings(X, "none"), X)


def test_prepare_rejects_bad_input():
    with pytest.raises(ConfigError, match="normalization must be one of"):
        prepare_embeddings(np.ones((3, 2)), "zscore")  # type: ignore[arg-type]
    with pytest.raises(DataError, match="NaN"):
        prepare_embeddings(np.array([[np.nan, 1.0]]))
    with pytest.raises(DataError, match=r"\(N, D\)"):
        prepare_embeddings(np.ones(3))
