"""`asdlab evaluate`: score a folder of DCASE score files with the official metric (DCASE.md)."""

from __future__ import annotations

import argparse
from pathlib import Path

from asdlab.cli._commands import COMMANDS

__all__ = ["register"]

_YEARS = (2020, 2021, 2022, 2023, 2024, 2025)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `evaluate` subcommand."""
    parser = subparsers.add_parser(
        "evaluate",
        help=COMMANDS["evaluate"],
        description=(
            "Compute AUC (source/target), pAUC, harmonic means and the official score exactly as the "
            "organisers' evaluator does, print the table and write it as CSV."
        ),
    )
    parser.add_argument("scores_dir", type=Path, metavar="SCORES_DIR",
                        help="folder of anomaly_score_<Machine>_section_<SS>_test.csv files")
    parser.add_argument("--ground-truth", type=Path, required=True, metavar="PATH",
                        help="dataset root (labels parsed from test file names) or the organisers' "
                             "evaluator folder holding ground_truth_data/ and ground_truth_domain/")
    parser.add_argument("--year", type=int, choices=_YEARS, default=None,
                        help="scoring rule of that year (default: the 2022-2025 rule)")
    parser.add_argument("--out", type=Path, default=None, metavar="CSV",
                        help="where to write the table (default: SCORES_DIR/evaluation.csv)")
    parser.add_argument("--machines", nargs="+", default=None, metavar="MACHINE",
                        help="evaluate only these machine types (default: all in the ground truth)")
    parser.add_argument("--no-ci", action="store_true",
                        help="skip the jackknife confidence interval")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from asdlab.metrics.dcase import rule_for_year
    from asdlab.metrics.files import evaluate_scores_dir, write_summary_csv

    rule = rule_for_year(args.year) if args.year is not None else "dcase2023"
    summary = evaluate_scores_dir(
        args.scores_dir,
        args.ground_truth,
        rule=rule,
        machines=args.machines,
        confidence_interval=not args.no_ci,
    )
    out = write_summary_csv(summary, args.out or args.scores_dir / "evaluation.csv")
    print(summary.format_table(), end="")
    print(f"table -> {out}")
    return 0
