"""Backends by short name (`knn`, `kmeans`, ...), as configs and the CLI choose them (STYLE.md)."""

from __future__ import annotations

from asdlab.backends.density import DADSKNNBackend, DensityKNNBackend
from asdlab.backends.domain_norm import DomainNormalizedKNNBackend
from asdlab.backends.kmeans import KMeansBackend
from asdlab.backends.knn import KNNBackend
from asdlab.backends.mahalanobis import MahalanobisBackend
from asdlab.backends.smote import SMOTEKNNBackend
from asdlab.errors import ConfigError

__all__ = ["BACKENDS", "available_backends", "make_backend"]

BACKENDS: dict[str, type] = {
    "knn": KNNBackend,
    "kmeans": KMeansBackend,
    "density-knn": DensityKNNBackend,
    "dads-knn": DADSKNNBackend,
    "smote-knn": SMOTEKNNBackend,
    "mahalanobis": MahalanobisBackend,
    "domain-norm-knn": DomainNormalizedKNNBackend,
}


def available_backends() -> list[str]:
    """Registered short names, sorted."""
    return sorted(BACKENDS)


def make_backend(name: str, **params):
    """An unfitted backend from its short name and hyper-parameters.

    Raises:
        ConfigError: unknown name, or a parameter the backend does not take.
    """
    if name not in BACKENDS:
        raise ConfigError(f"unknown backend {name!r}; choose one of {available_backends()}")
    cls = BACKENDS[name]
    accepted = set(cls._get_param_names())
    unknown = sorted(set(params) - accepted)
    if unknown:
        raise ConfigError(f"backend {name!r} takes no parameter(s) {unknown}; it takes {sorted(accepted)}")
    return cls(**params)
