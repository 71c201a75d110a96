"""Density-normalised kNN and DADS-kNN (ensemble report, sec. 1-2: "density-aware domain-synthesised kNN").

Per domain bank B with real training clips C_B (m = `density_neighbors`, k = `n_neighbors`):
    rho_B(r) = mean of d(r, x) over the m nearest x in C_B other than r's parent clip
               (a real clip: leave-self-out; a synthetic point: its origin clip left out)
    c_B      = median over x in C_B of  mean of the k smallest d(x, x') / rho_B(x'), x' in C_B, x' != x
    s_B(q)   = (1 / c_B) * mean of the k smallest d(q, r) / rho_B(r), r in B;     s(q) = min_B s_B(q)
A domain with a single clip has no density: its reference takes the median c_B * rho_B of the other banks.
DADS-kNN uses the same score after synthesising target references (see `smote`):
    T* = T  U  {t + u (t' - t): t' among t's nearest targets, u ~ U(0, 1)}
            U  {t + u (s - t): s among t's nearest source clips, u ~ U(0, max_fraction)}
The report names these ingredients (local density around each reference, target-domain and
cross-domain interpolation) but gives no equations; the form above is our reading. Why:
dividing by rho puts a bank in units of its local spacing, but raw ratios of a sparse ~10-clip
bank and a dense bank are still not comparable (a sparse bank's rho is large, so it wins the min
for the other domain's normals; benchmark: AUC source 42 %). c_B is the bank's typical
leave-one-out ratio of its own clips, so s_B(q) ~ 1 means "as close to B as B's own clips are
to each other" in every bank, and the min compares like with like. rho and c_B use real clips
only: synthetic points crowd around the clips (rho would shrink) and neighbours' synthetic points
sit next to a left-out clip (c_B would shrink), both making the target bank look far denser than
its test clips are (benchmark: dads-knn AUC target 42 %).
"""

from __future__ import annotations

import logging

import numpy as np
from numpy.typing import NDArray

from asdlab.backends._banks import Bank, BankBackend, score_bank
from asdlab.backends._validation import check_choice, check_non_negative_int, check_positive_int, split_domains
from asdlab.backends.search import ApproximateIndex, Metric, NeighborSearch, SearchBackend, as_float_matrix
from asdlab.backends.smote import interpolate_between, interpolate_neighbors
from asdlab.errors import DataError

__all__ = ["DensityKNNBackend", "DADSKNNBackend", "density_scale"]

log = logging.getLogger(__name__)

# rho is floored at this fraction of the bank's median rho: duplicated references (rho = 0)
# would otherwise give infinite ratios.
_RHO_FLOOR = 1e-3


def density_scale(search: NeighborSearch, m: int) -> NDArray[np.float64]:
    """rho per reference: mean distance to its m nearest other references (m capped at R - 1).

    Args:
        search: fitted search over the bank (R, D), R >= 2.
        m: neighbours averaged.

    Returns:
        (R,) float64, floored at 1e-3 x the median (and at the smallest positive float).
    """
    m = min(m, search.n_references_ - 1)
    rho = search.search_self(m)[0].mean(axis=1)
    floor = max(_RHO_FLOOR * float(np.median(rho)), np.finfo(np.float64).tiny)
    return np.maximum(rho, floor)


def _check_common(backend) -> int:
    check_positive_int("density_neighbors", backend.density_neighbors)
    check_choice("metric", backend.metric, ("cosine", "euclidean"))
    return check_positive_int("n_neighbors", backend.n_neighbors)


def _real_clip_scale(real: NeighborSearch, refs, parents: NDArray[np.int64], m: int) -> NDArray[np.float64]:
    """rho of every reference from the bank's real clips, its own parent clip left out (module formula)."""
    n = real.n_references_
    m = min(m, n - 1)
    dist, idx = real.search(refs, min(m + 1, n))
    own = parents[idx] == parents[:, None]  # real clip i is row i of `real`, parents[i] its row
    order = np.argsort(own, axis=1, kind="stable")  # non-own neighbours first, still by distance
    rho = np.take_along_axis(dist, order, axis=1)[:, :m].mean(axis=1)
    floor = max(_RHO_FLOOR * float(np.median(rho)), np.finfo(np.float64).tiny)
    return np.maximum(rho, floor)


def _density_bank(backend, name: str, refs, parents, n_original: int, k: int) -> Bank:
    """Bank with scale c_B * rho_B(r): real-clip densities, calibrated by the real clips' median LOO ratio."""
    if n_original < k:
        raise DataError(f"n_neighbors={k} but domain {name!r} has only {n_original} training clips")
    parents = np.asarray(parents, dtype=np.int64)
    search = backend._new_search().fit(refs)
    if n_original < 2:  # no neighbour to define a density: `_borrow_single_clip_scales` sets the scale
        return Bank(name, search, parents, n_original, None)
    real = backend._new_search().fit(search.references_[:n_original])
    rho = _real_clip_scale(real, search.references_, parents, backend.density_neighbors)
    real_bank = Bank(name, real, parents[:n_original], n_original, rho[:n_original])
    loo = score_bank(real_bank, real.references_, k, parents[:n_original])
    calibration = float(np.median(loo[np.isfinite(loo)]))
    calibration = max(calibration, np.finfo(np.float64).tiny) if np.isfinite(calibration) else 1.0
    return Bank(name, search, parents, n_original, rho * calibration)


def _borrow_single_clip_scales(banks: list[Bank]) -> list[Bank]:
    """A single-clip domain (no neighbour, so no density of its own) takes the median scale of the other
    domains' references: its distances are read in the units of the machine's other banks. This happens
    with 1-2 target clips, e.g. in the leave-one-out folds of the training scores."""
    known = [bank.scale for bank in banks if bank.scale is not None]
    if not known:
        names = [bank.name for bank in banks]
        raise DataError(f"every domain ({names}) has a single training clip: a density (distance to a "
                        "neighbour) needs at least two clips in one domain")
    borrowed = float(np.median(np.concatenate(known)))
    return [bank if bank.scale is not None else
            Bank(bank.name, bank.search, bank.parents, bank.n_original, np.full(len(bank.parents), borrowed))
            for bank in banks]


class DensityKNNBackend(BankBackend):
    """kNN on distances divided by c_B * rho(r) (local density, per-bank calibration), min over domains.

    Args:
        n_neighbors: k, ratios averaged per query.
        metric: "cosine" or "euclidean".
        density_neighbors: m, neighbours defining rho.
        search_backend, index: as in `KNNBackend`.
    """

    def __init__(
        self,
        n_neighbors: int = 1,
        metric: Metric = "cosine",
        *,
        density_neighbors: int = 5,
        search_backend: SearchBackend = "auto",
        index: ApproximateIndex | None = None,
    ):
        self.n_neighbors = n_neighbors
        self.metric = metric
        self.density_neighbors = density_neighbors
        self.search_backend = search_backend
        self.index = index

    def fit(self, X, y=None, *, domains=None) -> DensityKNNBackend:
        """One bank per domain with scale c_B * rho_B(r) per reference (module docstring).

        Raises:
            ConfigError: bad hyper-parameters.
            DataError: bad X / domains; a domain with fewer than k clips; every domain with a single clip.
        """
        k = _check_common(self)
        X = as_float_matrix(X, "X")
        names, groups = split_domains(domains, len(X))
        self.banks_ = _borrow_single_clip_scales(
            [_density_bank(self, str(name), X[rows], rows, len(rows), k) for name, rows in zip(names, groups)])
        self.n_features_in_ = X.shape[1]
        self.n_samples_fit_ = len(X)
        return self


class DADSKNNBackend(BankBackend):
    """Density-aware domain-synthesised kNN: density-normalised kNN with a synthesised target bank.

    Args:
        n_neighbors: k, ratios averaged per query.
        metric: "cosine" or "euclidean".
        density_neighbors: m, neighbours defining rho.
        target_domain: label of the scarce domain that gets synthetic references.
        n_synthetic: target-target (SMOTE) points per target clip.
        n_cross: target-to-source points per target clip (0 disables).
        interpolation_neighbors: partners are drawn among this many nearest clips.
        max_fraction: largest step of a target clip towards a source clip.
        seed: seed of the interpolation.
        search_backend, index: as in `KNNBackend`.
    """

    def __init__(
        self,
        n_neighbors: int = 1,
        metric: Metric = "cosine",
        *,
        density_neighbors: int = 5,
        target_domain: str = "target",
        n_synthetic: int = 5,
        n_cross: int = 5,
        interpolation_neighbors: int = 5,
        max_fraction: float = 0.5,
        seed: int = 0,
        search_backend: SearchBackend = "auto",
        index: ApproximateIndex | None = None,
    ):
        self.n_neighbors = n_neighbors
        self.metric = metric
        self.density_neighbors = density_neighbors
        self.target_domain = target_domain
        self.n_synthetic = n_synthetic
        self.n_cross = n_cross
        self.interpolation_neighbors = interpolation_neighbors
        self.max_fraction = max_fraction
        self.seed = seed
        self.search_backend = search_backend
        self.index = index

    def fit(self, X, y=None, *, domains=None) -> DADSKNNBackend:
        """Banks per domain; the target bank gets SMOTE and cross-domain points; scale c_B * rho_B(r) from real clips.

        Raises:
            ConfigError: bad hyper-parameters.
            DataError: bad X / domains; a domain with fewer than k clips; every domain with a single clip.
        """
        k = _check_common(self)
        check_non_negative_int("n_synthetic", self.n_synthetic)
        check_non_negative_int("n_cross", self.n_cross)
        X = as_float_matrix(X, "X")
        names, groups = split_domains(domains, len(X))
        rng = np.random.default_rng(self.seed)
        if self.target_domain not in names:
            log.warning("DADSKNNBackend: no %r domain among %s; plain density-normalised kNN", self.target_domain, list(names))
        others = np.concatenate([rows for name, rows in zip(names, groups) if name != self.target_domain] or [[]])
        self.banks_ = []
        for name, rows in zip(names, groups):
            refs, parents = [X[rows]], [rows]
            if name == self.target_domain:
                if len(rows) >= 2 and self.n_synthetic > 0:
                    synthetic, origin = interpolate_neighbors(
                        X[rows], self.n_synthetic, n_neighbors=self.interpolation_neighbors, metric=self.metric, generator=rng
                    )
                    refs.append(synthetic)
                    parents.append(rows[origin])
                if len(others) and self.n_cross > 0:
                    synthetic, origin = interpolate_between(
                        X[rows],
                        X[others.astype(np.int64)],
                        self.n_cross,
                        n_neighbors=self.interpolation_neighbors,
                        max_fraction=self.max_fraction,
                        metric=self.metric,
                        generator=rng,
                    )
                    refs.append(synthetic)
                    parents.append(rows[origin])
            self.banks_.append(_density_bank(self, str(name), np.concatenate(refs), np.concatenate(parents), len(rows), k))
        self.banks_ = _borrow_single_clip_scales(self.banks_)
        self.n_features_in_ = X.shape[1]
        self.n_samples_fit_ = len(X)
        return self
