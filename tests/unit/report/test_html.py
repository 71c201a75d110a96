"""The HTML report on hand-made score files: every figure linked and present, official numbers, thresholds."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from asdlab.errors import ConfigError, DataError, EvaluationError
from asdlab.metrics import evaluate_scores_dir, write_anomaly_scores, write_decisions, write_ground_truth
from asdlab.report import figures
from asdlab.report.html import ReportImage, ReportSystem, ReportTable, read_thresholds, write_report

MACHINES = ("fan", "pump")


def _names(n_per_group: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    names, labels, domains = [], [], []
    for domain in ("source", "target"):
        for label in ("normal", "anomaly"):
            for i in range(n_per_group):
                names.append(f"section_00_{domain}_test_{label}_{i:04d}_a_1.wav")
                labels.append(int(label == "anomaly"))
                domains.append(int(domain == "target"))
    return names, np.array(labels), np.array(domains)


@pytest.fixture()
def system(tmp_path: Path) -> tuple[Path, Path]:
    """Ground truth for fan, pump and gear; scores (+ thresholds for fan only) for fan and pump."""
    truth, scores = tmp_path / "truth", tmp_path / "scores"
    names, labels, domains = _names(6)
    rng = np.random.default_rng(0)
    for machine in (*MACHINES, "gear"):
        write_ground_truth(truth, machine, "00", names, labels, domains)
    for machine in MACHINES:
        s = rng.normal(size=labels.size) + labels
        write_anomaly_scores(scores, machine, "00", names, s)
        write_decisions(scores, machine, "00", names, (s > 0.5).astype(int))
    (scores / "settings.json").write_text(json.dumps({
        "stage": "score", "backend": "knn", "params": {"n_neighbors": 1}, "normalization": "none",
        "threshold": "gamma", "thresholds": {"fan/00": 0.5},
    }))
    return scores, truth


def _sources(page: str) -> list[str]:
    return re.findall(r'<img src="([^"]+)"', page)


def test_report_links_every_figure_and_every_figure_exists(system, tmp_path):
    scores, truth = system
    log = tmp_path / "train.csv"
    log.write_text("step,loss,lr\n1,1.0,0.001\n2,0.5,0.001\n")
    empty_log = tmp_path / "empty.csv"
    empty_log.write_text("step,loss\n")
    image = tmp_path / "tsne.png"
    figures.save_figure(figures.training_figure(log), image)
    out = tmp_path / "report"

    index = write_report(
        out, title="Run <1>", systems=[ReportSystem("kNN & co", scores, truth)],
        tables=[ReportTable("Results", ["system", "score"], [["a", 0.61234567], ["b", None]])],
        training_logs={"pretrain": log, "finetune": empty_log}, images=[ReportImage("t-SNE map", image)],
        notes="first <b>run</b>",
    )
    assert index == out / "index.html"
    page = index.read_text()
    sources = _sources(page)
    assert all(not src.startswith(("/", "http", "file:")) for src in sources)  # relative: works as file://
    assert all((out / src).is_file() for src in sources)
    assert sorted(out / src for src in sources) == sorted((out / "figures").iterdir())
    assert [Path(s).name for s in sources] == [
        "00-kNN-co-roc.png", "00-kNN-co-histograms.png", "train-00-pretrain.png", "image-00-tsne.png"]
    assert (out / "figures" / "image-00-tsne.png").read_bytes() == image.read_bytes()
    assert "finetune</b>: " in page and "has no rows yet" in page
    assert "<title>Run &lt;1&gt;</title>" in page and "first &lt;b&gt;run&lt;/b&gt;" in page
    assert '<td class="num">0.6123</td>' in page
    assert "http" not in page and "<script" not in page
    assert not [p for p in out.rglob("*") if p.name.startswith(".")]  # no temporary files left


def test_report_numbers_are_the_official_metric(system, tmp_path):
    scores, truth = system
    page = write_report(tmp_path / "r", title="t", systems=[ReportSystem("s", scores, truth)]).read_text()
    summary = evaluate_scores_dir(scores, truth, machines=list(MACHINES))
    assert f"<b>{100 * summary.official_score:.2f} %</b>" in page
    assert f"± {100 * summary.jackknife.half_width:.4f}" in page
    for row in summary.rows:
        cells = re.search(rf"<tr><td>{row.machine}</td>(.*?)</tr>", page).group(1)
        assert f">{100 * row.auc_source:.2f}<" in cells and f">{100 * row.auc_target:.2f}<" in cells
        assert f">{100 * row.pauc:.2f}<" in cells
    assert "Not scored, left out of this evaluation: gear" in page
    assert "decision threshold saved for 1 of 2 machines" in page
    assert "backend knn (n_neighbors=1), normalisation none, threshold gamma" in page


def test_no_threshold_line_without_saved_thresholds(system, tmp_path):
    scores, truth = system
    (scores / "settings.json").unlink()
    assert read_thresholds(scores) == {}
    page = write_report(tmp_path / "r", title="t", systems=[ReportSystem("s", scores, truth)]).read_text()
    assert "no decision threshold saved with these scores, so none is drawn" in page


def test_read_thresholds(system):
    scores, _ = system
    assert read_thresholds(scores) == {("fan", "00"): 0.5}
    (scores / "settings.json").write_text(json.dumps({"thresholds": {"fan/00": "high"}}))
    with pytest.raises(DataError, match=r"settings.json: thresholds\['fan/00'\]"):
        read_thresholds(scores)
    (scores / "settings.json").write_text("{not json")
    with pytest.raises(DataError, match="settings.json: cannot read"):
        read_thresholds(scores)


def test_report_errors_name_the_problem(system, tmp_path):
    scores, truth = system
    empty = tmp_path / "empty_scores"
    empty.mkdir()
    with pytest.raises(EvaluationError, match="no score file in .*empty_scores matches a machine"):
        write_report(tmp_path / "r", title="t", systems=[ReportSystem("s", empty, truth)])
    with pytest.raises(DataError, match="report image 'map': .*nope.png not found"):
        write_report(tmp_path / "r", title="t", systems=[], images=[ReportImage("map", tmp_path / "nope.png")])
    assert not (tmp_path / "r" / "index.html").exists()


def test_missing_matplotlib_fails_before_writing(system, tmp_path, monkeypatch):
    scores, truth = system

    real = figures.importlib.import_module

    def without_matplotlib(name, *args, **kwargs):
        if name.split(".")[0] == "matplotlib":
            raise ImportError(f"No module named {name!r}")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(figures.importlib, "import_module", without_matplotlib)
    with pytest.raises(ConfigError, match=r"asdlab\[report\]"):
        write_report(tmp_path / "r", title="t", systems=[ReportSystem("s", scores, truth)])
    assert not (tmp_path / "r").exists()
