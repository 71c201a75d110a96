"""kNN with per-domain score standardisation from the training clips' leave-one-out distances.

DCASE systems standardise anomaly scores per domain because the target domain's few references
make every new target normal look far away (e.g. the DCASE 2023/2024 "domain-wise normalisation"
of kNN scores). Per domain bank B with training clips C_B (k = `n_neighbors`):
    d_B(q)  = mean distance from q to its k nearest clips of C_B
    l_B(x)  = d_B(x) with x itself left out, for every x in C_B       (leave-one-out)
    mu_B, sigma_B = mean and sample std of l_B over C_B;  sigma_B >= `min_std` * mu_B
    "zscore": s_B(q) = (d_B(q) - mu_B) / sigma_B        "ratio": s_B(q) = d_B(q) / mu_B
    s(q)    = min over B of s_B(q)
so a score says how unusual q's distance is for a clip of that domain, in every domain alike.
l_B(x) is the distance of a normal the bank has not seen to the rest of the bank, so (mu_B, sigma_B)
describe the test normals of domain B (with one clip fewer in the bank). The floor on sigma_B keeps a
2-3 clip domain from an almost zero spread (two clips always have equal leave-one-out distances).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import NDArray

from asdlab.backends._banks import score_bank
from asdlab.backends._validation import check_choice
from asdlab.backends.knn import KNNBackend
from asdlab.backends.search import ApproximateIndex, Metric, SearchBackend
from asdlab.errors import ConfigError, DataError

__all__ = ["DomainNormalizedKNNBackend"]

Standardization = Literal["zscore", "ratio"]


class DomainNormalizedKNNBackend(KNNBackend):
    """kNN distances standardised per domain by the domain's leave-one-out statistics, min over domains.

    Args:
        n_neighbors: k.
        metric: "cosine" or "euclidean".
        method: "zscore" ((d - mu) / sigma) or "ratio" (d / mu); see the module docstring.
        min_std: floor of sigma as a fraction of mu (zscore only).
        search_backend, index: as in `KNNBackend`.

    Attributes:
        banks_: one reference bank per domain (`domains_`).
        loo_mean_ / loo_std_: (M,) mu_B and the floored sigma_B per bank, in `domains_` order.
    """

    def __init__(
        self,
        n_neighbors: int = 1,
        metric: Metric = "cosine",
        *,
        method: Standardization = "zscore",
        min_std: float = 0.1,
        search_backend: SearchBackend = "auto",
        index: ApproximateIndex | None = None,
    ):
        self.n_neighbors = n_neighbors
        self.metric = metric
        self.method = method
        self.min_std = min_std
        self.search_backend = search_backend
        self.index = index

    def fit(self, X, y=None, *, domains=None) -> DomainNormalizedKNNBackend:
        """One bank per domain and its leave-one-out distance statistics.

        Raises:
            ConfigError: bad hyper-parameters.
            DataError: bad X / domains, a domain with fewer than k clips or with a single clip.
        """
        check_choice("method", self.method, ("zscore", "ratio"))
        if isinstance(self.min_std, bool) or not isinstance(self.min_std, (int, float)) or not self.min_std >= 0:
            raise ConfigError(f"min_std must be a number >= 0, got {self.min_std!r}")
        for name in ("loo_mean_", "loo_std_"):
            self.__dict__.pop(name, None)  # `_banks_scores` below must give raw distances while fitting
        super().fit(X, domains=domains)
        means, stds = [], []
        for bank in self.banks_:
            if len(bank) < 2:
                raise DataError(f"domain {bank.name!r} has a single training clip: its leave-one-out distance "
                                "is undefined")
            loo = score_bank(bank, bank.search.references_, int(self.n_neighbors), bank.parents)
            mean = float(loo.mean())
            std = float(loo.std(ddof=1))
            means.append(max(mean, np.finfo(np.float64).tiny))
            stds.append(max(std, float(self.min_std) * mean, np.finfo(np.float64).tiny))
        self.loo_mean_ = np.array(means)
        self.loo_std_ = np.array(stds)
        return self

    def _banks_scores(self, X, exclude: NDArray[np.int64] | None = None) -> NDArray[np.float64]:
        raw = super()._banks_scores(X, exclude)  # (N, M) distances
        if not hasattr(self, "loo_mean_"):
            return raw
        if self.method == "ratio":
            return raw / self.loo_mean_
        return (raw - self.loo_mean_) / self.loo_std_
