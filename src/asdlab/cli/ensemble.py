"""`asdlab ensemble SYSTEM_DIR ...`: fuse scored systems with equal, given or tuned weights."""

from __future__ import annotations

import argparse
from pathlib import Path

from asdlab.cli._commands import COMMANDS, WEIGHTS_FILE

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `ensemble` subcommand."""
    parser = subparsers.add_parser(
        "ensemble",
        help=COMMANDS["ensemble"],
        description=(
            "Normalise each system's scores per machine from its out-of-fold training scores (folders written "
            "by `asdlab score`), fuse them by a weighted mean and write the ensemble as a new scores folder. "
            "Weights are equal by default, read with --weights, or searched with --tune-on: the same systems "
            "(same folder names) scored on a labelled development set; the weights found there are applied "
            f"unchanged to SYSTEM_DIRs and saved as OUT/{WEIGHTS_FILE}."
        ),
    )
    parser.add_argument("systems", nargs="+", type=Path, metavar="SYSTEM_DIR",
                        help="scores folders of the member systems (distinct folder names)")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder for the ensemble's files")
    how = parser.add_mutually_exclusive_group()
    how.add_argument("--weights", type=Path, default=None, metavar="JSON",
                     help='fixed weights {"system folder name": weight}, e.g. an earlier run\'s weights.json')
    how.add_argument("--tune-on", nargs="+", type=Path, default=None, metavar="DEV_DIR",
                     help="the member systems scored on a labelled development set; weights are tuned there")
    parser.add_argument("--tune-ground-truth", type=Path, default=None, metavar="PATH",
                        help="labels of the development set (default: DEV_DIR/ground_truth of the first)")
    parser.add_argument("--ground-truth", type=Path, default=None, metavar="PATH",
                        help="labels of the scored set (default: SYSTEM_DIR/ground_truth of the first, if any)")
    parser.add_argument("--normalize", choices=("zscore", "rank"), default="zscore",
                        help="per-machine normalisation before fusing (default: zscore)")
    parser.add_argument("--threshold", choices=("gamma", "percentile"), default="gamma",
                        help="decision threshold from the fused training scores (default: gamma)")
    parser.add_argument("--n-iter", type=int, default=200, help="weight-search steps (default 200)")
    parser.add_argument("--seed", type=int, default=0, help="weight-search seed")
    parser.add_argument("--no-ci", action="store_true", help="skip the jackknife confidence interval")
    parser.set_defaults(func=run)


def _weights_line(weights) -> str:
    return "  ".join(f"{name}={w:.3f}" for name, w in weights.as_dict().items())


def run(args: argparse.Namespace) -> int:
    from asdlab.pipeline.ensemble import load_weights, run_ensemble

    result = run_ensemble(
        args.systems,
        args.out,
        weights=None if args.weights is None else load_weights(args.weights),
        tune_dirs=args.tune_on,
        tune_ground_truth=args.tune_ground_truth,
        ground_truth=args.ground_truth,
        normalization=args.normalize,
        threshold_method=args.threshold,
        n_iter=args.n_iter,
        seed=args.seed,
        confidence_interval=not args.no_ci,
    )
    origin = "equal" if args.weights is None and not args.tune_on else f"from {args.weights}" if args.weights else "tuned"
    print(f"weights ({origin}): {_weights_line(result.weights)}")
    if result.tuning is not None:
        t = result.tuning
        members = "  ".join(f"{name} {100 * v:.2f}" for name, v in t.member_scores.items())
        print(f"tuned on {t.ground_truth}: official score {100 * t.search.initial_objective:.2f} % (equal weights) "
              f"-> {100 * t.search.objective:.2f} % (tuned); members: {members}")
    if result.summary is None:
        print(f"ensemble -> {result.out_dir} (not evaluated: no ground truth, pass --ground-truth)")
        return 0
    members = "  ".join(f"{name} {100 * s.official_score:.2f}" for name, s in result.member_summaries.items())
    print(f"official score on {result.ground_truth}: members: {members}")
    print(result.summary.format_table(), end="")
    print(f"ensemble -> {result.out_dir}; table -> {result.out_dir / 'evaluation.csv'}")
    return 0
