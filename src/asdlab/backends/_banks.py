"""Per-domain reference banks and their scoring, shared by the kNN-family backends.

A bank is one domain's references (training clips, synthetic points or k-means means) with, per
reference, the training row it came from (for leave-one-out scores) and optionally a density
scale rho (density-normalised kNN: distances are divided by rho of the reference).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from sklearn.base import BaseEstimator

from asdlab.backends._validation import check_fitted
from asdlab.backends.search import NeighborSearch, as_float_matrix

__all__: list[str] = []


@dataclass
class Bank:
    """One domain's references.

    Attributes:
        name: domain label.
        search: fitted search over the references (R, D).
        parents: (R,) training row each reference derives from; -1 for none (k-means means).
        n_original: the first n_original references are training clips themselves (row = parent).
        scale: (R,) density scale rho, or None for plain distances.
    """

    name: str
    search: NeighborSearch
    parents: NDArray[np.int64]
    n_original: int
    scale: NDArray[np.float64] | None = None

    def __len__(self) -> int:
        return len(self.parents)


def score_bank(
    bank: Bank, queries: NDArray[np.float32], k: int, exclude: NDArray[np.int64] | None = None
) -> NDArray[np.float64]:
    """Mean of the k smallest (distance / rho) from each query to the bank's references.

    Args:
        bank: the references.
        queries: (Q, D).
        k: neighbours averaged.
        exclude: (Q,) training row per query; references with that parent are skipped
            (leave-one-out). With fewer than k usable references the mean is over those left,
            and +inf when none is left.

    Returns:
        (Q,) float64.
    """
    n = len(bank)
    out = np.empty(len(queries), dtype=np.float64)
    rows = np.arange(len(queries))
    if bank.scale is None and exclude is None:
        c = min(k, n)
    else:
        # Density scales reorder the neighbours and exclusions remove some: fetch extra candidates.
        c = min(n, max(4 * k, 32))
    scale_max = None if bank.scale is None else float(bank.scale.max())
    while len(rows):
        dist, idx = bank.search.search(queries[rows], c)
        values = dist if bank.scale is None else dist / bank.scale[idx]
        if exclude is not None:
            values = np.where(bank.parents[idx] == exclude[rows, None], np.inf, values)
        values = np.sort(values, axis=1)[:, :k]
        n_valid = np.isfinite(values).sum(axis=1)
        if c == n:
            done = np.ones(len(rows), dtype=bool)
        else:
            done = n_valid >= k
            if scale_max is not None:
                # Any reference not fetched is at distance >= dist[:, -1] with rho <= scale_max, so its
                # ratio is >= dist[:, -1] / scale_max: the k smallest ratios are final when below that.
                done &= values[:, k - 1] <= dist[:, -1] / scale_max
        with np.errstate(invalid="ignore"):
            means = np.where(n_valid > 0, np.where(np.isfinite(values), values, 0.0).sum(axis=1) / n_valid, np.inf)
        out[rows[done]] = means[done]
        rows = rows[~done]
        c = min(n, 2 * c)
    return out


class BankBackend(BaseEstimator):
    """Scoring shared by backends whose fitted state is `banks_` (one per domain) and `n_neighbors`.

    Subclasses have the hyper-parameters `n_neighbors`, `metric`, `search_backend` and `index`.
    """

    def _new_search(self) -> NeighborSearch:
        return NeighborSearch(self.metric, search_backend=self.search_backend, index=self.index)

    def _banks_scores(self, X, exclude: NDArray[np.int64] | None = None) -> NDArray[np.float64]:
        k = int(self.n_neighbors)
        return np.stack([score_bank(bank, X, k, exclude) for bank in self.banks_], axis=1)

    @property
    def domains_(self) -> NDArray[np.str_]:
        """(M,) domain labels of the banks, in column order of `score_samples_per_domain`."""
        check_fitted(self, "banks_")
        return np.array([bank.name for bank in self.banks_], dtype=np.str_)

    def score_samples_per_domain(self, X) -> NDArray[np.float64]:
        """Score against each domain's bank.

        Args:
            X: (N, D) embeddings.

        Returns:
            (N, M) float64, column j for domain `domains_[j]`.

        Raises:
            NotFittedError: before `fit`.
        """
        check_fitted(self, "banks_")
        return self._banks_scores(as_float_matrix(X, "X", dim=self.n_features_in_))

    def score_samples(self, X) -> NDArray[np.float64]:
        """Anomaly scores (N,) float64: minimum over domains. Higher = more anomalous.

        Raises:
            NotFittedError: before `fit`.
        """
        return self.score_samples_per_domain(X).min(axis=1)

    def score_training_samples(self) -> NDArray[np.float64]:
        """Leave-one-out scores (N,) of the training clips, in `fit` order.

        Each clip is scored without the references derived from it (itself and its synthetic
        points), so normalisers and thresholds do not see the zero distance a clip has to itself.
        """
        check_fitted(self, "banks_")
        X = self._training_embeddings()
        return self._banks_scores(X, exclude=np.arange(len(X))).min(axis=1)

    def _training_embeddings(self) -> NDArray[np.float32]:
        """(N, D) training clips in fit order (cosine banks hold them L2-normalised, same scores)."""
        if hasattr(self, "train_embeddings_"):
            return self.train_embeddings_
        X = np.empty((self.n_samples_fit_, self.n_features_in_), dtype=np.float32)
        for bank in self.banks_:
            X[bank.parents[: bank.n_original]] = bank.search.references_[: bank.n_original]
        return X
