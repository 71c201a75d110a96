"""Jackknife confidence intervals over clips, as the DCASE 2023-2025 evaluators print them.

Follows `jackknife_estimate` in nttcslab/dcase2023_task2_evaluator (identical in the 2024 one),
which implements Mesaros et al., TASLP 2019, sec. IV. Leave-one-out AUC and pAUC are computed
exactly in O(N log N) / O(N * K') instead of re-running scikit-learn N times.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats
from sklearn.metrics import roc_auc_score

from asdlab.errors import EvaluationError

__all__ = [
    "JackknifeVariance",
    "JackknifeResult",
    "JackknifeCI",
    "jackknife",
    "jackknife_from_leave_one_out",
    "leave_one_out_auc",
    "leave_one_out_pauc",
    "jackknife_auc_pauc",
]

# "evaluator": the organisers' step (6), sqrt(sum (theta_i - mean_i)^2 / (N (N-1))) over the
# leave-one-out values; it is N-1 times narrower than the textbook interval. "pseudo-values":
# the same formula over the pseudo-values (Mesaros et al. 2019, eq. for sigma_jack).
JackknifeVariance = Literal["evaluator", "pseudo-values"]


@dataclass(frozen=True)
class JackknifeResult:
    """One statistic with its jackknife estimate and confidence half-width.

    Attributes:
        value: the statistic on all N clips (the evaluator's theta_hat).
        estimate: the bias-corrected jackknife estimate (mean of pseudo-values).
        half_width: t-quantile times the jackknife standard error; the interval is value ± half_width.
        n: number of clips.
        confidence: the interval's coverage, 0.95 in the evaluator.
    """

    value: float
    estimate: float
    half_width: float
    n: int
    confidence: float = 0.95


@dataclass(frozen=True)
class JackknifeCI:
    """The evaluator's "official score ci95": jackknife over all clips pooled across machines.

    The evaluator runs the jackknife on the pooled AUC and on the pooled pAUC and reports the mean
    of the two half-widths as the official score's 95 % confidence half-width.
    """

    auc: JackknifeResult
    pauc: JackknifeResult

    @property
    def half_width(self) -> float:
        """Mean of the AUC and pAUC half-widths (the evaluator's "official score ci95")."""
        return float(np.mean([self.auc.half_width, self.pauc.half_width]))


def jackknife_from_leave_one_out(
    value: float,
    leave_one_out: ArrayLike,
    *,
    confidence: float = 0.95,
    variance: JackknifeVariance = "evaluator",
) -> JackknifeResult:
    """Jackknife estimate and interval from the statistic and its N leave-one-out values.

    Steps (1)-(7) of the evaluator: pseudo-values N*theta - (N-1)*theta_i, their mean, a
    standard error (see `JackknifeVariance`) and a two-sided Student-t quantile with N-1 dof.
    """
    thetas = np.asarray(leave_one_out, dtype=np.float64)
    n = thetas.size
    if n < 2:
        raise EvaluationError(f"the jackknife needs at least 2 clips, got {n}")
    pseudo = n * value - (n - 1) * thetas
    estimate = np.mean(pseudo)
    if variance == "evaluator":
        sigma = np.sqrt(np.sum((thetas - np.mean(thetas)) ** 2) / (n * (n - 1)))
    elif variance == "pseudo-values":
        sigma = np.sqrt(np.sum((pseudo - estimate) ** 2) / (n * (n - 1)))
    else:
        raise EvaluationError(f"variance must be 'evaluator' or 'pseudo-values', got {variance!r}")
    t_crit = np.abs(stats.t.ppf((1 - confidence) / 2, n - 1))
    return JackknifeResult(float(value), float(estimate), float(t_crit * sigma), n, confidence)


def jackknife(
    statistic: Callable[..., float],
    *arrays: ArrayLike,
    confidence: float = 0.95,
    variance: JackknifeVariance = "evaluator",
) -> JackknifeResult:
    """Jackknife a statistic of paired arrays by recomputing it N times (the evaluator's way).

    Args:
        statistic: function of the arrays, e.g. `sklearn.metrics.roc_auc_score`.
        *arrays: equal-length arrays, shape (N,); clip i is removed from all of them together.
        confidence: coverage of the interval.
        variance: which standard error (see `JackknifeVariance`).

    Returns:
        The statistic, its jackknife estimate and half-width. O(N) calls; for AUC and pAUC
        prefer `jackknife_auc_pauc`.
    """
    columns = [np.asarray(a) for a in arrays]
    n = len(columns[0])
    if any(len(c) != n for c in columns):
        raise EvaluationError(f"jackknife arrays differ in length: {[len(c) for c in columns]}")
    keep = np.ones(n, dtype=bool)
    thetas = np.empty(n)
    for i in range(n):
        keep[i] = False
        thetas[i] = statistic(*(c[keep] for c in columns))
        keep[i] = True
    return jackknife_from_leave_one_out(
        statistic(*columns), thetas, confidence=confidence, variance=variance
    )


def _binary(y_true: ArrayLike, y_score: ArrayLike) -> tuple[NDArray[np.bool_], NDArray[np.float64]]:
    y = np.asarray(y_true)
    s = np.asarray(y_score, dtype=np.float64)
    if y.ndim != 1 or y.shape != s.shape:
        raise EvaluationError(f"labels {y.shape} and scores {s.shape} must be equal-length 1-D arrays")
    if not np.all(np.isfinite(s)):
        raise EvaluationError(f"{int(np.sum(~np.isfinite(s)))} scores are NaN or infinite")
    positive = y == 1
    if not np.all(positive | (y == 0)):
        raise EvaluationError("labels must be 0 (normal) or 1 (anomaly)")
    n_pos = int(positive.sum())
    if n_pos < 2 or positive.size - n_pos < 2:
        raise EvaluationError(
            f"leave-one-out needs at least 2 normal and 2 anomalous clips, got "
            f"{positive.size - n_pos} and {n_pos}"
        )
    return positive, s


def leave_one_out_auc(y_true: ArrayLike, y_score: ArrayLike) -> NDArray[np.float64]:
    """ROC AUC with clip i removed, for every i; shape (N,).

    AUC is the Mann-Whitney statistic (ties count one half), which is exactly the trapezoidal
    area scikit-learn computes, so removing a clip only subtracts that clip's pair credits.
    """
    positive, s = _binary(y_true, y_score)
    pos, neg = s[positive], s[~positive]
    n_pos, n_neg = pos.size, neg.size
    neg_sorted, pos_sorted = np.sort(neg), np.sort(pos)
    below = np.searchsorted(neg_sorted, pos, "left")
    tied = np.searchsorted(neg_sorted, pos, "right") - below
    pos_credit = below + 0.5 * tied  # normals each anomaly outranks
    below = np.searchsorted(pos_sorted, neg, "left")
    tied = np.searchsorted(pos_sorted, neg, "right") - below
    neg_credit = (n_pos - below - tied) + 0.5 * tied  # anomalies outranking each normal
    total = pos_credit.sum()
    out = np.empty(s.size)
    out[positive] = (total - pos_credit) / ((n_pos - 1) * n_neg)
    out[~positive] = (total - neg_credit) / (n_pos * (n_neg - 1))
    return out


def _mcclish_pauc(
    fps: NDArray[np.float64], tps: NDArray[np.float64], n_neg: int, n_pos: int, max_fpr: float
) -> float:
    """McClish-standardised partial AUC from cumulative FP/TP counts at descending thresholds.

    Mirrors sklearn's `_binary_roc_auc_score`: trapezoids up to the last point with
    FPR <= max_fpr, one point interpolated at max_fpr, then 0.5 (1 + (A - min) / (max - min)).
    """
    x = np.concatenate(([0.0], fps / n_neg))
    y = np.concatenate(([0.0], tps / n_pos))
    x0, x1, y0, y1 = x[:-1], x[1:], y[:-1], y[1:]
    full = x1 <= max_fpr
    area = float(np.sum((x1[full] - x0[full]) * (y0[full] + y1[full]))) / 2
    crossing = np.flatnonzero((x0 < max_fpr) & (x1 > max_fpr))  # at most one: x is non-decreasing
    if crossing.size:
        i = crossing[0]
        y_at = y0[i] + (y1[i] - y0[i]) * (max_fpr - x0[i]) / (x1[i] - x0[i])
        area += (max_fpr - x0[i]) * (y0[i] + y_at) / 2
    min_area = 0.5 * max_fpr**2
    return 0.5 * (1 + (area - min_area) / (max_fpr - min_area))


def leave_one_out_pauc(y_true: ArrayLike, y_score: ArrayLike, *, max_fpr: float = 0.1) -> NDArray[np.float64]:
    """McClish pAUC (as `roc_auc_score(..., max_fpr=)`) with clip i removed, for every i; shape (N,).

    Removing a clip lowers the cumulative FP or TP count from its threshold on, so each distinct
    (score, label) pair is recomputed once, on the ROC prefix that can reach FPR = max_fpr.
    """
    positive, s = _binary(y_true, y_score)
    if not 0 < max_fpr < 1:
        raise EvaluationError(f"max_fpr must be in (0, 1), got {max_fpr}")
    n_pos = int(positive.sum())
    n_neg = s.size - n_pos
    _, group = np.unique(-s, return_inverse=True)  # group 0 = highest score = first threshold
    group = group.ravel()
    tps = np.cumsum(np.bincount(group, weights=positive.astype(np.float64)))
    fps = np.cumsum(np.bincount(group, weights=(~positive).astype(np.float64)))
    # Any point with FP > max_fpr * n_neg + 2 stays beyond max_fpr after one removal
    # ((FP - 1) / (n_neg - 1) > max_fpr), so the first such point closes the prefix needed.
    beyond = np.flatnonzero(fps > max_fpr * n_neg + 2)
    keep = int(beyond[0]) + 1 if beyond.size else fps.size
    fps, tps = fps[:keep], tps[:keep]

    key = group * 2 + positive
    unique_keys, which = np.unique(key, return_inverse=True)
    values = np.empty(unique_keys.size)
    for j, k in enumerate(unique_keys):
        start, is_anomaly = divmod(int(k), 2)
        if is_anomaly:
            shifted = tps.copy()
            shifted[start:] -= 1
            values[j] = _mcclish_pauc(fps, shifted, n_neg, n_pos - 1, max_fpr)
        else:
            shifted = fps.copy()
            shifted[start:] -= 1
            values[j] = _mcclish_pauc(shifted, tps, n_neg - 1, n_pos, max_fpr)
    return values[which.ravel()]


def jackknife_auc_pauc(
    y_true: ArrayLike,
    y_score: ArrayLike,
    *,
    max_fpr: float = 0.1,
    confidence: float = 0.95,
    variance: JackknifeVariance = "evaluator",
) -> JackknifeCI:
    """The evaluator's confidence interval: jackknife of pooled AUC and pooled pAUC over all clips.

    Args:
        y_true: shape (N,), 1 = anomaly, all machines and sections concatenated.
        y_score: shape (N,), higher = more anomalous.
        max_fpr: pAUC's false-positive-rate limit (0.1 in DCASE).
        confidence: coverage of the interval (0.95 in the evaluator).
        variance: "evaluator" reproduces the organisers' numbers; "pseudo-values" is the
            textbook jackknife interval, about N-1 times wider.

    Returns:
        Both jackknife results; `half_width` is the evaluator's "official score ci95".

    Raises:
        EvaluationError: fewer than 2 normal or 2 anomalous clips, NaN scores, bad labels.
    """
    positive, s = _binary(y_true, y_score)
    y = positive.astype(np.int64)
    auc = jackknife_from_leave_one_out(
        float(roc_auc_score(y, s)), leave_one_out_auc(y, s), confidence=confidence, variance=variance
    )
    pauc = jackknife_from_leave_one_out(
        float(roc_auc_score(y, s, max_fpr=max_fpr)),
        leave_one_out_pauc(y, s, max_fpr=max_fpr),
        confidence=confidence,
        variance=variance,
    )
    return JackknifeCI(auc=auc, pauc=pauc)
