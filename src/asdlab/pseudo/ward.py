"""Agglomerative Ward clustering of clip embeddings (paper Sec. 2.4, eq. 9), with small clusters merged.

Ward's linkage merges, at each step, the two clusters whose union raises the error sum of squares
(ESS, eq. 9) the least; SciPy's `linkage(method="ward")` gives the full tree, which is cut at K.
Optional preprocessing: L2 normalisation, or PCA whitening (every kept direction at unit variance).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import NDArray
from scipy.cluster import hierarchy

from asdlab.errors import ConfigError, DataError

__all__ = [
    "Normalization",
    "NORMALIZATIONS",
    "prepare_embeddings",
    "ward_linkage",
    "cut_linkage",
    "merge_small_clusters",
    "relabel_by_size",
]

Normalization = Literal["none", "l2", "pca-whiten"]
NORMALIZATIONS: tuple[str, ...] = ("none", "l2", "pca-whiten")
_EPS = 1e-12


def prepare_embeddings(
    X: NDArray[np.floating],
    how: Normalization = "none",
    *,
    variance_kept: float = 0.9,
    max_components: int | None = None,
) -> NDArray[np.float64]:
    """Preprocess embeddings (N, D) for clustering.

    Args:
        X: (N, D) embeddings.
        how: "none"; "l2" (each row to unit length: clusters by direction, as cosine scoring does);
            "pca-whiten" (centre, project on the principal directions that keep `variance_kept` of
            the variance, at most `max_components` and at most N - 1, and scale each to unit
            variance, so no single loud direction dominates Ward's squared distances).
        variance_kept: fraction of variance the whitened directions keep (0 < v <= 1).
        max_components: cap on whitened directions; None = no cap beyond N - 1.

    Returns:
        (N, D') float64; D' = D except for "pca-whiten".

    Raises:
        ConfigError: unknown `how` or `variance_kept` out of range.
        DataError: X is not a finite (N, D) array.
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or len(X) == 0:
        raise DataError(f"embeddings must be a non-empty (N, D) array, got shape {X.shape}")
    if not np.isfinite(X).all():
        raise DataError("embeddings contain NaN or infinite values")
    if how == "none":
        return X
    if how == "l2":
        return X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), _EPS)
    if how != "pca-whiten":
        raise ConfigError(f"normalization must be one of {NORMALIZATIONS}, got {how!r}")
    if not 0.0 < variance_kept <= 1.0:
        raise ConfigError(f"variance_kept must be in (0, 1], got {variance_kept}")
    centred = X - X.mean(axis=0)
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    variance = singular**2 / max(len(X) - 1, 1)
    if variance.sum() <= _EPS:  # every clip identical: nothing to whiten
        return centred[:, :1]
    ratio = np.cumsum(variance) / variance.sum()
    n = int(np.searchsorted(ratio, variance_kept - 1e-9) + 1)
    n = min(n, max(len(X) - 1, 1), max_components or n, int((variance > _EPS * variance[0]).sum()))
    return centred @ vt[:n].T / np.sqrt(variance[:n])  # (N, n)


def ward_linkage(X: NDArray[np.floating]) -> NDArray[np.float64]:
    """SciPy linkage matrix (N - 1, 4) of Ward clustering on Euclidean distances.

    Row i merges clusters Z[i, 0] and Z[i, 1] at height Z[i, 2] (for Ward, sqrt(2 x the ESS
    increase)) into a cluster of Z[i, 3] clips; heights never decrease.

    Raises:
        DataError: fewer than two clips.
    """
    X = np.asarray(X, dtype=np.float64)
    if len(X) < 2:
        raise DataError(f"Ward clustering needs at least 2 clips, got {len(X)}")
    return hierarchy.linkage(X, method="ward", metric="euclidean")


def cut_linkage(Z: NDArray[np.floating], k: int) -> NDArray[np.int64]:
    """Cut a linkage tree into `k` clusters: labels (N,) in 0..k-1, numbered by `relabel_by_size`.

    Raises:
        ConfigError: k outside 1..N.
    """
    n = len(Z) + 1
    if not 1 <= k <= n:
        raise ConfigError(f"cannot cut {n} clips into {k} clusters")
    # Undo the last k - 1 merges: a union-find over the first n - k merges gives exactly k groups,
    # even when merge heights tie (fcluster's "maxclust" may then give fewer).
    parent = np.arange(2 * n - 1)

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for step in range(n - k):
        a, b = int(Z[step, 0]), int(Z[step, 1])
        parent[root(a)] = n + step
        parent[root(b)] = n + step
    return relabel_by_size(np.array([root(i) for i in range(n)]))


def relabel_by_size(labels: NDArray[np.integer]) -> NDArray[np.int64]:
    """Renumber clusters 0..K-1 by size, largest first; ties by first appearance. Deterministic names."""
    labels = np.asarray(labels)
    values, first, counts = np.unique(labels, return_index=True, return_counts=True)
    order = np.lexsort((first, -counts))  # primary key: size descending, then first index
    mapping = {values[j]: new for new, j in enumerate(order)}
    return np.array([mapping[v] for v in labels], dtype=np.int64)


def merge_small_clusters(
    X: NDArray[np.floating], labels: NDArray[np.integer], min_size: int
) -> NDArray[np.int64]:
    """Merge every cluster smaller than `min_size` into its nearest cluster, smallest first.

    "Nearest" is Ward's own criterion: the cluster whose union with it raises the ESS the least,
    n_a n_b / (n_a + n_b) * ||m_a - m_b||^2. Merging stops when one cluster is left.

    Args:
        X: (N, D) the embeddings the labels were computed on.
        labels: (N,) cluster of each clip.
        min_size: smallest cluster kept; 1 keeps every cluster.

    Returns:
        (N,) labels renumbered by `relabel_by_size`.
    """
    X = np.asarray(X, dtype=np.float64)
    labels = np.asarray(labels).copy()
    if min_size < 1:
        raise ConfigError(f"min_cluster_size must be >= 1, got {min_size}")
    while True:
        values, counts = np.unique(labels, return_counts=True)
        if len(values) <= 1 or counts.min() >= min_size:
            break
        small = values[np.lexsort((values, counts))[0]]  # smallest, ties to the lowest label
        members = labels == small
        centre, n_small = X[members].mean(axis=0), members.sum()
        others = [v for v in values if v != small]
        costs = []
        for v in others:
            in_v = labels == v
            n_v = in_v.sum()
            costs.append(n_small * n_v / (n_small + n_v) * np.sum((X[in_v].mean(axis=0) - centre) ** 2))
        labels[members] = others[int(np.argmin(costs))]
    return relabel_by_size(labels)
