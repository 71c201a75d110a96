"""k-means backend: Wilkinghoff's scoring rule (SSL/FeatEx paper, "Method Summary"; ssl-featex-summary.md).

The source-domain normal embeddings are summarised by k-means means (16 in the paper); every
target-domain embedding is kept as a reference of its own. A clip's score is its smallest cosine
distance to the means and the target clips. With cosine, k-means runs on L2-normalised embeddings.
With no more source clips than means (own recordings, cross-validation folds) each source clip is
its own mean, which is the same rule.
"""

from __future__ import annotations

import numpy as np
from sklearn.cluster import KMeans

from asdlab.backends._banks import Bank, BankBackend
from asdlab.backends._validation import check_choice, check_positive_int, split_domains
from asdlab.backends.search import ApproximateIndex, Metric, SearchBackend, as_float_matrix
from asdlab.errors import DataError

__all__ = ["KMeansBackend"]


class KMeansBackend(BankBackend):
    """Distance to k-means means of the source domain, or to the samples of other domains.

    Args:
        n_clusters: means fitted on the source-domain embeddings (paper: 16); capped at the number
            of source clips.
        metric: "cosine" or "euclidean".
        n_neighbors: k per bank (1 = the paper's minimum distance over means and target samples).
        source_domain: label of the domain summarised by means; without domains, all clips are.
        n_init: k-means restarts.
        seed: k-means seed.
        search_backend, index: as in `KNNBackend`.

    Attributes:
        means_: (n_clusters, D) k-means means (unit-norm input space for cosine).
        banks_: the means (as domain `source_domain`) and one bank of samples per other domain.
    """

    def __init__(
        self,
        n_clusters: int = 16,
        metric: Metric = "cosine",
        *,
        n_neighbors: int = 1,
        source_domain: str = "source",
        n_init: int = 10,
        seed: int = 0,
        search_backend: SearchBackend = "auto",
        index: ApproximateIndex | None = None,
    ):
        self.n_clusters = n_clusters
        self.metric = metric
        self.n_neighbors = n_neighbors
        self.source_domain = source_domain
        self.n_init = n_init
        self.seed = seed
        self.search_backend = search_backend
        self.index = index

    def fit(self, X, y=None, *, domains=None) -> KMeansBackend:
        """Fit k-means on the source clips; keep the other domains' clips as references.

        Raises:
            ConfigError: bad hyper-parameters.
            DataError: bad X / domains, no source clip, or a bank smaller than k.
        """
        n_clusters = check_positive_int("n_clusters", self.n_clusters)
        k = check_positive_int("n_neighbors", self.n_neighbors)
        check_positive_int("n_init", self.n_init)
        check_choice("metric", self.metric, ("cosine", "euclidean"))
        X = as_float_matrix(X, "X")
        names, groups = split_domains(domains, len(X))
        if domains is None:
            names = np.array([self.source_domain])
        if self.source_domain not in names:
            raise DataError(f"no clip of the source domain {self.source_domain!r}; domains are {list(map(str, names))}")
        source = groups[list(names).index(self.source_domain)]
        n_clusters = min(n_clusters, len(source))
        S = X[source]
        if self.metric == "cosine":
            S = S / np.maximum(np.linalg.norm(S, axis=1, keepdims=True), np.finfo(np.float32).tiny)
        kmeans = KMeans(n_clusters, n_init=self.n_init, random_state=self.seed).fit(S)
        self.means_ = kmeans.cluster_centers_.astype(np.float32)
        self.banks_ = []
        for name, rows in zip(names, groups):
            if name == self.source_domain:
                refs, parents = self.means_, np.full(n_clusters, -1, dtype=np.int64)
                n_original = 0
            else:
                refs, parents, n_original = X[rows], rows, len(rows)
            if len(refs) < k:
                raise DataError(f"n_neighbors={k} but the bank of domain {str(name)!r} has only {len(refs)} references")
            self.banks_.append(Bank(str(name), self._new_search().fit(refs), parents, n_original))
        self.train_embeddings_ = X
        self.n_features_in_ = X.shape[1]
        self.n_samples_fit_ = len(X)
        return self
