"""`asdlab synth` through the real command-line entry point, at toy size."""

from __future__ import annotations

import importlib.util

import pytest

from asdlab.cli import main as cli_main


@pytest.fixture(autouse=True)
def _registered_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    # Register only the subcommands whose modules exist, so this test does not depend on siblings.
    present = tuple(n for n in cli_main._COMMAND_MODULES if importlib.util.find_spec(f"asdlab.cli.{n}"))
    monkeypatch.setattr(cli_main, "_COMMAND_MODULES", present)


ARGS = [
    "--machines", "SynFan,SynGear",
    "--train-source", "3",
    "--train-target", "1",
    "--test-per-group", "1",
    "--duration-s", "0.5",
    "--hide-attributes", "SynGear",
    "--anomaly-level", "1.5",
    "--seed", "3",
]


def test_synth_writes_a_dataset_and_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "synth"
    assert cli_main.main(["synth", str(out), *ARGS]) == 0
    printed = capsys.readouterr().out
    assert "[1/2] SynFan" in printed and "[2/2] SynGear" in printed
    assert "wrote 16 clips" in printed
    gear_line = next(line for line in printed.splitlines() if line.startswith("SynGear "))
    assert gear_line.split()[1:] == ["3/1", "1/1", "1/1", "hidden"]

    raw = out / "dev_data" / "raw"
    assert len(list(raw.rglob("*.wav"))) == 16
    assert (raw / "SynGear" / "attributes_00_test_correspondence.csv").is_file()
    assert all(p.stem.endswith("_noAttribute") for p in (raw / "SynGear").rglob("*.wav"))
    assert (out / "synth.json").is_file() and (out / "README.txt").is_file()

    before = {p: p.read_bytes() for p in raw.rglob("*.wav")}
    assert cli_main.main(["synth", str(out), *ARGS]) == 2
    assert "not empty" in capsys.readouterr().err
    assert cli_main.main(["synth", str(out), *ARGS, "--overwrite"]) == 0
    assert {p: p.read_bytes() for p in raw.rglob("*.wav")} == before


def test_synth_reports_a_bad_machine_count(tmp_path, capsys):
    assert cli_main.main(["synth", str(tmp_path / "x"), "--machines", "9"]) == 2
    assert "machines: 9 is out of range" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
