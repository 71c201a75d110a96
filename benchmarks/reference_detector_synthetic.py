"""Official score of the reference detector and of the level-only control on the synthetic default.

Issue 2's figure: the reference detector (log-mel statistics + cosine kNN per domain) must land
between 0.55 and 0.95, and level-only scoring near chance (0.5), on the default synthetic dataset.

    python benchmarks/reference_detector_synthetic.py --seeds 0 1 2 [--out runs/bench-reference]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time

from asdlab.pipeline.demo import run_demo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", default="runs/bench-reference")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    scores: dict[str, list[float]] = {}
    for seed in args.seeds:
        start = time.perf_counter()
        result = run_demo(f"{args.out}/seed{seed}", seed=seed)
        for system in result.systems:
            scores.setdefault(system.name, []).append(system.summary.official_score)
            print(f"seed {seed}  {system.name:28s} official score {100 * system.summary.official_score:6.2f} %")
        print(f"seed {seed}  ({time.perf_counter() - start:.1f} s with dataset generation)")
    print()
    for name, values in scores.items():
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        print(f"{name:28s} mean {100 * statistics.mean(values):6.2f} % ± {100 * spread:.2f} over seeds {args.seeds}")


if __name__ == "__main__":
    main()
