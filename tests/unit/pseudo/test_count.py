"""Cluster-count rules: each automatic rule finds well-separated blobs; fixed / threshold / bounds behave."""

from __future__ import annotations

import numpy as np
import pytest

from asdlab.errors import ConfigError
from asdlab.pseudo.count import AUTO_RULES, choose_cluster_count, cluster_count_bounds
from asdlab.pseudo.labeling import cluster_embeddings
from asdlab.pseudo.ward import ward_linkage


def _blobs(k: int, per: int = 8, dim: int = 4, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((k, dim)) * 10
    return np.concatenate([c + 0.3 * rng.standard_normal((per, dim)) for c in centres])


@pytest.mark.parametrize("rule", AUTO_RULES)
@pytest.mark.parametrize("k", [3, 5])
def test_automatic_rules_find_separated_blobs(rule, k):
    X = _blobs(k)
    choice = choose_cluster_count(X, ward_linkage(X), rule, k_min=2, k_max=10, seed=0)
    assert choice.k == k
    assert (choice.k_min, choice.k_max) == (2, 10)
    assert set(choice.scores) == set(range(2, 11))


def test_jump_is_the_largest_ratio_between_merge_heights():
    X = np.array([[0.0], [0.1], [5.0], [5.1], [5.3]])
    Z = ward_linkage(X)
    heights = Z[:, 2]
    choice = choose_cluster_count(X, Z, "jump", k_min=2, k_max=4)
    assert choice.scores[2] == pytest.approx(np.log(heights[3] / heights[2]))
    assert choice.scores[4] == pytest.approx(np.log(heights[1] / heights[0]))
    assert choice.k == 2


def test_fixed_and_threshold():
    X = _blobs(3)
    Z = ward_linkage(X)
    assert choose_cluster_count(X, Z, "fixed", n_clusters=4).k == 4
    capped = choose_cluster_count(X, Z, "fixed", n_clusters=100)
    assert capped.k == len(X) and "capped" in capped.note
    # a threshold between the 3rd-last and 2nd-last merge heights leaves 3 clusters
    threshold = (Z[-3, 2] + Z[-2, 2]) / 2
    assert choose_cluster_count(X, Z, "threshold", distance_threshold=threshold).k == 3
    assert choose_cluster_count(X, Z, "threshold", distance_threshold=Z[-1, 2]).k == 1


def test_bounds_follow_min_cluster_size():
    assert cluster_count_bounds(66, k_min=2, k_max=16, min_cluster_size=5) == (2, 13)
    assert cluster_count_bounds(100, k_max=16, min_cluster_size=5) == (2, 16)
    assert cluster_count_bounds(4, min_cluster_size=1) == (2, 3)  # silhouette needs K < N


def test_too_few_clips_give_one_cluster_with_a_note():
    X = _blobs(2, per=3)
    choice = choose_cluster_count(X, ward_linkage(X), "silhouette", min_cluster_size=5)
    assert choice.k == 1 and "allow no choice" in choice.note


def test_bad_arguments_are_named():
    X = _blobs(2)
    Z = ward_linkage(X)
    with pytest.raises(ConfigError, match="n_clusters"):
        choose_cluster_count(X, Z, "fixed")
    with pytest.raises(ConfigError, match="distance_threshold"):
        choose_cluster_count(X, Z, "threshold", distance_threshold=-1.0)
    with pytest.raises(ConfigError, match="cluster-count rule"):
        choose_cluster_count(X, Z, "knee")  # type: ignore[arg-type]


def test_cluster_embeddings_merges_a_small_group():
    X = np.concatenate([_blobs(3, per=8), np.array([[50.0, 50.0, 50.0, 50.0]] * 2)])
    result = cluster_embeddings(X, rule="fixed", n_clusters=4, min_cluster_size=3)
    assert result.choice.k == 4 and result.n_clusters == 3
    assert np.bincount(result.labels).min() >= 3
    assert result.linkage.shape == (len(X) - 1, 4)
    single = cluster_embeddings(X[:1])
    assert single.n_clusters == 1 and single.labels.tolist() == [0]


def test_elbow_sees_the_second_level_of_nested_clusters():
    # Two far pairs of near blobs (a 2 x 2 design): silhouette, jump and gap stop at the top split.
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [2.0, 0.0], [20.0, 0.0], [22.0, 0.0]])
    X = np.concatenate([c + 0.3 * rng.standard_normal((10, 2)) for c in centres])
    Z = ward_linkage(X)
    assert choose_cluster_count(X, Z, "silhouette", k_max=8).k == 2
    assert choose_cluster_count(X, Z, "elbow", k_max=8).k == 4


def test_elbow_scores_are_the_distance_below_the_chord():
    X = np.array([[0.0], [1.0], [10.0], [11.0], [30.0]])
    Z = ward_linkage(X)
    # W_K by hand: K=1 all five, K=2 {0,1,10,11} + {30}, K=3 {0,1} {10,11} {30}, K=4 splits a pair.
    w = {1: np.sum((X - X.mean()) ** 2), 2: np.sum((X[:4] - X[:4].mean()) ** 2), 3: 1.0, 4: 0.5}
    log_w = np.log([w[k] for k in (1, 2, 3, 4)])
    y = (log_w - log_w[-1]) / (log_w[0] - log_w[-1])
    expected = (1 - np.arange(4) / 3) - y
    choice = choose_cluster_count(X, Z, "elbow", k_max=4)
    np.testing.assert_allclose([choice.scores[k] for k in (2, 3, 4)], expected[1:])
    assert choice.k == 2 + int(np.argmax(expected[1:]))
