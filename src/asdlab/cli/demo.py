"""`asdlab demo`: the main job on the embedded default — the shipped `demo` recipe on the synthetic machines."""

from __future__ import annotations

import argparse
from pathlib import Path

from asdlab.cli._commands import COMMANDS

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `demo` subcommand."""
    parser = subparsers.add_parser(
        "demo",
        help=COMMANDS["demo"],
        description=(
            "Generate the synthetic machine-sound dataset (4 machine types, 2 with hidden attributes) and run "
            "the `demo` recipe on it: EAT-tiny with a short DAP, Ward pseudo-attributes, fine-tuning and kNN "
            "(the paper's pipeline at CPU scale), the two-branch CNN, and log-mel statistics + kNN. Prints the "
            "results and writes the HTML report. Same as `asdlab run demo`; stages are cached, so a rerun is quick."
        ),
    )
    parser.add_argument("--out", type=Path, default=Path("runs/demo"), help="output folder (default: runs/demo)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a setting of the recipe, repeatable (e.g. --set seeds=[0,1,2])")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from asdlab.cli.run import run_and_print
    from asdlab.pipeline.experiment import load_experiment_config

    run_and_print(load_experiment_config("demo", overrides=args.overrides), args.out)
    return 0
