"""Nearest-neighbour search over a reference bank: cosine or Euclidean, faiss or NumPy.

Exact search uses faiss' brute-force kernels (`knn_inner_product` on L2-normalised vectors for
cosine, `knn_L2sqr` for Euclidean: the kernels behind `IndexFlatIP` / `IndexFlatL2`, called on
our own array so the bank is not copied) or, when faiss is absent or not wanted, a blocked NumPy
matmul with `argpartition`. Both paths then recompute the distances of the k chosen neighbours in
float64 and order them by (distance, index), so they return identical results, ties included.
Large banks may use an approximate faiss index (IVF-Flat or HNSW), chosen with `ApproximateIndex`.
faiss-cpu wheels bundle an OpenBLAS (0.3.15) that does not recognise recent CPUs and falls back to
slow kernels (4-5x slower than NumPy on a Sapphire Rapids Xeon). On CPUs with AVX-512 this module
therefore defaults `OPENBLAS_CORETYPE` to `SkylakeX` (valid on every AVX-512 CPU) before faiss
loads, unless the user has set it; OpenBLAS copies already loaded (NumPy's) are unaffected.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from asdlab.errors import ConfigError, DataError, NotFittedError


def _default_openblas_coretype() -> None:
    if "OPENBLAS_CORETYPE" in os.environ:
        return
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "")
    except OSError:  # not Linux: leave OpenBLAS to its own detection
        return
    if " avx512f" in flags:
        os.environ["OPENBLAS_CORETYPE"] = "SkylakeX"


_default_openblas_coretype()

try:  # faiss is optional: the NumPy path gives the same exact results.
    import faiss
except ImportError:  # pragma: no cover - depends on the environment
    faiss = None

__all__ = [
    "Metric",
    "SearchBackend",
    "ApproximateIndex",
    "NeighborSearch",
    "faiss_available",
    "as_float_matrix",
]

log = logging.getLogger(__name__)

Metric = Literal["cosine", "euclidean"]
SearchBackend = Literal["auto", "faiss", "numpy"]

_METRICS = ("cosine", "euclidean")
_SEARCH_BACKENDS = ("auto", "faiss", "numpy")
# Elements of one (queries x references) distance block in the NumPy path: 2**26 float32 = 256 MiB.
_BLOCK_ELEMENTS = 1 << 26
# References per block in the NumPy path (the running top-k is merged across blocks).
_REFERENCE_BLOCK = 1 << 16


def faiss_available() -> bool:
    """Whether faiss can be imported in this environment."""
    return faiss is not None


def as_float_matrix(X, name: str = "X", *, dim: int | None = None) -> NDArray[np.float32]:
    """Validate a 2-D finite array of embeddings and return it as C-contiguous float32.

    Args:
        X: array-like (N, D).
        name: argument name used in error messages.
        dim: required D, when known.

    Raises:
        DataError: not 2-D, empty, non-finite, or the wrong width.
    """
    X = np.ascontiguousarray(X, dtype=np.float32)
    if X.ndim != 2:
        raise DataError(f"{name} must be a 2-D array (N, D), got shape {X.shape}")
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise DataError(f"{name} is empty (shape {X.shape})")
    if dim is not None and X.shape[1] != dim:
        raise DataError(f"{name} has {X.shape[1]} columns, the fitted references have {dim}")
    if not np.isfinite(X).all():
        raise DataError(f"{name} contains NaN or infinite values")
    return X


def _normalize_rows(X: NDArray[np.float32]) -> NDArray[np.float32]:
    """Unit-L2 rows; an all-zero row stays zero (cosine distance 1 to everything).

    Rows already of unit norm are returned as they are, without a copy (a 1 M x 768 bank is 3 GB).
    """
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    if np.all(np.abs(norms - 1.0) <= 1e-6):
        return X
    np.maximum(norms, np.finfo(np.float32).tiny, out=norms)
    return np.ascontiguousarray(X / norms, dtype=np.float32)


@dataclass(frozen=True)
class ApproximateIndex:
    """An approximate faiss index for large reference banks.

    Args:
        kind: "ivf" (IVF-Flat: k-means coarse quantiser, `nprobe` lists scanned per query) or
            "hnsw" (graph index, `ef_search` candidates per query).
        nlist: IVF lists; None picks about sqrt(N), at most N // 39 (faiss' training floor).
        nprobe: IVF lists scanned per query (higher = better recall, slower).
        hnsw_m: HNSW neighbours per node.
        ef_construction: HNSW build-time candidate list size.
        ef_search: HNSW query-time candidate list size.
        train_size: IVF k-means trains on at most this many references (a seeded random subset);
            None uses faiss' default cap of 256 per list.
        seed: seed of the IVF k-means and of its training subset.
    """

    kind: Literal["ivf", "hnsw"] = "ivf"
    nlist: int | None = None
    nprobe: int = 16
    hnsw_m: int = 32
    ef_construction: int = 200
    ef_search: int = 128
    train_size: int | None = None
    seed: int = 1234


class NeighborSearch:
    """k-nearest-neighbour search over a fixed reference bank.

    Distances: cosine distance 1 - cos(q, r) (in [0, 2]) or Euclidean distance ||q - r||.

    Args:
        metric: "cosine" or "euclidean".
        search_backend: "faiss", "numpy", or "auto" (faiss when installed).
        index: None for exact search, or an `ApproximateIndex` (faiss only).
        block_size: queries per block in the NumPy path; None sizes blocks to about 256 MiB.

    A float32 C-contiguous bank (of unit-norm rows, for cosine) is kept without a copy: do not
    modify it after `fit`.
    """

    def __init__(
        self,
        metric: Metric = "cosine",
        *,
        search_backend: SearchBackend = "auto",
        index: ApproximateIndex | None = None,
        block_size: int | None = None,
    ):
        self.metric = metric
        self.search_backend = search_backend
        self.index = index
        self.block_size = block_size

    def fit(self, references, y=None) -> NeighborSearch:
        """Store the reference bank (N, D) and build the approximate index if one is asked for.

        Raises:
            ConfigError: unknown metric / backend, or an approximate index without faiss.
            DataError: references not a finite 2-D array.
        """
        if self.metric not in _METRICS:
            raise ConfigError(f"metric must be one of {_METRICS}, got {self.metric!r}")
        if self.search_backend not in _SEARCH_BACKENDS:
            raise ConfigError(f"search_backend must be one of {_SEARCH_BACKENDS}, got {self.search_backend!r}")
        if self.search_backend == "faiss" and faiss is None:
            raise ConfigError("search_backend='faiss' but faiss is not installed (pip install faiss-cpu)")
        if self.index is not None and not isinstance(self.index, ApproximateIndex):
            raise ConfigError(f"index must be None or an ApproximateIndex, got {self.index!r}")
        if self.index is not None and (faiss is None or self.search_backend == "numpy"):
            raise ConfigError("an approximate index needs faiss (search_backend 'auto' or 'faiss')")
        if self.block_size is not None and self.block_size < 1:
            raise ConfigError(f"block_size must be >= 1, got {self.block_size}")
        R = as_float_matrix(references, "references")
        self.references_ = _normalize_rows(R) if self.metric == "cosine" else R
        self.backend_ = "numpy" if self.search_backend == "numpy" or faiss is None else "faiss"
        self.n_references_ = R.shape[0]
        self.n_features_in_ = R.shape[1]
        self._max_sq_norm = float((self.references_.astype(np.float64) ** 2).sum(axis=1).max())  # rounding bound
        self._faiss_index = None
        if self.index is not None:
            self._faiss_index = self._build_index(self.index)
        return self

    def _build_index(self, spec: ApproximateIndex):
        R = self.references_
        n, d = R.shape
        faiss_metric = faiss.METRIC_INNER_PRODUCT if self.metric == "cosine" else faiss.METRIC_L2
        if spec.kind == "ivf":
            nlist = spec.nlist or max(1, min(int(np.sqrt(n)), n // 39))
            if nlist > n:
                raise ConfigError(f"ApproximateIndex.nlist={nlist} exceeds the {n} references")
            quantizer = faiss.IndexFlatIP(d) if self.metric == "cosine" else faiss.IndexFlatL2(d)
            index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss_metric)
            index.cp.seed = spec.seed
            if spec.train_size is not None and spec.train_size < nlist:
                raise ConfigError(f"ApproximateIndex.train_size={spec.train_size} is below nlist={nlist}")
            train = R
            if spec.train_size is not None and spec.train_size < n:
                rows = np.sort(np.random.default_rng(spec.seed).choice(n, spec.train_size, replace=False))
                train = R[rows]
            index.train(train)
            del train
            index.add(R)
            index.nprobe = min(spec.nprobe, nlist)
        elif spec.kind == "hnsw":
            index = faiss.IndexHNSWFlat(d, spec.hnsw_m, faiss_metric)
            index.hnsw.efConstruction = spec.ef_construction
            index.add(R)
            index.hnsw.efSearch = spec.ef_search
        else:
            raise ConfigError(f"ApproximateIndex.kind must be 'ivf' or 'hnsw', got {spec.kind!r}")
        return index

    # A faiss index cannot be pickled: store it serialised and rebuild it on load.
    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        index = state.pop("_faiss_index", None)
        if index is not None:
            state["_faiss_bytes"] = faiss.serialize_index(index)
        return state

    def __setstate__(self, state: dict) -> None:
        data = state.pop("_faiss_bytes", None)
        self.__dict__.update(state)
        if "references_" in state:
            self._faiss_index = faiss.deserialize_index(data) if data is not None else None

    def _check_fitted(self) -> None:
        if not hasattr(self, "references_"):
            raise NotFittedError("NeighborSearch is not fitted: call fit(references) first")

    def _check_k(self, k: int, available: int) -> None:
        if not isinstance(k, (int, np.integer)) or k < 1:
            raise ConfigError(f"k must be a positive integer, got {k!r}")
        if k > available:
            raise DataError(f"asked for k={k} neighbours but the bank has only {available} usable references")

    def search(self, queries, k: int) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
        """The k nearest references of each query.

        Args:
            queries: (Q, D) embeddings.
            k: neighbours per query (at most the bank size).

        Returns:
            distances (Q, k) float64 ascending, indices (Q, k) int64 into the references;
            equal distances are ordered by index.

        Raises:
            NotFittedError: before `fit`.
            DataError: bad queries, or k larger than the bank.
        """
        self._check_fitted()
        self._check_k(k, self.n_references_)
        Q = as_float_matrix(queries, "queries", dim=self.n_features_in_)
        if self.metric == "cosine":
            Q = _normalize_rows(Q)
        return self._search_prepared(Q, int(k))

    def search_self(self, k: int) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
        """The k nearest *other* references of each reference (leave-self-out).

        Returns:
            distances (N, k) float64, indices (N, k) int64; row i never contains i.
        """
        self._check_fitted()
        self._check_k(k, self.n_references_ - 1)
        n = self.n_references_
        dist, idx = self._search_prepared(self.references_, k + 1)
        rows = np.arange(n)
        is_self = idx == rows[:, None]
        # A duplicate of row i may precede i itself; drop i where it appears, else the last column.
        drop = np.where(is_self.any(axis=1), is_self.argmax(axis=1), k)
        keep = np.ones_like(idx, dtype=bool)
        keep[rows, drop] = False
        return dist[keep].reshape(n, k), idx[keep].reshape(n, k)  # (N, k+1) -> (N, k)

    def _search_prepared(self, Q: NDArray[np.float32], k: int) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
        if self._faiss_index is not None:
            _, idx = self._faiss_index.search(Q, k)
            return self._refine(Q, idx)
        # Both exact paths rank in float32, whose rounding can order (near-)equal distances either way
        # (faiss, and BLAS kernels that round identical rows differently by position): fetch one extra
        # neighbour, and settle the rare rows where the k-th and the next are within rounding of each
        # other in float64 over every reference, lower index first.
        k_extra = min(k + 1, self.n_references_)
        if self.backend_ == "numpy":
            idx = self._numpy_topk(Q, k_extra)
        else:
            faiss_metric = faiss.METRIC_INNER_PRODUCT if self.metric == "cosine" else faiss.METRIC_L2
            _, idx = faiss.knn(Q, self.references_, k_extra, metric=faiss_metric)
        dist, idx = self._refine(Q, idx)
        if k_extra > k:
            close = np.flatnonzero(self._within_rounding(Q, dist[:, k - 1], dist[:, k]))
            if len(close):
                everything = np.broadcast_to(np.arange(self.n_references_), (len(close), self.n_references_))
                exact_dist, exact_idx = self._refine(Q[close], everything)
                dist[close], idx[close] = exact_dist[:, :k_extra], exact_idx[:, :k_extra]
        return dist[:, :k], idx[:, :k]

    def _within_rounding(self, Q: NDArray[np.float32], nearer: NDArray[np.float64],
                         farther: NDArray[np.float64]) -> NDArray[np.bool_]:
        """Rows whose two distances a float32 ranking may have swapped (a generous bound: false alarms cost time only)."""
        tolerance = 64 * np.finfo(np.float32).eps * self.n_features_in_
        if self.metric == "cosine":
            return farther - nearer <= tolerance  # 1 - cos of unit vectors: dot products of magnitude <= 1
        scale = (Q.astype(np.float64) ** 2).sum(axis=1) + self._max_sq_norm
        return farther**2 - nearer**2 <= tolerance * scale

    def _refine(self, Q: NDArray[np.float32], idx: NDArray[np.int64]) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
        """Exact float64 distances of the chosen neighbours, sorted by (distance, index)."""
        idx = np.asarray(idx, dtype=np.int64)
        missing = idx < 0  # approximate indexes return -1 when they find fewer than k
        safe = np.where(missing, 0, idx)
        dist = np.empty(idx.shape, dtype=np.float64)
        b = max(1, (1 << 22) // (idx.shape[1] * Q.shape[1]))  # gathered rows: b x k x D float64 <= 32 MiB
        for start in range(0, len(Q), b):
            q = Q[start : start + b].astype(np.float64)[:, None, :]  # (b, 1, D)
            r = self.references_[safe[start : start + b]].astype(np.float64)  # (b, k, D)
            if self.metric == "cosine":
                # Re-normalise in float64 so a query equal to a reference is at distance 0 exactly.
                q = q / np.maximum(np.linalg.norm(q, axis=2, keepdims=True), 1e-300)
                r = r / np.maximum(np.linalg.norm(r, axis=2, keepdims=True), 1e-300)
                # 1 - cos = ||q - r||^2 / 2 on unit vectors, exact (0) for equal vectors.
                dist[start : start + b] = 0.5 * ((r - q) ** 2).sum(axis=2)
            else:
                dist[start : start + b] = np.sqrt(((r - q) ** 2).sum(axis=2))
        if self.metric == "cosine":
            np.clip(dist, 0.0, 2.0, out=dist)
        dist[missing] = np.inf
        safe[missing] = np.iinfo(np.int64).max
        order = _lexsort_rows(dist, safe)
        dist = np.take_along_axis(dist, order, axis=1)
        idx = np.take_along_axis(safe, order, axis=1)
        idx[np.isinf(dist)] = -1
        return dist, idx

    def _numpy_topk(self, Q: NDArray[np.float32], k: int) -> NDArray[np.int64]:
        R = self.references_
        n = R.shape[0]
        # Rank key per (query, reference): smaller = nearer. Cosine: -q.r on unit vectors;
        # Euclidean: ||r||^2 - 2 q.r (||q||^2 is constant within a row).
        sq_norms = (R.astype(np.float64) ** 2).sum(axis=1).astype(np.float32) if self.metric == "euclidean" else None
        ref_block = min(n, max(k, _REFERENCE_BLOCK))
        q_block = self.block_size or max(1, _BLOCK_ELEMENTS // ref_block)
        out = np.empty((len(Q), k), dtype=np.int64)
        for qs in range(0, len(Q), q_block):
            q = Q[qs : qs + q_block]
            best_key = best_idx = None
            for rs in range(0, n, ref_block):
                key = q @ R[rs : rs + ref_block].T  # (b, r)
                if sq_norms is None:
                    np.negative(key, out=key)
                else:
                    key *= -2.0
                    key += sq_norms[rs : rs + ref_block]
                cand = _topk_rows(key, min(k, key.shape[1]))
                cand_key = np.take_along_axis(key, cand, axis=1)
                cand += rs
                if best_key is not None:
                    cand_key = np.concatenate([best_key, cand_key], axis=1)
                    cand = np.concatenate([best_idx, cand], axis=1)
                    order = _lexsort_rows(cand_key, cand)[:, :k]
                    cand_key = np.take_along_axis(cand_key, order, axis=1)
                    cand = np.take_along_axis(cand, order, axis=1)
                best_key, best_idx = cand_key, cand
            out[qs : qs + q_block] = best_idx
        return out


def _topk_rows(key: NDArray, k: int) -> NDArray[np.int64]:
    """Column indices of the k smallest entries of each row; ties at the k-th value go to lower indices."""
    if k >= key.shape[1]:
        return np.broadcast_to(np.arange(key.shape[1]), key.shape).copy()
    idx = np.argpartition(key, k - 1, axis=1)[:, :k]
    kth = np.take_along_axis(key, idx, axis=1).max(axis=1)
    tied = np.flatnonzero((key <= kth[:, None]).sum(axis=1) > k)
    for row in tied:  # rare: exact ties straddle the k-th place
        idx[row] = np.argsort(key[row], kind="stable")[:k]
    return idx.astype(np.int64, copy=False)


def _lexsort_rows(primary: NDArray, secondary: NDArray) -> NDArray[np.int64]:
    """Per-row order sorting by `primary`, then by `secondary`."""
    by_secondary = np.argsort(secondary, axis=1, kind="stable")
    p = np.take_along_axis(primary, by_secondary, axis=1)
    by_primary = np.argsort(p, axis=1, kind="stable")
    return np.take_along_axis(by_secondary, by_primary, axis=1)
