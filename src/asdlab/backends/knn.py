"""kNN anomaly scores computed per domain (the paper's backend, DESIGN.md "Scoring").

The normal training embeddings are split by domain (source / target), one reference bank each.
A clip's score in one domain is its mean distance to the k nearest references of that domain;
its anomaly score is the minimum over domains, since a normal clip is close to normal clips of
its own domain and the target domain has only ~10 clips. Higher = more anomalous.
"""

from __future__ import annotations

from asdlab.backends._banks import Bank, BankBackend
from asdlab.backends._validation import check_choice, check_positive_int, split_domains
from asdlab.backends.search import ApproximateIndex, Metric, SearchBackend, as_float_matrix
from asdlab.errors import DataError

__all__ = ["KNNBackend"]


class KNNBackend(BankBackend):
    """Mean distance to the k nearest normal references, minimum over domains.

    Args:
        n_neighbors: k (the paper uses 1).
        metric: "cosine" (1 - cos) or "euclidean".
        search_backend: "auto", "faiss" or "numpy" (identical results).
        index: None for exact search, or an `ApproximateIndex` for very large banks.

    Attributes:
        banks_: one reference bank per domain; `domains_` lists their labels ("" without domains).
        n_features_in_: D.
        n_samples_fit_: N.
    """

    def __init__(
        self,
        n_neighbors: int = 1,
        metric: Metric = "cosine",
        *,
        search_backend: SearchBackend = "auto",
        index: ApproximateIndex | None = None,
    ):
        self.n_neighbors = n_neighbors
        self.metric = metric
        self.search_backend = search_backend
        self.index = index

    def fit(self, X, y=None, *, domains=None) -> KNNBackend:
        """Build one reference bank per domain.

        Args:
            X: (N, D) embeddings of normal training clips.
            y: ignored.
            domains: (N,) domain label per clip, or None for a single bank.

        Raises:
            ConfigError: bad hyper-parameters.
            DataError: bad X / domains, or a domain with fewer than k clips.
        """
        k = check_positive_int("n_neighbors", self.n_neighbors)
        check_choice("metric", self.metric, ("cosine", "euclidean"))
        X = as_float_matrix(X, "X")
        names, groups = split_domains(domains, len(X))
        for name, rows in zip(names, groups):
            if len(rows) < k:
                raise DataError(f"n_neighbors={k} but domain {str(name)!r} has only {len(rows)} training clips")
        self.banks_ = [Bank(str(name), self._new_search().fit(X[rows]), rows, len(rows)) for name, rows in zip(names, groups)]
        self.n_features_in_ = X.shape[1]
        self.n_samples_fit_ = len(X)
        return self
