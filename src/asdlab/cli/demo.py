"""`asdlab demo`: the main job on the embedded default (synthetic machines, reference detectors)."""

from __future__ import annotations

import argparse
import time

from asdlab.cli._progress import ProgressPrinter
from asdlab.pipeline.demo import run_demo


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo", help="generate the synthetic dataset and evaluate the reference detectors on it"
    )
    parser.add_argument("--out", default="runs/demo", help="output folder (default: runs/demo)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic dataset")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    result = run_demo(args.out, seed=args.seed, progress=ProgressPrinter("embedding clips"))
    print(f"\ndataset: {result.data_root}")
    for system in result.systems:
        print(f"\n== {system.name}  ({system.out_dir})")
        if system.failures:
            print(f"{len(system.failures)} clips skipped: " + "; ".join(f"{f.path.name}: {f.problem}" for f in system.failures[:5]))
        if system.summary is not None:
            print(system.summary.format_table(), end="")
    print(f"\ndone in {time.perf_counter() - start:.1f} s")
    return 0
