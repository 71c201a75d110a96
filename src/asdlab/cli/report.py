"""`asdlab report`: the static HTML report (tables, ROC curves, score histograms, training curves)."""

from __future__ import annotations

import argparse
from pathlib import Path

from asdlab.cli._commands import COMMANDS

__all__ = ["register", "run"]

_YEARS = (2020, 2021, 2022, 2023, 2024, 2025)


def _pair(text: str) -> tuple[str, Path]:
    """`NAME=PATH` -> ("NAME", Path("PATH"))."""
    name, sep, path = text.partition("=")
    if not sep or not name.strip() or not path.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=PATH, got {text!r}")
    return name.strip(), Path(path.strip())


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `report` subcommand."""
    parser = subparsers.add_parser(
        "report",
        help=COMMANDS["report"],
        description=(
            "Evaluate each scores folder (from `asdlab score`) against the ground truth with the official metric "
            "and write OUT/index.html with OUT/figures/*.png: per system its table, ROC curves per machine and "
            "domain and score histograms with the saved decision threshold; then training curves from CSV logs "
            "and copied images. Open OUT/index.html in a browser; no server needed."
        ),
    )
    parser.add_argument("--scores", type=_pair, action="append", required=True, metavar="NAME=DIR",
                        help="a system's name and scores folder, repeatable")
    parser.add_argument("--ground-truth", type=Path, required=True, metavar="ROOT",
                        help="dataset root or the organisers' evaluator folder (ground_truth_data/)")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="report folder")
    parser.add_argument("--log", type=_pair, action="append", default=[], metavar="NAME=CSV",
                        help="a training-log CSV (step, loss, lr, ...) to plot, repeatable")
    parser.add_argument("--image", type=_pair, action="append", default=[], metavar="TITLE=PNG",
                        help="an existing image (e.g. an embedding map) to include, repeatable")
    parser.add_argument("--title", default="asdlab report", help="page title")
    parser.add_argument("--notes", default="", help="free text shown under the title")
    parser.add_argument("--year", type=int, choices=_YEARS, default=None,
                        help="scoring rule of that year (default: the 2022-2025 rule)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from asdlab.metrics.dcase import rule_for_year
    from asdlab.report.html import ReportImage, ReportSystem, write_report

    rule = rule_for_year(args.year) if args.year is not None else "dcase2023"
    systems = [ReportSystem(name, path, args.ground_truth, rule=rule) for name, path in args.scores]
    index = write_report(
        args.out,
        title=args.title,
        systems=systems,
        training_logs=dict(args.log),
        images=[ReportImage(title, path) for title, path in args.image],
        notes=args.notes,
    )
    print(f"report: {len(systems)} system(s), {len(args.log)} training log(s), {len(args.image)} image(s) -> {index}")
    return 0
