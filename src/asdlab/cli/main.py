"""The `asdlab` command: one thin subcommand per module of this package."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from asdlab import __version__
from asdlab.errors import AsdlabError

# Each module defines `register(subparsers)`, which adds its parser and sets `func(args) -> int`.
_COMMAND_MODULES = (
    "synth", "evaluate", "demo", "score", "ensemble", "embed", "report", "pseudo_label", "pretrain", "finetune",
    "run", "fit", "export", "serve",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="asdlab", description="Anomalous machine sound detection (DCASE Task 2)."
    )
    parser.add_argument("--version", action="version", version=f"asdlab {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in _COMMAND_MODULES:
        importlib.import_module(f"asdlab.cli.{name}").register(subparsers)
    return parser


class _OncePerCommand(logging.Filter):
    """Lets each distinct warning through once: stages that read the same bad clip report it once.

    One instance filters every handler of the command; a record is the same record for all of them.
    """

    def __init__(self) -> None:
        super().__init__()
        self._first: dict[tuple[str, str], logging.LogRecord] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        first = self._first.setdefault((record.levelname, record.getMessage()), record)
        return first is record


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    once = _OncePerCommand()
    handlers = list(logging.getLogger().handlers)
    for handler in handlers:
        handler.addFilter(once)
    try:
        return int(args.func(args) or 0)
    except AsdlabError as error:
        print(f"asdlab {args.command}: error: {error}", file=sys.stderr)
        return 2
    finally:
        for handler in handlers:
            handler.removeFilter(once)


if __name__ == "__main__":
    sys.exit(main())
