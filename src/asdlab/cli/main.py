"""The `asdlab` command: one thin subcommand per module of this package."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Collection

from asdlab import __version__
from asdlab.cli._commands import COMMANDS
from asdlab.errors import AsdlabError

# Each module defines `register(subparsers)`, which adds its parser and sets `func(args) -> int`. Only the
# command being run is imported; the others appear in `asdlab --help` by name and help line (_commands.py).
_COMMAND_MODULES = tuple(COMMANDS)


def _command_name(module: str) -> str:
    return module.replace("_", "-")


def build_parser(commands: Collection[str] | None = None) -> argparse.ArgumentParser:
    """The `asdlab` parser with the subcommands in `commands` (None = all) set up in full, the others
    listed by name and help line only (their modules, and torch, are not imported)."""
    parser = argparse.ArgumentParser(
        prog="asdlab", description="Anomalous machine sound detection (DCASE Task 2)."
    )
    parser.add_argument("--version", action="version", version=f"asdlab {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in _COMMAND_MODULES:
        if commands is None or _command_name(name) in commands:
            importlib.import_module(f"asdlab.cli.{name}").register(subparsers)
        else:
            subparsers.add_parser(_command_name(name), help=COMMANDS.get(name), add_help=False)
    return parser


def _requested(argv: list[str]) -> set[str]:
    """The subcommand named in argv (its first word that is not an option), if any."""
    names = {_command_name(name) for name in _COMMAND_MODULES}
    first = next((word for word in argv if not word.startswith("-")), None)
    return {first} if first in names else set()


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
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(_requested(argv))
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:  # faiss reports at INFO which CPU build it tried, several lines per process
        logging.getLogger("faiss").setLevel(logging.WARNING)
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
