"""kNN scoring time: faiss exact vs brute-force NumPy, and an approximate faiss index (IVF-Flat).

2,000 queries against 10 k, 100 k and 1 M references of dimension 768 (float32, cosine, k = 1),
through `asdlab.backends.NeighborSearch`. The data are synthetic and clustered to resemble
embeddings: a mixture of Gaussians on the unit sphere (--components centres drawn uniformly on the
sphere, points = normalise(centre + sigma * N(0, I / D)), so cos(point, centre) ~ 1 / sqrt(1 + sigma^2)).
Queries come from the same mixture. Reported per size: build (fit) time, search time and queries/s
of each path, agreement of faiss with NumPy (same neighbour indices, max distance difference), and
for the approximate index its build time, queries/s, speed-up over NumPy and recall@1 against the
exact neighbours (same neighbour or one at the same distance). Memory: the bank is generated in place (1 M x 768 float32 = 3 GB) and shared by
the exact paths (unit-norm rows are not copied); the IVF index holds one more copy.

    python benchmarks/knn_search.py --sizes 10000 100000 1000000 --threads 8 --json knn.json
"""

from __future__ import annotations

import os
import sys


def _cpu_has(flag: str) -> bool:
    try:
        with open("/proc/cpuinfo") as f:
            return any(line.startswith("flags") and flag in line.split() for line in f)
    except OSError:
        return False


# faiss-cpu 1.15 wheels bundle OpenBLAS 0.3.15, which predates recent Xeons (e.g. Sapphire Rapids)
# and falls back to slow generic kernels there: faiss' exact search measured ~4-5x slower than
# NumPy's sgemm until OPENBLAS_CORETYPE=SkylakeX. It must be set before the libraries load.
if "--keep-openblas-coretype" not in sys.argv and "OPENBLAS_CORETYPE" not in os.environ and _cpu_has("avx512f"):
    os.environ["OPENBLAS_CORETYPE"] = "SkylakeX"

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from asdlab.backends.search import ApproximateIndex, NeighborSearch, faiss_available  # noqa: E402


def clustered_sphere(n: int, dim: int, centres: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """(n, dim) float32 unit vectors from a mixture of Gaussians on the sphere, built in chunks."""
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 65536):
        stop = min(n, start + 65536)
        chunk = centres[rng.integers(0, len(centres), stop - start)]
        chunk += (sigma / np.sqrt(dim)) * rng.standard_normal((stop - start, dim), dtype=np.float32)
        chunk /= np.linalg.norm(chunk, axis=1, keepdims=True)
        out[start:stop] = chunk
    return out


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def run_size(n: int, args, rng: np.random.Generator, centres: np.ndarray, queries: np.ndarray) -> dict:
    refs = clustered_sphere(n, args.dim, centres, args.sigma, rng)
    row: dict = {"n_references": n}
    numpy_search, row["numpy_fit_s"] = timed(lambda: NeighborSearch("cosine", search_backend="numpy").fit(refs))
    (d_np, i_np), row["numpy_search_s"] = timed(lambda: numpy_search.search(queries, args.k))
    row["numpy_qps"] = len(queries) / row["numpy_search_s"]
    if faiss_available():
        faiss_search, row["faiss_fit_s"] = timed(lambda: NeighborSearch("cosine", search_backend="faiss").fit(refs))
        (d_fa, i_fa), row["faiss_search_s"] = timed(lambda: faiss_search.search(queries, args.k))
        row["faiss_qps"] = len(queries) / row["faiss_search_s"]
        row["faiss_vs_numpy_index_agreement"] = float((i_fa == i_np).mean())
        row["faiss_vs_numpy_max_abs_distance_diff"] = float(np.abs(d_fa - d_np).max())
        del faiss_search
        if n >= args.approx_min_size:
            spec = ApproximateIndex(
                args.approx, nlist=args.nlist, nprobe=args.nprobe, train_size=args.train_size,
                hnsw_m=args.hnsw_m, ef_search=args.ef_search,
            )
            approx, row["approx_build_s"] = timed(lambda: NeighborSearch("cosine", index=spec).fit(refs))
            (d_ap, i_ap), row["approx_search_s"] = timed(lambda: approx.search(queries, args.k))
            row["approx"] = {"kind": spec.kind, "nlist": approx._faiss_index.nlist if spec.kind == "ivf" else None,
                             "nprobe": spec.nprobe if spec.kind == "ivf" else None,
                             "ef_search": spec.ef_search if spec.kind == "hnsw" else None,
                             "train_size": spec.train_size}
            row["approx_qps"] = len(queries) / row["approx_search_s"]
            row["approx_speedup_vs_numpy"] = row["approx_qps"] / row["numpy_qps"]
            # A hit: the returned neighbour is the exact one, or another at the same distance (a tie).
            row["approx_recall_at_1"] = float(((i_ap[:, 0] == i_np[:, 0]) | (d_ap[:, 0] <= d_np[:, 0] + 1e-6)).mean())
            del approx
    del numpy_search, refs
    return row


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--k", type=int, default=1)
    parser.add_argument("--components", type=int, default=1000, help="mixture components on the sphere")
    parser.add_argument("--sigma", type=float, default=0.75, help="within-component spread (cos to centre ~0.8)")
    parser.add_argument("--approx", choices=["ivf", "hnsw"], default="ivf")
    parser.add_argument("--approx-min-size", type=int, default=100_000, help="smallest bank given an approximate index")
    parser.add_argument("--nlist", type=int, default=None, help="IVF lists (default sqrt(N))")
    parser.add_argument("--nprobe", type=int, default=8)
    parser.add_argument("--train-size", type=int, default=65_536, help="IVF k-means training points")
    parser.add_argument("--hnsw-m", type=int, default=32)
    parser.add_argument("--ef-search", type=int, default=128)
    parser.add_argument("--threads", type=int, default=None, help="BLAS / OpenMP threads (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="also write the results to this file")
    parser.add_argument("--keep-openblas-coretype", action="store_true",
                        help="do not set OPENBLAS_CORETYPE=SkylakeX on AVX-512 CPUs (see the comment at the top)")
    args = parser.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    centres = rng.standard_normal((args.components, args.dim), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    queries = clustered_sphere(args.queries, args.dim, centres, args.sigma, rng)
    if args.threads is not None and faiss_available():
        import faiss

        faiss.omp_set_num_threads(args.threads)
    rows = []
    with threadpool_limits(limits=args.threads):
        for n in args.sizes:
            rows.append(run_size(n, args, rng, centres, queries))
            print(json.dumps(rows[-1], indent=None), flush=True)

    print(f"\n{args.queries} queries, D={args.dim}, k={args.k}, cosine; {platform.machine()}, "
          f"{os.cpu_count()} CPUs, threads={args.threads or 'all'}, OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')}")
    print(f"{'N':>9} {'numpy q/s':>10} {'faiss q/s':>10} {'agree':>6} {'approx q/s':>11} {'x numpy':>8} "
          f"{'recall@1':>9} {'build s':>8}")
    for r in rows:
        print(f"{r['n_references']:>9} {r['numpy_qps']:>10.0f} {r.get('faiss_qps', float('nan')):>10.0f} "
              f"{r.get('faiss_vs_numpy_index_agreement', float('nan')):>6.4f} {r.get('approx_qps', float('nan')):>11.0f} "
              f"{r.get('approx_speedup_vs_numpy', float('nan')):>8.1f} {r.get('approx_recall_at_1', float('nan')):>9.4f} "
              f"{r.get('approx_build_s', float('nan')):>8.1f}")
    if args.json:
        meta = {"queries": args.queries, "dim": args.dim, "k": args.k, "components": args.components,
                "sigma": args.sigma, "threads": args.threads, "seed": args.seed,
                "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE"), "cpu_count": os.cpu_count()}
        with open(args.json, "w") as f:
            json.dump({"config": meta, "results": rows}, f, indent=2)


if __name__ == "__main__":
    main()
