"""CLI start-up: `asdlab --help` and every `asdlab COMMAND --help` parse without importing torch or
Lightning, and the values the parsers show without importing the library equal the library's."""

import json
import subprocess
import sys

from asdlab.cli import _commands
from asdlab.cli.main import _COMMAND_MODULES, build_parser

_PROBE = """
import contextlib, io, json, sys
from asdlab.cli.main import _COMMAND_MODULES, main
codes = {}
for argv in [["--help"]] + [[name.replace("_", "-"), "--help"] for name in _COMMAND_MODULES]:
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            main(argv)
        except SystemExit as exit:
            codes[" ".join(argv)] = exit.code
print(json.dumps({"codes": codes, "heavy": [m for m in ("torch", "lightning") if m in sys.modules]}))
"""


def test_help_of_every_command_imports_neither_torch_nor_lightning():
    done = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(result["codes"].values()) == {0} and len(result["codes"]) == len(_COMMAND_MODULES) + 1
    assert result["heavy"] == []


def test_top_level_help_lists_every_command_with_its_help_line(capsys):
    help_text = "".join(build_parser(set()).format_help().split())  # argparse wraps lines, even at hyphens
    for name, line in _commands.COMMANDS.items():
        assert "".join(f"{name.replace('_', '-')} {line}".split()) in help_text
    assert set(_COMMAND_MODULES) == set(_commands.COMMANDS)


def test_values_shown_without_the_library_equal_the_library():
    from asdlab.backends.registry import available_backends
    from asdlab.data.synth import MACHINE_NAMES
    from asdlab.features.normalize import EAT_TARGET_FRAMES
    from asdlab.pipeline.ensemble import WEIGHTS_FILE
    from asdlab.pipeline.experiment import list_recipes
    from asdlab.pipeline.fit import DEFAULT_RECIPE
    from asdlab.pseudo.count import AUTO_RULES
    from asdlab.pseudo.ward import NORMALIZATIONS

    assert _commands.shipped_recipes() == list_recipes()
    assert _commands.DEFAULT_RECIPE == DEFAULT_RECIPE
    assert _commands.EAT_TARGET_FRAMES == EAT_TARGET_FRAMES
    assert list(_commands.BACKENDS) == available_backends()
    assert _commands.MACHINE_NAMES == MACHINE_NAMES
    assert _commands.AUTO_RULES == AUTO_RULES and _commands.NORMALIZATIONS == NORMALIZATIONS
    assert _commands.WEIGHTS_FILE == WEIGHTS_FILE


def test_the_command_parsers_are_the_full_ones_when_run():
    parser = build_parser({"evaluate"})
    args = parser.parse_args(["evaluate", "scores/", "--ground-truth", "root/"])
    assert args.command == "evaluate" and callable(args.func)
