"""Score fusion of several systems and the adaptive weight search (ensemble report, "ACP").

Systems' scores are normalised first (`ScoreNormalizer`, per machine), then fused by a weighted
mean sum_s w_s x_s / sum_s w_s. Adaptive Combination Perturbation (report sec. 2): start from
uniform weights; at step t draw w' = w_best + step * decay^t * N(0, I), clip at `min_weight`,
renormalise to sum 1 (the report's Table 2 weights sum to 1 with a 0.001 floor), and keep w' if the
objective of the fused scores improves. `search_weights` returns frozen `FusionWeights`, so the
weights tuned on one dataset (development) are applied unchanged to another (evaluation).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from asdlab.backends._validation import check_non_negative_int
from asdlab.errors import ConfigError, DataError

__all__ = ["FusionWeights", "WeightSearchResult", "fuse_scores", "search_weights", "official_score_objective"]

Objective = Callable[[NDArray[np.float64]], float]


def _stack(scores: ArrayLike | Mapping[str, ArrayLike], names: Sequence[str] | None) -> tuple[NDArray[np.float64], tuple[str, ...]]:
    """(S, N) float64 scores and their system names, from an array or a {name: (N,)} mapping."""
    if isinstance(scores, Mapping):
        order = tuple(names) if names is not None else tuple(scores)
        missing = [n for n in order if n not in scores]
        if missing:
            raise DataError(f"no scores for systems {missing}; got {sorted(scores)}")
        matrix = np.stack([np.asarray(scores[n], dtype=np.float64) for n in order]) if order else np.empty((0, 0))
    else:
        matrix = np.asarray(scores, dtype=np.float64)
        order = tuple(names) if names is not None else tuple(f"system{i}" for i in range(len(matrix)))
    if matrix.ndim != 2 or matrix.shape[0] == 0:
        raise DataError(f"scores must be (systems, clips) with at least one system, got shape {matrix.shape}")
    if len(order) != matrix.shape[0]:
        raise DataError(f"{len(order)} system names for {matrix.shape[0]} score rows")
    if not np.isfinite(matrix).all():
        raise DataError("scores contain NaN or infinite values")
    return matrix, order


@dataclass(frozen=True)
class FusionWeights:
    """Frozen fusion weights, one per named system.

    Attributes:
        names: system names, in weight order.
        weights: non-negative weights (need not sum to 1; fusion divides by their sum).
    """

    names: tuple[str, ...]
    weights: tuple[float, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", tuple(map(str, self.names)))
        object.__setattr__(self, "weights", tuple(map(float, self.weights)))
        if len(self.names) != len(self.weights) or not self.names:
            raise ConfigError(f"{len(self.names)} names for {len(self.weights)} weights")
        if len(set(self.names)) != len(self.names):
            raise ConfigError(f"duplicated system names: {self.names}")
        w = np.asarray(self.weights)
        if not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
            raise ConfigError(f"weights must be finite, non-negative and not all zero, got {self.weights}")

    @classmethod
    def uniform(cls, names: Sequence[str]) -> FusionWeights:
        """Equal weights (the plain mean)."""
        return cls(tuple(names), tuple(1.0 / len(names) for _ in names))

    @classmethod
    def from_dict(cls, weights: Mapping[str, float]) -> FusionWeights:
        """From {system name: weight}, e.g. read back from JSON."""
        return cls(tuple(weights), tuple(weights.values()))

    def as_dict(self) -> dict[str, float]:
        """{system name: weight}, for JSON."""
        return dict(zip(self.names, self.weights))

    def apply(self, scores: ArrayLike | Mapping[str, ArrayLike]) -> NDArray[np.float64]:
        """Fuse scores with these weights.

        Args:
            scores: (S, N) rows in `names` order, or {name: (N,)} (extra systems are ignored).

        Returns:
            (N,) float64 weighted mean.

        Raises:
            DataError: missing systems, wrong shape, non-finite scores.
        """
        matrix, _ = _stack(scores, self.names)
        w = np.asarray(self.weights)
        return w @ matrix / w.sum()


def fuse_scores(scores: ArrayLike | Mapping[str, ArrayLike], weights: Sequence[float] | None = None) -> NDArray[np.float64]:
    """Mean (weights None) or weighted mean of several systems' normalised scores.

    Args:
        scores: (S, N) array or {name: (N,)}.
        weights: (S,) non-negative weights in the same order, or None.

    Returns:
        (N,) float64.
    """
    matrix, names = _stack(scores, None)
    fusion = FusionWeights.uniform(names) if weights is None else FusionWeights(names, tuple(weights))
    return fusion.apply(matrix)


@dataclass(frozen=True)
class WeightSearchResult:
    """Outcome of `search_weights`.

    Attributes:
        weights: the best weights found (sum 1).
        objective: objective value of the fused scores with those weights.
        initial_objective: objective value with the starting weights.
        history: (n_iter + 1,) best objective value after each step (step 0 = start).
    """

    weights: FusionWeights
    objective: float
    initial_objective: float
    history: NDArray[np.float64]


def search_weights(
    scores: ArrayLike | Mapping[str, ArrayLike],
    objective: Objective,
    *,
    names: Sequence[str] | None = None,
    n_iter: int = 200,
    step: float = 0.1,
    decay: float = 0.98,
    min_weight: float = 1e-3,
    init: Sequence[float] | None = None,
    seed: int | np.random.Generator | None = 0,
) -> WeightSearchResult:
    """Adaptive Combination Perturbation: random search of fusion weights maximising `objective`.

    Args:
        scores: (S, N) normalised scores of S systems on a labelled set, or {name: (N,)}.
        objective: fused scores (N,) -> value to maximise (e.g. `official_score_objective(...)`).
        names: system names (for an array; default "system0", ...).
        n_iter: perturbation steps.
        step: standard deviation of the first perturbation (weights sum to 1).
        decay: factor applied to the perturbation size at each step, in (0, 1].
        min_weight: floor of every weight before renormalising (keeps every system in play).
        init: starting weights (default uniform).
        seed: seed or Generator of the perturbations.

    Returns:
        `WeightSearchResult`; `result.weights.apply(other_scores)` fuses another dataset.

    Raises:
        ConfigError: bad search parameters.
        DataError: bad scores.
    """
    matrix, order = _stack(scores, names)
    n_iter = check_non_negative_int("n_iter", n_iter)
    if not step > 0 or not 0 < decay <= 1:
        raise ConfigError(f"need step > 0 and 0 < decay <= 1, got step={step!r}, decay={decay!r}")
    if not 0 <= min_weight < 1 / len(order):
        raise ConfigError(f"min_weight must be in [0, 1/{len(order)}), got {min_weight!r}")
    rng = np.random.default_rng(seed)

    def project(w: NDArray[np.float64]) -> NDArray[np.float64]:
        w = np.maximum(w, min_weight)
        return w / w.sum()

    best = project(np.full(len(order), 1.0) if init is None else np.asarray(FusionWeights(order, tuple(init)).weights))
    best_value = initial = float(objective(best @ matrix))
    history = np.empty(n_iter + 1)
    history[0] = best_value
    for t in range(n_iter):
        candidate = project(best + step * decay**t * rng.standard_normal(len(order)))
        value = float(objective(candidate @ matrix))
        if value > best_value:
            best, best_value = candidate, value
        history[t + 1] = best_value
    return WeightSearchResult(FusionWeights(order, tuple(best)), best_value, initial, history)


def official_score_objective(
    y_true: ArrayLike,
    machines: ArrayLike,
    domains: ArrayLike,
    *,
    sections: ArrayLike | None = None,
    rule: Literal["dcase2020", "dcase2021", "dcase2023"] = "dcase2023",
) -> Objective:
    """Objective = the official DCASE score of fused scores on a labelled set.

    Args:
        y_true: (N,) 1 = anomaly, 0 = normal.
        machines: (N,) machine type per clip.
        domains: (N,) "source"/"target" or 0/1 per clip.
        sections: (N,) section per clip (default one section "00" per machine).
        rule: the metric rule, as in `asdlab.metrics.dcase.official_score`.

    Returns:
        callable (N,) fused scores -> official score (higher is better).
    """
    # metrics sits above backends in the pipeline: imported here, only when this helper is used.
    from asdlab.metrics.dcase import evaluate_section, official_score

    y = np.asarray(y_true)
    machines = np.asarray(machines).astype(np.str_)
    d = np.asarray(domains)
    d = (d.astype(np.str_) == "target").astype(np.int64) if d.dtype.kind in "US" else d.astype(np.int64)
    sec = np.full(len(y), "00") if sections is None else np.asarray(sections).astype(np.str_)
    groups = [(m, s, np.flatnonzero((machines == m) & (sec == s))) for m, s in sorted(set(zip(machines, sec)))]

    def objective(fused: NDArray[np.float64]) -> float:
        rows = [evaluate_section(y[i], fused[i], d[i], rule=rule, machine=m, section=s) for m, s, i in groups]
        return official_score(rows, rule=rule)

    return objective
