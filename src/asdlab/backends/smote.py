"""SMOTE-style synthetic references for the scarce target domain, and the kNN backend using them.

SMOTE (Chawla et al., 2002): a synthetic point is x_i + u (x_j - x_i), u ~ U(0, 1), with x_j drawn
among the m nearest neighbours of x_i in the same set. `interpolate_between` is the cross-set
variant used for domain synthesis (ensemble report, DADS-kNN): target point t_i moved a fraction
u ~ U(0, max_fraction) towards one of its m nearest source references.
"""

from __future__ import annotations

import logging

import numpy as np
from numpy.typing import NDArray

from asdlab.backends._banks import Bank, BankBackend
from asdlab.backends._validation import check_choice, check_positive_int, split_domains
from asdlab.backends.search import ApproximateIndex, Metric, NeighborSearch, SearchBackend, as_float_matrix
from asdlab.errors import ConfigError, DataError

__all__ = ["interpolate_neighbors", "interpolate_between", "SMOTEKNNBackend"]

log = logging.getLogger(__name__)


def interpolate_neighbors(
    X,
    n_per_point: int,
    *,
    n_neighbors: int = 5,
    metric: Metric = "euclidean",
    generator: np.random.Generator | int | None = None,
) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    """SMOTE within one set: `n_per_point` synthetic points per point of X.

    Args:
        X: (N, D) points, N >= 2.
        n_per_point: synthetic points per input point.
        n_neighbors: m, neighbours (other than the point itself) a partner is drawn from;
            at most N - 1 are used.
        metric: distance used to find the neighbours.
        generator: a NumPy Generator or a seed.

    Returns:
        synthetic (N * n_per_point, D) float32 and, per synthetic point, the row of X it started from.

    Raises:
        DataError: fewer than two points.
    """
    X = as_float_matrix(X, "X")
    if len(X) < 2:
        raise DataError(f"SMOTE needs at least 2 points to interpolate between, got {len(X)}")
    m = min(check_positive_int("n_neighbors", n_neighbors), len(X) - 1)
    _, neighbors = NeighborSearch(metric).fit(X).search_self(m)
    return _interpolate(X, X, neighbors, n_per_point, 1.0, generator)


def interpolate_between(
    A,
    B,
    n_per_point: int,
    *,
    n_neighbors: int = 5,
    max_fraction: float = 0.5,
    metric: Metric = "euclidean",
    generator: np.random.Generator | int | None = None,
) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    """Move points of A towards their nearest points of B: a_i + u (b - a_i), u ~ U(0, max_fraction).

    Args:
        A: (N, D) points to move (e.g. target references).
        B: (M, D) points to move towards (e.g. source references).
        n_per_point: synthetic points per point of A.
        n_neighbors: the partner b is drawn among a_i's n_neighbors nearest points of B.
        max_fraction: largest step towards b, in (0, 1]; below 0.5 keeps points nearer A's side.
        metric: distance used to find the neighbours.
        generator: a NumPy Generator or a seed.

    Returns:
        synthetic (N * n_per_point, D) float32 and, per synthetic point, the row of A it started from.
    """
    A = as_float_matrix(A, "A")
    B = as_float_matrix(B, "B", dim=A.shape[1])
    if not 0.0 < max_fraction <= 1.0:
        raise ConfigError(f"max_fraction must be in (0, 1], got {max_fraction!r}")
    m = min(check_positive_int("n_neighbors", n_neighbors), len(B))
    _, neighbors = NeighborSearch(metric).fit(B).search(A, m)
    return _interpolate(A, B, neighbors, n_per_point, max_fraction, generator)


def _interpolate(A, B, neighbors, n_per_point, max_fraction, generator):
    n_per_point = check_positive_int("n_per_point", n_per_point)
    rng = np.random.default_rng(generator)
    origin = np.repeat(np.arange(len(A)), n_per_point)  # (N * n_per_point,)
    partner = neighbors[origin, rng.integers(0, neighbors.shape[1], size=len(origin))]
    u = rng.uniform(0.0, max_fraction, size=(len(origin), 1))
    synthetic = A[origin] + u * (B[partner] - A[origin])
    return synthetic.astype(np.float32), origin.astype(np.int64)


class SMOTEKNNBackend(BankBackend):
    """Per-domain kNN (as `KNNBackend`) with the target bank enlarged by SMOTE points.

    Args:
        n_neighbors: k of the scoring kNN.
        metric: "cosine" or "euclidean".
        target_domain: the domain label whose bank is oversampled.
        n_synthetic: synthetic points per target clip.
        smote_neighbors: m, SMOTE partners are drawn among the m nearest target clips.
        seed: seed of the interpolation.
        search_backend, index: as in `KNNBackend`.
    """

    def __init__(
        self,
        n_neighbors: int = 1,
        metric: Metric = "cosine",
        *,
        target_domain: str = "target",
        n_synthetic: int = 5,
        smote_neighbors: int = 5,
        seed: int = 0,
        search_backend: SearchBackend = "auto",
        index: ApproximateIndex | None = None,
    ):
        self.n_neighbors = n_neighbors
        self.metric = metric
        self.target_domain = target_domain
        self.n_synthetic = n_synthetic
        self.smote_neighbors = smote_neighbors
        self.seed = seed
        self.search_backend = search_backend
        self.index = index

    def fit(self, X, y=None, *, domains=None) -> SMOTEKNNBackend:
        """Build per-domain banks; the target bank gets `n_synthetic` SMOTE points per clip.

        Raises:
            ConfigError: bad hyper-parameters.
            DataError: bad X / domains, or a domain with fewer than k clips.
        """
        k = check_positive_int("n_neighbors", self.n_neighbors)
        check_positive_int("n_synthetic", self.n_synthetic)
        check_positive_int("smote_neighbors", self.smote_neighbors)
        check_choice("metric", self.metric, ("cosine", "euclidean"))
        X = as_float_matrix(X, "X")
        names, groups = split_domains(domains, len(X))
        rng = np.random.default_rng(self.seed)
        if self.target_domain not in names:
            log.warning("SMOTEKNNBackend: no %r domain among %s; nothing is oversampled", self.target_domain, list(names))
        self.banks_ = []
        for name, rows in zip(names, groups):
            if len(rows) < k:
                raise DataError(f"n_neighbors={k} but domain {str(name)!r} has only {len(rows)} training clips")
            refs, parents = X[rows], rows
            if name == self.target_domain and len(rows) >= 2:
                synthetic, origin = interpolate_neighbors(
                    refs, self.n_synthetic, n_neighbors=self.smote_neighbors, metric=self.metric, generator=rng
                )
                refs, parents = np.concatenate([refs, synthetic]), np.concatenate([rows, rows[origin]])
            self.banks_.append(Bank(str(name), self._new_search().fit(refs), parents, len(rows)))
        self.n_features_in_ = X.shape[1]
        self.n_samples_fit_ = len(X)
        return self
