"""Argument checks shared by the backends: fitted state, hyper-parameters, domain labels."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from asdlab.errors import ConfigError, DataError, NotFittedError

__all__: list[str] = []


def check_fitted(estimator, attribute: str) -> None:
    """Raise NotFittedError unless `estimator` has the fitted `attribute`."""
    if not hasattr(estimator, attribute):
        name = type(estimator).__name__
        raise NotFittedError(f"{name} is not fitted: call {name}.fit(X) before scoring")


def check_choice(name: str, value, choices: Sequence) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {tuple(choices)}, got {value!r}")


def check_positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def split_domains(domains, n: int) -> tuple[NDArray[np.str_], list[NDArray[np.int64]]]:
    """Group row indices by domain label.

    Args:
        domains: (N,) labels (e.g. "source", "target") or None for one bank.
        n: number of rows.

    Returns:
        sorted unique labels (a single "" when `domains` is None) and, for each, its row indices.
    """
    if domains is None:
        return np.array([""], dtype=np.str_), [np.arange(n)]
    labels = np.asarray(domains).astype(np.str_)
    if labels.shape != (n,):
        raise DataError(f"domains must have one label per row of X ({n}), got shape {labels.shape}")
    names, inverse = np.unique(labels, return_inverse=True)
    return names, [np.flatnonzero(inverse == i) for i in range(len(names))]


def check_non_negative_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ConfigError(f"{name} must be a non-negative integer, got {value!r}")
    return int(value)
