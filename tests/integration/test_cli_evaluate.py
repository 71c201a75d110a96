"""`asdlab evaluate` end to end: score files + a dataset root of empty, DCASE-named test files."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from asdlab.cli import main as cli_main
from asdlab.metrics import write_anomaly_scores

# fan: the hand-checked section of tests/unit/metrics/test_dcase_metric.py
# (AUC_s 7/8, AUC_t 5/8, pAUC 14/19); ToyCar: a perfect system.
CLIPS = [  # (domain, label, fan score, ToyCar score)
    ("source", "normal", 0.1, 0.1), ("source", "normal", 0.4, 0.2),
    ("target", "normal", 0.3, 0.3), ("target", "normal", 0.6, 0.4),
    ("source", "anomaly", 0.5, 0.6), ("source", "anomaly", 0.9, 0.7),
    ("target", "anomaly", 0.2, 0.8), ("target", "anomaly", 0.7, 0.9),
]
OFFICIAL = 6 / (3 + 8 / 7 + 8 / 5 + 19 / 14)  # hmean of fan's 3 values and ToyCar's three 1.0s


@pytest.fixture()
def system(tmp_path: Path) -> tuple[Path, Path]:
    root, scores = tmp_path / "dcase2023t2", tmp_path / "run" / "scores"
    for machine, column in (("fan", 2), ("ToyCar", 3)):
        folder = root / "dev_data" / "raw" / machine / "test"
        folder.mkdir(parents=True)
        names = []
        for i, clip in enumerate(CLIPS):
            name = f"section_00_{clip[0]}_test_{clip[1]}_{i:04d}_m-n_W.wav"
            (folder / name).touch()  # not audio: ground truth comes from names only
            names.append(name)
        order = np.random.default_rng(len(machine)).permutation(len(names))
        write_anomaly_scores(scores, machine, "00", [names[i] for i in order], [CLIPS[i][column] for i in order])
    return root, scores


@pytest.fixture()
def only_evaluate(monkeypatch):
    """Register only this command, so the test does not depend on the other subcommands."""
    monkeypatch.setattr(cli_main, "_COMMAND_MODULES", ("evaluate",))


def test_evaluate_prints_the_table_and_writes_csv(system, only_evaluate, capsys):
    root, scores = system
    assert cli_main.main(["evaluate", str(scores), "--ground-truth", str(root)]) == 0
    out = capsys.readouterr().out
    fan = next(line for line in out.splitlines() if line.startswith("fan"))
    assert fan.split()[2:5] == ["87.50", "62.50", "73.68"]  # AUC_s, AUC_t, pAUC in %
    toycar = next(line for line in out.splitlines() if line.startswith("ToyCar"))
    assert set(toycar.split()[2:]) == {"100.00"}
    assert f"official score: {100 * OFFICIAL:.2f} %" in out
    assert "jackknife" in out

    with open(scores / "evaluation.csv", newline="") as f:
        rows = list(csv.reader(f))
    header = rows[0]
    by_machine = {r[0]: r for r in rows[1:]}
    assert float(by_machine["fan"][header.index("AUC (source)")]) == pytest.approx(7 / 8)
    assert float(by_machine["fan"][header.index("pAUC")]) == pytest.approx(14 / 19)
    assert float(by_machine["official score (dcase2023)"][-1]) == pytest.approx(OFFICIAL, abs=1e-12)
    assert "official score ci95" in by_machine


def test_evaluate_options_and_errors(system, only_evaluate, capsys, tmp_path):
    root, scores = system
    out_csv = tmp_path / "table.csv"
    argv = ["evaluate", str(scores), "--ground-truth", str(root), "--year", "2021", "--machines", "fan",
            "--no-ci", "--out", str(out_csv)]
    assert cli_main.main(argv) == 0
    out = capsys.readouterr().out
    assert "ToyCar" not in out and "jackknife" not in out
    assert f"official score: {100 * 4 / (1 + 2 + 1 + 19 / 14):.2f} %" in out  # 2021: domain-only
    assert out_csv.is_file() and not (scores / "evaluation.csv").exists()

    (scores / "anomaly_score_ToyCar_section_00_test.csv").unlink()
    assert cli_main.main(["evaluate", str(scores), "--ground-truth", str(root)]) == 2
    err = capsys.readouterr().err
    assert "asdlab evaluate: error: no anomaly scores for machine 'ToyCar' section 00" in err
    assert "anomaly_score_ToyCar_section_00_test.csv" in err


def test_evaluate_is_registered_in_the_full_cli():
    for name in cli_main._COMMAND_MODULES:
        if importlib.util.find_spec(f"asdlab.cli.{name}") is None:
            pytest.skip(f"asdlab.cli.{name} is not written yet")
    help_text = cli_main.build_parser().format_help()
    assert "evaluate" in help_text
