"""`asdlab fit DATA_ROOT --out MODEL_DIR`: train a detector from every machine type's train clips."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from asdlab.cli._commands import COMMANDS, DEFAULT_RECIPE, shipped_recipes
from asdlab.cli._progress import TrainingProgressPrinter

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `fit` subcommand."""
    parser = subparsers.add_parser(
        "fit",
        help=COMMANDS["fit"],
        description=(
            "Train a detector from every machine type's train/ clips under DATA_ROOT (either "
            "<root>/<Machine>/train or <root>/dev_data/raw/<Machine>/train, DCASE file names) and write a "
            "self-contained detector folder. Score test clips with `asdlab score MODEL_DIR DATA_ROOT`. "
            f"Recipes: {', '.join(shipped_recipes())} (default {DEFAULT_RECIPE})."
        ),
    )
    parser.add_argument("data_root", type=Path, metavar="DATA_ROOT")
    parser.add_argument("--out", type=Path, required=True, metavar="MODEL_DIR", help="detector folder to write")
    parser.add_argument("--recipe", default=DEFAULT_RECIPE, metavar="NAME_OR_CONFIG",
                        help=f"shipped recipe name or a YAML file (default {DEFAULT_RECIPE})")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a recipe setting, repeatable")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto",
                        help="where clips are embedded: auto (the GPU when there is one, bf16), cpu, cuda, cuda:N")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from asdlab.pipeline.fit import fit_detector

    start = time.perf_counter()
    detector = fit_detector(args.data_root, args.out, recipe=args.recipe, overrides=args.overrides, seed=args.seed,
                            log=print, progress=TrainingProgressPrinter(), device=args.device)
    machines = ", ".join(f"{m}/{s}" for m, s in detector.machines)
    print(f"detector ({detector.recipe}) for {machines} -> {args.out} in {time.perf_counter() - start:.1f} s")
    return 0
