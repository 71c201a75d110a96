"""Per-machine score normalisation fitted on normal training scores (z-score or rank).

Fit on the training clips' scores (leave-one-out scores from `score_training_samples` when the
clips are also references), one set of statistics per group (machine); then scores of several
machines or systems share one scale, as ensembles and cross-machine thresholds need. Both
transforms are strictly increasing within a group, so per-machine AUC and pAUC are unchanged.
"""

from __future__ import annotations

import logging
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from sklearn.base import BaseEstimator

from asdlab.backends._validation import check_choice, check_fitted
from asdlab.errors import DataError

__all__ = ["ScoreNormalizer"]

log = logging.getLogger(__name__)


def _check_scores(scores, name: str = "scores") -> NDArray[np.float64]:
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 1:
        raise DataError(f"{name} must be 1-D (N,), got shape {scores.shape}")
    if not np.isfinite(scores).all():
        raise DataError(f"{name} contains NaN or infinite values")
    return scores


def _check_groups(groups, n: int) -> NDArray[np.str_]:
    if groups is None:
        return np.full(n, "", dtype=np.str_)
    groups = np.asarray(groups).astype(np.str_)
    if groups.shape != (n,):
        raise DataError(f"groups must have one label per score ({n}), got shape {groups.shape}")
    return groups


class ScoreNormalizer(BaseEstimator):
    """Normalise anomaly scores per group from the group's normal training scores.

    Methods:
        "zscore": (s - mean) / std of the training scores (std 0 -> 1).
        "rank": the training scores' mid-rank position in (0, 1), linearly interpolated between
            them and extended linearly beyond them with slope 1 / (max - min), so scores above
            every training score keep their order (a plain empirical CDF would tie them at 1).

    Args:
        method: "zscore" or "rank".
    """

    def __init__(self, method: Literal["zscore", "rank"] = "zscore"):
        self.method = method

    def fit(self, scores, y=None, *, groups=None) -> ScoreNormalizer:
        """Learn per-group statistics.

        Args:
            scores: (N,) training (normal) scores.
            y: ignored.
            groups: (N,) group label per score (e.g. machine type), or None for one group.

        Raises:
            ConfigError: unknown method.
            DataError: bad scores / groups.
        """
        check_choice("method", self.method, ("zscore", "rank"))
        scores = _check_scores(scores)
        groups = _check_groups(groups, len(scores))
        self.stats_ = {}
        for group in np.unique(groups):
            s = scores[groups == group]
            if self.method == "zscore":
                std = float(s.std())
                if std == 0.0:
                    log.warning("ScoreNormalizer: training scores of group %r are constant; std set to 1", str(group))
                self.stats_[str(group)] = (float(s.mean()), std if std > 0 else 1.0)
            else:
                values, counts = np.unique(s, return_counts=True)
                # Mid-rank of each distinct value: (number below + half its ties) / N.
                ranks = (np.cumsum(counts) - counts / 2.0) / len(s)
                self.stats_[str(group)] = (values, ranks)
        self.groups_ = np.array(sorted(self.stats_), dtype=np.str_)
        return self

    def transform(self, scores, *, groups=None) -> NDArray[np.float64]:
        """Normalised scores (N,) float64.

        Raises:
            NotFittedError: before `fit`.
            DataError: bad scores, or a group not seen in `fit`.
        """
        check_fitted(self, "stats_")
        scores = _check_scores(scores)
        groups = _check_groups(groups, len(scores))
        out = np.empty_like(scores)
        for group in np.unique(groups):
            if str(group) not in self.stats_:
                raise DataError(f"group {str(group)!r} was not in the scores the normaliser was fitted on")
            mask = groups == group
            out[mask] = self._transform_group(scores[mask], self.stats_[str(group)])
        return out

    def _transform_group(self, s: NDArray[np.float64], stats) -> NDArray[np.float64]:
        if self.method == "zscore":
            mean, std = stats
            return (s - mean) / std
        values, ranks = stats
        if len(values) == 1:
            return ranks[0] + (s - values[0])
        slope = 1.0 / (values[-1] - values[0])
        out = np.interp(s, values, ranks)
        below, above = s < values[0], s > values[-1]
        out[below] = ranks[0] - (values[0] - s[below]) * slope
        out[above] = ranks[-1] + (s[above] - values[-1]) * slope
        return out

    def fit_transform(self, scores, y=None, *, groups=None) -> NDArray[np.float64]:
        """`fit` then `transform` on the same scores."""
        return self.fit(scores, groups=groups).transform(scores, groups=groups)
