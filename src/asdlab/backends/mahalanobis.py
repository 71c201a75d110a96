"""Mahalanobis distance to each domain's Gaussian (shrinkage covariance), min over domains.

A classic baseline: per domain d, mean mu_d and covariance Sigma_d shrunk towards a scaled identity
(Ledoit-Wolf, OAS, or a fixed shrinkage) because the target domain has ~10 clips in hundreds of
dimensions; score(x) = min_d sqrt((x - mu_d)^T Sigma_d^-1 (x - mu_d)).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import NDArray
from sklearn.base import BaseEstimator
from sklearn.covariance import OAS, LedoitWolf, ShrunkCovariance

from asdlab.backends._validation import check_fitted, split_domains
from asdlab.backends.search import as_float_matrix
from asdlab.errors import ConfigError, DataError

__all__ = ["MahalanobisBackend"]


class MahalanobisBackend(BaseEstimator):
    """Mahalanobis distance to per-domain Gaussians; higher = more anomalous.

    Args:
        shrinkage: "ledoit-wolf", "oas", or a fixed shrinkage in [0, 1] (0 = empirical covariance).
        normalize: L2-normalise embeddings first (for embeddings trained with cosine losses).

    Attributes:
        domains_: (M,) domain labels ("" without domains).
        means_: (M, D) per-domain means.
        precisions_: (M, D, D) inverse shrunk covariances.
    """

    def __init__(self, *, shrinkage: Literal["ledoit-wolf", "oas"] | float = "ledoit-wolf", normalize: bool = False):
        self.shrinkage = shrinkage
        self.normalize = normalize

    def _estimator(self):
        if self.shrinkage == "ledoit-wolf":
            return LedoitWolf()
        if self.shrinkage == "oas":
            return OAS()
        if isinstance(self.shrinkage, (int, float)) and not isinstance(self.shrinkage, bool) and 0 <= self.shrinkage <= 1:
            return ShrunkCovariance(shrinkage=float(self.shrinkage))
        raise ConfigError(f"shrinkage must be 'ledoit-wolf', 'oas' or a number in [0, 1], got {self.shrinkage!r}")

    def _prepare(self, X, dim: int | None = None) -> NDArray[np.float64]:
        X = as_float_matrix(X, "X", dim=dim).astype(np.float64)
        if self.normalize:
            X /= np.maximum(np.linalg.norm(X, axis=1, keepdims=True), np.finfo(np.float64).tiny)
        return X

    def fit(self, X, y=None, *, domains=None) -> MahalanobisBackend:
        """Fit mean and shrunk covariance per domain.

        Raises:
            ConfigError: bad shrinkage.
            DataError: bad X / domains, or a domain with fewer than 2 clips.
        """
        self._estimator()
        X = self._prepare(X)
        names, groups = split_domains(domains, len(X))
        means, precisions = [], []
        for name, rows in zip(names, groups):
            if len(rows) < 2:
                raise DataError(f"domain {str(name)!r} has {len(rows)} clip(s); a covariance needs at least 2")
            estimator = self._estimator().fit(X[rows])
            means.append(estimator.location_)
            precisions.append(estimator.get_precision())
        self.domains_ = names
        self.means_ = np.stack(means)
        self.precisions_ = np.stack(precisions)
        self.n_features_in_ = X.shape[1]
        self.train_embeddings_ = X
        return self

    def score_samples_per_domain(self, X) -> NDArray[np.float64]:
        """Mahalanobis distance (N, M) to each domain's Gaussian.

        Raises:
            NotFittedError: before `fit`.
        """
        check_fitted(self, "precisions_")
        X = self._prepare(X, self.n_features_in_)
        out = np.empty((len(X), len(self.means_)), dtype=np.float64)
        for j, (mean, precision) in enumerate(zip(self.means_, self.precisions_)):
            centred = X - mean
            out[:, j] = np.sqrt(np.maximum(((centred @ precision) * centred).sum(axis=1), 0.0))
        return out

    def score_samples(self, X) -> NDArray[np.float64]:
        """Anomaly scores (N,) float64: min over domains of the Mahalanobis distance."""
        return self.score_samples_per_domain(X).min(axis=1)

    def score_training_samples(self) -> NDArray[np.float64]:
        """Scores of the training clips (in-sample: each clip helped fit its domain's Gaussian)."""
        check_fitted(self, "precisions_")
        return self.score_samples(self.train_embeddings_)
