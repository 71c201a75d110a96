"""`asdlab pseudo-label` through the real entry point: EAT mean-pooled embeddings, automatic K, printed summary."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from asdlab.cli import main as cli_main
from asdlab.data.synth import generate_dataset
from asdlab.pseudo.files import read_pseudo_attributes


@pytest.fixture(autouse=True)
def _only_pseudo_label(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "pseudo_label" in cli_main._COMMAND_MODULES
    monkeypatch.setattr(cli_main, "_COMMAND_MODULES", ("pseudo_label",))  # independent of sibling commands


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth")
    generate_dataset(root, machines=["SynFan", "SynPump"], hide_attributes=1, train_source=12, train_target=2, test_per_group=1,
                     duration_s=1.0, seed=2)
    return root


def test_eat_tiny_auto_k_with_hidden_machine(dataset, tmp_path, capsys):
    out = tmp_path / "pseudo"
    argv = ["pseudo-label", str(dataset), "--out", str(out), "--backbone", "eat-tiny", "--target-frames", "all",
            "--pooling", "mean", "--normalize", "l2", "--rule", "silhouette", "--min-cluster-size", "2",
            "--hide-attributes", "SynFan", "--map", "pca", "--batch-size", "8"]
    assert cli_main.main(argv) == 0
    printed = capsys.readouterr().out
    assert "SynFan section 00: 14 clips ->" in printed and "true K=6, ARI" in printed
    assert "SynPump section 00: 14 clips ->" in printed
    summary = json.loads((out / "clustering.json").read_text())
    assert summary["backbone"]["pooling"] == "mean" and summary["settings"]["normalization"] == "l2"
    assert [g["hidden_by"] for g in summary["groups"]] == ["request", "noAttribute"]
    assert all(2 <= g["choice"]["k"] <= 7 for g in summary["groups"])
    assert len(read_pseudo_attributes(out / "pseudo_attributes.csv")) == 28
    assert (out / "map_SynFan_00.png").is_file()


def test_fixed_k_and_threshold_flags(dataset, tmp_path, capsys):
    base = ["pseudo-label", str(dataset), "--backbone", "logmel-stats", "--map", "none", "--min-cluster-size", "1"]
    assert cli_main.main([*base, "--out", str(tmp_path / "k3"), "--clusters", "3"]) == 0
    assert "(rule fixed: K=3)" in capsys.readouterr().out
    assert cli_main.main([*base, "--out", str(tmp_path / "t0"), "--threshold", "0", "--domains", "together"]) == 0
    assert "SynPump section 00: 14 clips -> 14 pseudo-attributes (rule threshold: K=14)" in capsys.readouterr().out
    # Per domain (the default): the 12 source clips stay apart, the 2 target clips form one cluster of >= 2.
    assert cli_main.main([*base, "--out", str(tmp_path / "t1"), "--threshold", "0"]) == 0
    assert ("SynPump section 00: 14 clips -> 13 pseudo-attributes (rule threshold: K=12) "
            "[source: 12 clips -> 12, target: 2 clips -> 1]") in capsys.readouterr().out


def test_errors_are_reported_not_raised(dataset, tmp_path, capsys):
    argv = ["pseudo-label", str(dataset), "--out", str(tmp_path), "--backbone", "logmel-stats",
            "--hide-attributes", "NoSuchMachine"]
    assert cli_main.main(argv) == 2
    assert "['NoSuchMachine'] not in" in capsys.readouterr().err
