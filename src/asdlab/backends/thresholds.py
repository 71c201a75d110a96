"""Decision thresholds from normal training scores, and 0/1 decisions (DCASE.md "Output files").

"gamma" is the official baseline's rule (nttcslab/dcase2023_task2_baseline_ae,
`BaseModel.fit_anomaly_score_distribution` / `calc_decision_threshold`): `scipy.stats.gamma.fit`
with all three parameters free, then `gamma.ppf(q=0.9, a, loc, scale)`. On tiny-scale scores
(cosine kNN distances ~1e-3 to 1e-5) scipy's raw fit can land hundreds of deviations away; a
threshold outside what any distribution allows (Cantelli: a 0.9 quantile lies within
[mean - std/3, mean + 3 std]; twice that slack here) is then refitted on standardised scores and
mapped back, which is the same maximum-likelihood fit (Gamma with free loc and scale is closed
under affine maps) with a well-conditioned start. "percentile" is the
90th percentile of the training scores, `np.percentile(scores, 90)` (linear interpolation).
"""

from __future__ import annotations

import warnings
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats

from asdlab.errors import ConfigError, DataError

__all__ = ["ThresholdMethod", "DECISION_QUANTILE", "gamma_threshold", "percentile_threshold", "fit_threshold",
           "decide"]

ThresholdMethod = Literal["gamma", "percentile"]

DECISION_QUANTILE = 0.9  # the baseline's --decision_threshold default


def _train_scores(scores: ArrayLike, quantile: float) -> NDArray[np.float64]:
    if not 0 < quantile < 1:
        raise ConfigError(f"quantile must be in (0, 1), got {quantile!r}")
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 1 or s.size < 2:
        raise DataError(f"train_scores must be a 1-D array of at least 2 scores, got shape {s.shape}")
    bad = ~np.isfinite(s)
    if bad.any():
        raise DataError(f"train_scores: {int(bad.sum())} of {s.size} scores are NaN or infinite")
    return s


def gamma_threshold(train_scores: ArrayLike, *, quantile: float = DECISION_QUANTILE) -> float:
    """The baseline's threshold: the `quantile` of a Gamma distribution fitted to normal scores.

    Args:
        train_scores: shape (N,), scores of normal training clips (higher = more anomalous).
        quantile: the Gamma quantile (0.9 in the baseline).

    Returns:
        `gamma.ppf(quantile, *gamma.fit(train_scores))`.

    Raises:
        DataError: fewer than 2 scores, NaN/infinite scores, identical scores, or a failed fit.
    """
    s = _train_scores(train_scores, quantile)
    if np.ptp(s) == 0:
        raise DataError(
            f"train_scores: all {s.size} scores equal {s[0]!r}; a Gamma distribution cannot be fitted"
        )
    with warnings.catch_warnings():
        # scipy warns when its optimiser wanders through invalid shapes; the result is checked below.
        warnings.simplefilter("ignore", RuntimeWarning)
        shape, loc, scale = stats.gamma.fit(s)
        threshold = float(stats.gamma.ppf(q=quantile, a=shape, loc=loc, scale=scale))
        mean, std = float(s.mean()), float(s.std())
        if not mean - 2 * std / 3 <= threshold <= mean + 6 * std:
            shape, loc, scale = stats.gamma.fit((s - mean) / std)
            threshold = mean + std * float(stats.gamma.ppf(q=quantile, a=shape, loc=loc, scale=scale))
    if not np.isfinite(threshold):
        raise DataError(
            f"train_scores: the Gamma fit failed (a={shape!r}, loc={loc!r}, scale={scale!r}); "
            "use method='percentile'"
        )
    return threshold


def percentile_threshold(train_scores: ArrayLike, *, quantile: float = DECISION_QUANTILE) -> float:
    """The `quantile` of the normal training scores, linearly interpolated (`np.percentile(s, 90)`).

    Raises:
        DataError: fewer than 2 scores or NaN/infinite scores.
    """
    s = _train_scores(train_scores, quantile)
    # np.quantile(s, 0.9) is np.percentile(s, 90) exactly; 100 * 0.9 would be 90.00000000000001.
    return float(np.quantile(s, quantile))


def fit_threshold(
    train_scores: ArrayLike, *, method: ThresholdMethod = "gamma", quantile: float = DECISION_QUANTILE
) -> float:
    """A decision threshold from normal training scores by the chosen method.

    Args:
        train_scores: shape (N,), scores of normal training clips.
        method: "gamma" (the official baseline) or "percentile".
        quantile: which quantile (0.9 in DCASE).

    Returns:
        The threshold; clips scoring above it are decided anomalous.

    Raises:
        ConfigError: unknown method or quantile outside (0, 1).
        DataError: unusable training scores.
    """
    if method == "gamma":
        return gamma_threshold(train_scores, quantile=quantile)
    if method == "percentile":
        return percentile_threshold(train_scores, quantile=quantile)
    raise ConfigError(f"method must be 'gamma' or 'percentile', got {method!r}")


def decide(scores: ArrayLike, threshold: float) -> NDArray[np.int64]:
    """0/1 decisions, 1 = anomaly where score > threshold (the baseline's strict inequality).

    Args:
        scores: shape (N,), anomaly scores.
        threshold: from `fit_threshold`.

    Returns:
        Shape (N,) int64 array of 0 and 1.

    Raises:
        DataError: a NaN score or threshold (it would silently be decided normal).
    """
    s = np.asarray(scores, dtype=np.float64)
    if np.isnan(threshold) or np.isnan(s).any():
        raise DataError(f"decide: {int(np.isnan(s).sum())} NaN scores, threshold {threshold!r}")
    return (s > float(threshold)).astype(np.int64)
