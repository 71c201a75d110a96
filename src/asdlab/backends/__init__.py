"""Scikit-learn-style anomaly scorers on embeddings (higher score = more anomalous), nearest-neighbour
search, score normalisation, ensembles and decision thresholds."""

from asdlab.backends.density import DADSKNNBackend, DensityKNNBackend
from asdlab.backends.domain_norm import DomainNormalizedKNNBackend
from asdlab.backends.ensemble import FusionWeights, WeightSearchResult, fuse_scores, official_score_objective, search_weights
from asdlab.backends.kmeans import KMeansBackend
from asdlab.backends.knn import KNNBackend
from asdlab.backends.mahalanobis import MahalanobisBackend
from asdlab.backends.normalize import ScoreNormalizer
from asdlab.backends.registry import BACKENDS, available_backends, make_backend
from asdlab.backends.search import ApproximateIndex, NeighborSearch
from asdlab.backends.smote import SMOTEKNNBackend, interpolate_between, interpolate_neighbors
from asdlab.backends.thresholds import decide, fit_threshold, gamma_threshold, percentile_threshold

__all__ = [
    "KNNBackend",
    "KMeansBackend",
    "DensityKNNBackend",
    "DADSKNNBackend",
    "DomainNormalizedKNNBackend",
    "SMOTEKNNBackend",
    "MahalanobisBackend",
    "NeighborSearch",
    "ApproximateIndex",
    "ScoreNormalizer",
    "FusionWeights",
    "WeightSearchResult",
    "fuse_scores",
    "search_weights",
    "official_score_objective",
    "interpolate_neighbors",
    "interpolate_between",
    "BACKENDS",
    "available_backends",
    "make_backend",
    "fit_threshold",
    "gamma_threshold",
    "percentile_threshold",
    "decide",
]
