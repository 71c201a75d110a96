"""`asdlab report` end to end: synthetic dataset -> logmel-stats embeddings -> `asdlab score` -> HTML report."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from threadpoolctl import threadpool_limits

from asdlab.cli import main as cli_main
from asdlab.data.index import index_dataset
from asdlab.data.synth import generate_dataset
from asdlab.embeddings.extract import extract_embeddings
from asdlab.encoders.registry import create_encoder


@pytest.fixture()
def commands(monkeypatch):
    """Register only these commands, so the test does not depend on the other subcommands."""
    monkeypatch.setattr(cli_main, "_COMMAND_MODULES", ("score", "report"))
    with threadpool_limits(1):
        yield


def test_score_then_report(tmp_path, commands, capsys):
    root = tmp_path / "data"
    generate_dataset(root, machines=2, train_source=12, train_target=3, test_per_group=4, duration_s=0.5, seed=5)
    records = [r for r in index_dataset(root) if r.split in ("train", "test")]
    extract_embeddings(records, create_encoder("logmel-stats")).table.save(tmp_path / "embeddings.npz")
    scores = tmp_path / "scores"
    assert cli_main.main(["score", str(tmp_path / "embeddings.npz"), "--out", str(scores), "--no-ci"]) == 0
    log = tmp_path / "train.csv"
    log.write_text("step,loss,lr,note\n1,0.9,0.001,warm\n2,0.7,0.002,x\n3,0.6,0.001,y\n")
    capsys.readouterr()

    out = tmp_path / "report"
    assert cli_main.main(["report", "--scores", f"knn={scores}", "--ground-truth", str(root), "--out", str(out),
                          "--log", f"toy run={log}", "--title", "CLI report"]) == 0
    assert f"report: 1 system(s), 1 training log(s), 0 image(s) -> {out / 'index.html'}" in capsys.readouterr().out
    page = (out / "index.html").read_text()
    sources = re.findall(r'<img src="([^"]+)"', page)
    assert [Path(s).name for s in sources] == ["00-knn-roc.png", "00-knn-histograms.png", "train-00-toy-run.png"]
    assert all((out / s).stat().st_size > 1000 for s in sources)
    assert "dashed line: the decision threshold saved in settings.json" in page
    assert page.count("<tr><td>Syn") == 2  # one table row per machine


def test_report_rejects_a_malformed_pair(commands, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli_main.main(["report", "--scores", "no-equals-sign", "--ground-truth", ".", "--out", "x"])
    assert exit_info.value.code == 2
    assert "expected NAME=PATH, got 'no-equals-sign'" in capsys.readouterr().err
