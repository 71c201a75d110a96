"""`asdlab run CONFIG`: a whole experiment from one configuration file (or a shipped recipe)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING

from asdlab.cli._commands import COMMANDS, shipped_recipes
from asdlab.cli._progress import TrainingProgressPrinter

if TYPE_CHECKING:
    from asdlab.pipeline.experiment import ExperimentConfig, ExperimentResult

__all__ = ["register", "run", "run_and_print"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `run` subcommand."""
    parser = subparsers.add_parser(
        "run",
        help=COMMANDS["run"],
        description=(
            "Run every variant x seed of an experiment configuration. Each stage's output is cached under "
            "OUT/cache/ keyed by its settings and inputs, so a rerun skips finished stages and a changed "
            f"setting reruns only what depends on it. Shipped recipes: {', '.join(shipped_recipes())}."
        ),
    )
    parser.add_argument("config", metavar="CONFIG", help="a YAML configuration file or a shipped recipe name")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: runs/<name>)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a setting, repeatable (e.g. --set finetune.max_steps=200)")
    parser.add_argument("--synthetic", action="store_true",
                        help="run at small scale on the generated synthetic dataset (the recipe's small_scale settings)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from asdlab.pipeline.experiment import load_experiment_config

    config = load_experiment_config(args.config, overrides=args.overrides, small_scale=args.synthetic)
    run_and_print(config, args.out or Path("runs") / config.name)
    return 0


def run_and_print(config: ExperimentConfig, out: Path) -> ExperimentResult:
    """Run an experiment with progress on the terminal, then print each system's table and the summary."""
    from asdlab.pipeline.experiment import run_experiment

    start = time.perf_counter()
    result = run_experiment(config, out, log=print, progress=TrainingProgressPrinter())
    for item in result.results:
        if item.summary is not None:
            print(f"\n== {item.variant} (seed {item.seed})  {item.scores_dir}")
            print(item.summary.format_table(), end="")
        for group, a in sorted(item.pseudo_agreement.items()):
            ari = "–" if a["ari"] is None else f"{a['ari']:.3f}"
            print(f"   pseudo-attributes {group}: K={a['k']} (true {a['true_k']}), ARI {ari}")
    print("\nofficial score (%), mean ± std over seeds:\n" + result.table_path.read_text())
    if result.report_path is not None:
        print(f"report: {result.report_path}")
    print(f"done in {time.perf_counter() - start:.1f} s -> {result.out_dir}")
    return result
