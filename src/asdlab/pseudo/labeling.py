"""Embeddings of one machine's clips -> pseudo-attribute clusters: preprocess, Ward tree, choose K, merge small.

This composes `ward` and `count` into the one call the pipeline stage makes per (machine, section):
`cluster_embeddings` clusters all clips together, `cluster_by_domain` each domain on its own (DCASE
target-domain attributes never occur in the source domain, and a target domain's ~10 clips would
otherwise be absorbed by source clusters).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from asdlab.errors import ConfigError, DataError
from asdlab.pseudo.count import CountChoice, CountRule, choose_cluster_count
from asdlab.pseudo.ward import Normalization, cut_linkage, merge_small_clusters, prepare_embeddings, ward_linkage

__all__ = ["WardClustering", "DomainClustering", "cluster_embeddings", "cluster_by_domain"]


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


@dataclass(frozen=True)
class DomainClustering:
    """Result of `cluster_by_domain`.

    Attributes:
        labels: (N,) int64 cluster of each clip; the first domain's clusters are 0..K_1-1, the next
            domain's K_1..K_1+K_2-1, and so on, so no cluster spans two domains.
        domains: the domains in label order (source first, then the others sorted).
        parts: each domain's `WardClustering` (its labels are local, rows in input order of that domain).
        n_clusters: total clusters.
    """

    labels: NDArray[np.int64]
    domains: tuple[str, ...]
    parts: dict[str, WardClustering]
    n_clusters: int


def cluster_by_domain(
    X: NDArray[np.floating],
    domains: Sequence[str] | NDArray[np.str_],
    *,
    min_cluster_size: int | Mapping[str, int] = 1,
    **options,
) -> DomainClustering:
    """Cluster each domain's clips on its own with `cluster_embeddings`.

    Args:
        X: (N, D) clip embeddings of one machine type (and section).
        domains: (N,) domain of each clip ("source", "target", or "" when unknown).
        min_cluster_size: one value, or {domain: value} (domains not named get 1), e.g. 5 for the
            source and 2 for a target domain of ~10 clips.
        **options: the other `cluster_embeddings` arguments (rule, normalization, n_clusters, ...),
            applied to every domain.

    Raises:
        ConfigError / DataError: as `cluster_embeddings`, or domains not one per clip.
    """
    X = np.asarray(X)
    domains = np.asarray(domains).astype(np.str_)
    if domains.shape != (len(X),):
        raise DataError(f"domains must have one label per clip ({len(X)}), got shape {domains.shape}")
    order = sorted(set(domains.tolist()), key=lambda d: (d != "source", d))
    labels = np.empty(len(X), dtype=np.int64)
    parts, offset = {}, 0
    for domain in order:
        rows = np.flatnonzero(domains == domain)
        size = min_cluster_size.get(domain, 1) if isinstance(min_cluster_size, Mapping) else min_cluster_size
        part = cluster_embeddings(X[rows], min_cluster_size=size, **options)
        labels[rows] = part.labels + offset
        parts[domain] = part
        offset += part.n_clusters
    return DomainClustering(labels, tuple(order), parts, offset)
