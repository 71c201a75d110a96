"""How many pseudo-attributes: a fixed K, a distance threshold, or an automatic rule within bounds.

The paper does not say how its Ward tree is cut. Automatic rules compare the cuts K = k_min..k_max:
"silhouette" (Rousseeuw 1987, mean Euclidean silhouette), "calinski-harabasz"
(between/within variance ratio), "jump" (largest ratio between successive Ward merge heights;
the plain difference favours K = 2, since merges between far groups dwarf all others),
"gap" (Tibshirani, Walther & Hastie 2001, against uniform references in the data's principal box) and
"elbow" (the knee of log W_K, the within-cluster sum of squares, over K = 1..k_max: the K farthest
below the chord from K = 1 to k_max on axes scaled to [0, 1], Satopää et al. 2011's "Kneedle"). The
first four favour the top split of nested attributes (2 x 2 factorial settings give K = 2); the
elbow still sees the second factor (benchmarks/results/pseudo_labels_synthetic.txt).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from scipy.cluster import hierarchy
from sklearn import metrics

from asdlab.errors import ConfigError
from asdlab.pseudo.ward import cut_linkage

__all__ = ["CountRule", "COUNT_RULES", "AUTO_RULES", "CountChoice", "cluster_count_bounds", "choose_cluster_count"]

CountRule = Literal["fixed", "threshold", "silhouette", "calinski-harabasz", "jump", "gap", "elbow"]
AUTO_RULES: tuple[str, ...] = ("silhouette", "calinski-harabasz", "jump", "gap", "elbow")
COUNT_RULES: tuple[str, ...] = ("fixed", "threshold", *AUTO_RULES)


@dataclass(frozen=True)
class CountChoice:
    """The number of clusters chosen, how, and what each candidate scored.

    Attributes:
        rule: the rule used.
        k: clusters chosen (before small clusters are merged).
        k_min / k_max: the candidate range after bounds (equal to k for "fixed" / "threshold").
        scores: {candidate K: the rule's score}; empty for "fixed" / "threshold".
        note: why the range collapsed (too few clips), or "".
    """

    rule: str
    k: int
    k_min: int
    k_max: int
    scores: dict[int, float] = field(default_factory=dict)
    note: str = ""


def cluster_count_bounds(
    n_clips: int, *, k_min: int = 2, k_max: int = 16, min_cluster_size: int = 1
) -> tuple[int, int]:
    """Candidate range of K for `n_clips`: k_min..min(k_max, n_clips // min_cluster_size, n_clips - 1).

    The upper bound keeps K clusters of at least `min_cluster_size` clips possible and leaves the
    silhouette defined (it needs K < N). The range may be empty (lower > upper) for tiny sets.
    """
    upper = min(k_max, n_clips // max(min_cluster_size, 1), n_clips - 1)
    return k_min, upper


def _within_ss(X: NDArray[np.float64], labels: NDArray[np.int64]) -> float:
    """Sum over clusters of squared distances to the cluster mean (eq. 9 summed)."""
    return float(sum(((X[labels == c] - X[labels == c].mean(axis=0)) ** 2).sum() for c in np.unique(labels)))


def _gap_scores(
    X: NDArray[np.float64], Z: NDArray[np.float64], ks: range, *, n_references: int, seed: int
) -> tuple[dict[int, float], dict[int, float]]:
    """Gap(k) = E*[log W_k] - log W_k and its standard error s_k = sd * sqrt(1 + 1/B)."""
    rng = np.random.default_rng(seed)
    centred = X - X.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    rotated = centred @ vt.T  # (N, r): references are drawn in the box of the principal axes
    low, high = rotated.min(axis=0), rotated.max(axis=0)
    log_w = {k: np.log(max(_within_ss(X, cut_linkage(Z, k)), 1e-300)) for k in ks}
    ref_log_w = {k: [] for k in ks}
    for _ in range(n_references):
        ref = rng.uniform(low, high, size=rotated.shape)
        ref_z = hierarchy.linkage(ref, method="ward")
        for k in ks:
            ref_log_w[k].append(np.log(max(_within_ss(ref, cut_linkage(ref_z, k)), 1e-300)))
    gap = {k: float(np.mean(ref_log_w[k]) - log_w[k]) for k in ks}
    spread = {k: float(np.std(ref_log_w[k]) * np.sqrt(1 + 1 / n_references)) for k in ks}
    return gap, spread


def _elbow_scores(X: NDArray[np.float64], Z: NDArray[np.float64], k_max: int) -> dict[int, float]:
    """Distance of log W_K below the chord from K = 1 to k_max, both axes scaled to [0, 1] (K = 1..k_max)."""
    ks = np.arange(1, k_max + 1)
    log_w = np.array([np.log(max(_within_ss(X, cut_linkage(Z, int(k))), 1e-300)) for k in ks])
    span = log_w[0] - log_w[-1]
    if k_max < 2 or span <= 0:
        return {int(k): 0.0 for k in ks}
    x = (ks - 1) / (k_max - 1)
    y = (log_w - log_w[-1]) / span  # 1 at K = 1, 0 at k_max; the chord is 1 - x
    return {int(k): float(v) for k, v in zip(ks, (1 - x) - y)}


def choose_cluster_count(
    X: NDArray[np.floating],
    Z: NDArray[np.floating],
    rule: CountRule,
    *,
    n_clusters: int | None = None,
    distance_threshold: float | None = None,
    k_min: int = 2,
    k_max: int = 16,
    min_cluster_size: int = 1,
    gap_references: int = 10,
    seed: int = 0,
) -> CountChoice:
    """Choose K for the Ward tree `Z` of embeddings `X`.

    Args:
        X: (N, D) embeddings the tree was built on.
        Z: (N - 1, 4) Ward linkage of X.
        rule: "fixed" (K = `n_clusters`, capped at N), "threshold" (cut where merge heights exceed
            `distance_threshold`), or an automatic rule of `AUTO_RULES` over `cluster_count_bounds`.
        n_clusters: K for "fixed".
        distance_threshold: merge height for "threshold" (same units as `Z[:, 2]`).
        k_min / k_max / min_cluster_size: bounds of the automatic search (`cluster_count_bounds`).
        gap_references: uniform reference sets of the "gap" rule.
        seed: draws of the "gap" references.

    Returns:
        `CountChoice`. When the automatic range is empty (too few clips for two clusters of
        `min_cluster_size`), K is the largest count the clips allow (at least 1) and `note` says so.

    Raises:
        ConfigError: unknown rule, a missing or invalid `n_clusters` / `distance_threshold`, or k_min < 1.
    """
    X = np.asarray(X, dtype=np.float64)
    n = len(X)
    if rule == "fixed":
        if n_clusters is None or n_clusters < 1:
            raise ConfigError(f"rule 'fixed' needs n_clusters >= 1, got {n_clusters}")
        k = min(n_clusters, n)
        note = f"{n} clips: K capped at {n}" if k < n_clusters else ""
        return CountChoice(rule, k, k, k, note=note)
    if rule == "threshold":
        if distance_threshold is None or not np.isfinite(distance_threshold) or distance_threshold < 0:
            raise ConfigError(f"rule 'threshold' needs a distance_threshold >= 0, got {distance_threshold}")
        k = n - int(np.sum(np.asarray(Z)[:, 2] <= distance_threshold))
        return CountChoice(rule, k, k, k)
    if rule not in AUTO_RULES:
        raise ConfigError(f"cluster-count rule must be one of {COUNT_RULES}, got {rule!r}")
    if k_min < 1:
        raise ConfigError(f"k_min must be >= 1, got {k_min}")
    low, high = cluster_count_bounds(n, k_min=k_min, k_max=k_max, min_cluster_size=min_cluster_size)
    if high < max(low, 2):
        k = max(1, min(high, k_max))
        return CountChoice(rule, k, k, k, note=f"{n} clips allow no choice between {k_min} and {k_max} clusters "
                                                f"of >= {min_cluster_size}: K = {k}")
    low = max(low, 2)  # no rule below compares K = 1 meaningfully except the gap statistic
    ks = range(low, high + 1)
    heights = np.asarray(Z)[:, 2]
    if rule == "jump":
        # K clusters = the first n - K merges done; the jump is the next merge (index n - K) relative
        # to the last one done, on a log scale (a tiny floor keeps duplicate clips finite).
        floor = 1e-12 * max(float(heights[-1]), 1e-300)
        scores = {k: float(np.log(max(heights[n - k], floor) / max(heights[n - k - 1], floor))) for k in ks}
    elif rule == "gap":
        gap, spread = _gap_scores(X, np.asarray(Z), range(low, high + 2),
                                  n_references=gap_references, seed=seed)
        scores = {k: gap[k] for k in ks}
        # Tibshirani's rule: the smallest K with Gap(K) >= Gap(K + 1) - s(K + 1).
        chosen = next((k for k in ks if k + 1 in gap and gap[k] >= gap[k + 1] - spread[k + 1]), None)
        if chosen is None:
            chosen = max(ks, key=lambda k: scores[k])
        return CountChoice(rule, chosen, low, high, scores)
    elif rule == "elbow":
        scores = _elbow_scores(X, np.asarray(Z), high)
        scores = {k: scores[k] for k in ks}
    else:
        score = metrics.silhouette_score if rule == "silhouette" else metrics.calinski_harabasz_score
        scores = {k: float(score(X, cut_linkage(Z, k))) for k in ks}
    best = max(ks, key=lambda k: (scores[k], -k))  # ties to the smaller K
    return CountChoice(rule, best, low, high, scores)
