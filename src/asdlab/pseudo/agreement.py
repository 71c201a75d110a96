"""Agreement of pseudo-attributes with the true attributes: ARI, NMI, homogeneity, completeness.

All four come from scikit-learn and are invariant to how clusters are numbered. Homogeneity = each
cluster holds one true attribute; completeness = each true attribute sits in one cluster.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from sklearn import metrics

from asdlab.errors import DataError

__all__ = ["Agreement", "measure_agreement"]


@dataclass(frozen=True)
class Agreement:
    """How well clusters recover the true attributes of one set of clips.

    Attributes:
        ari: adjusted Rand index (1 = identical partitions, ~0 = chance, can be negative).
        nmi: normalised mutual information (arithmetic mean normalisation), 0..1.
        homogeneity: 0..1.
        completeness: 0..1.
        n_clusters: clusters found.
        n_true: distinct true attributes.
        n_clips: clips compared.
    """

    ari: float
    nmi: float
    homogeneity: float
    completeness: float
    n_clusters: int
    n_true: int
    n_clips: int

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for JSON."""
        return asdict(self)


def measure_agreement(true: Sequence[str] | np.ndarray, predicted: Sequence[Any] | np.ndarray) -> Agreement:
    """Compare true attribute strings with cluster labels, clip by clip.

    Args:
        true: (N,) true attribute of each clip.
        predicted: (N,) cluster label (any hashable) of each clip.

    Raises:
        DataError: the two have different lengths, or are empty.
    """
    true = np.asarray(true)
    predicted = np.asarray(predicted)
    if true.shape != predicted.shape or true.ndim != 1:
        raise DataError(f"true attributes {true.shape} and clusters {predicted.shape} must be two (N,) arrays")
    if len(true) == 0:
        raise DataError("no clips to compare")
    homogeneity, completeness, _ = metrics.homogeneity_completeness_v_measure(true, predicted)
    return Agreement(
        ari=float(metrics.adjusted_rand_score(true, predicted)),
        nmi=float(metrics.normalized_mutual_info_score(true, predicted)),
        homogeneity=float(homogeneity),
        completeness=float(completeness),
        n_clusters=int(len(np.unique(predicted))),
        n_true=int(len(np.unique(true))),
        n_clips=int(len(true)),
    )
