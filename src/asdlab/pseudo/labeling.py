"""Embeddings of one machine's clips -> pseudo-attribute clusters: preprocess, Ward tree, choose K, merge small.

This composes `ward` and `count` into the one call the pipeline stage makes per (machine, section).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from asdlab.errors import ConfigError
from asdlab.pseudo.count import CountChoice, CountRule, choose_cluster_count
from asdlab.pseudo.ward import Normalization, cut_linkage, merge_small_clusters, prepare_embeddings, ward_linkage

__all__ = ["WardClustering", "cluster_embeddings"]


@dataclass(frozen=True)
class WardClustering:
    """Result of `cluster_embeddings`.

    Attributes:
        labels: (N,) int64 cluster of each clip, 0..K-1, largest cluster first.
        linkage: (N - 1, 4) Ward linkage on the preprocessed embeddings; (0, 4) for a single clip.
        features: (N, D') the preprocessed embeddings the tree was built on.
        choice: how K was chosen (K before merging).
        n_clusters: clusters after small ones were merged.
    """

    labels: NDArray[np.int64]
    linkage: NDArray[np.float64]
    features: NDArray[np.float64]
    choice: CountChoice
    n_clusters: int


def cluster_embeddings(
    X: NDArray[np.floating],
    *,
    normalization: Normalization = "none",
    rule: CountRule = "silhouette",
    n_clusters: int | None = None,
    distance_threshold: float | None = None,
    k_min: int = 2,
    k_max: int = 16,
    min_cluster_size: int = 1,
    seed: int = 0,
) -> WardClustering:
    """Cluster embeddings (N, D) with Ward linkage into pseudo-attributes.

    Args:
        X: (N, D) clip embeddings of one machine type (and section).
        normalization: see `prepare_embeddings`.
        rule / n_clusters / distance_threshold / k_min / k_max: see `choose_cluster_count`;
            automatic rules also respect `min_cluster_size` in their upper bound.
        min_cluster_size: clusters smaller than this are merged into their Ward-nearest neighbour.
        seed: randomness of the "gap" rule.

    Returns:
        `WardClustering`. A single clip gives one cluster.

    Raises:
        ConfigError: bad rule arguments or `min_cluster_size` < 1.
        DataError: X is empty or not finite.
    """
    if min_cluster_size < 1:
        raise ConfigError(f"min_cluster_size must be >= 1, got {min_cluster_size}")
    features = prepare_embeddings(X, normalization)
    if len(features) == 1:
        choice = CountChoice(rule, 1, 1, 1, note="1 clip: one cluster")
        return WardClustering(np.zeros(1, np.int64), np.zeros((0, 4)), features, choice, 1)
    linkage = ward_linkage(features)
    choice = choose_cluster_count(
        features, linkage, rule, n_clusters=n_clusters, distance_threshold=distance_threshold,
        k_min=k_min, k_max=k_max, min_cluster_size=min_cluster_size, seed=seed,
    )
    labels = merge_small_clusters(features, cut_linkage(linkage, choice.k), min_cluster_size)
    return WardClustering(labels, linkage, features, choice, int(labels.max()) + 1)
