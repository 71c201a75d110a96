"""`asdlab export DETECTOR OUT.asdlab`: a detector folder as one file (JSON + safetensors + training embeddings)."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `export` subcommand."""
    parser = subparsers.add_parser(
        "export",
        help="write a detector as one .asdlab file that score, serve and load_detector accept",
        description=(
            "Pack a detector (a folder from `asdlab fit`, or an .asdlab file) into one zip of JSON, safetensors "
            "weights and the training embeddings, with a manifest of every member's size and SHA-256. Nothing in "
            "it is a pickle: loading checks every member and refuses anything that could run code. Weights in "
            "another format (a released .pt checkpoint) are converted to safetensors; scores are the same bit "
            "for bit."
        ),
    )
    parser.add_argument("detector", type=Path, metavar="DETECTOR", help="detector folder or .asdlab file")
    parser.add_argument("out", type=Path, metavar="OUT.asdlab", help="the file to write")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from asdlab.detector_archive import export_detector  # imports torch; only when used

    path = export_detector(args.detector, args.out)
    print(f"{args.detector} -> {path} ({path.stat().st_size / 1e6:.2f} MB)")
    return 0
