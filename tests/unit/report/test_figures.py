"""Report figures: ROC lines match the official AUCs, thresholds drawn only when known, training logs."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from asdlab.errors import ConfigError, DataError
from asdlab.metrics import SectionScores, evaluate_section
from asdlab.report import figures
from asdlab.report.figures import (
    histogram_figure,
    read_training_log,
    roc_figure,
    save_figure,
    training_figure,
)


def _section(machine: str, seed: int, *, domains: bool = True, shift: float = 1.0) -> SectionScores:
    rng = np.random.default_rng(seed)
    y = np.repeat([0, 1, 0, 1], 12)  # source normal, source anomaly, target normal, target anomaly
    d = np.repeat([0, 0, 1, 1], 12)
    s = rng.normal(size=y.size) + shift * y + 0.5 * d  # target normals score higher: a harder domain
    return SectionScores(machine, "00", y.astype(np.int64), s, d.astype(np.int64) if domains else None)


def _lines(ax) -> dict[str, object]:
    return {line.get_gid(): line for line in ax.get_lines() if line.get_gid()}


def _legend(ax) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_roc_legend_and_curve_area_equal_the_official_domain_aucs():
    sections = [_section("fan", 0), _section("pump", 1, shift=2.0)]
    figure = roc_figure(sections)
    axes = [ax for ax in figure.axes if ax.get_visible()]
    assert len(axes) == 2
    for ax, section in zip(axes, sections):
        result = evaluate_section(section.y_true, section.y_score, section.domains, machine=section.machine)
        legend = _legend(ax)
        assert legend[0] == f"source: AUC {100 * result.auc_source:.1f} %"
        assert legend[1] == f"target: AUC {100 * result.auc_target:.1f} %"
        assert legend[2] == f"all clips: AUC {100 * result.auc:.1f} %, pAUC {100 * result.pauc:.1f} %"
        lines = _lines(ax)
        for domain, expected in (("source", result.auc_source), ("target", result.auc_target), ("all clips", result.auc)):
            fpr, tpr = lines[f"roc-{domain}"].get_data()
            # The drawn curve is the one the metric integrates (domain normals + all anomalies).
            assert np.trapezoid(tpr, fpr) == pytest.approx(expected, abs=1e-12)
        assert lines["max-fpr"].get_xdata()[0] == pytest.approx(0.1)
        assert ax.get_title() == f"{section.machine} (section 00)"


def test_roc_of_a_perfect_system_and_of_data_without_domains():
    perfect = SectionScores("fan", "00", np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.8, 0.9]), np.array([0, 1, 0, 1]))
    ax = roc_figure([perfect]).axes[0]
    assert _legend(ax)[:2] == ["source: AUC 100.0 %", "target: AUC 100.0 %"]
    ax = roc_figure([_section("fan", 0, domains=False)]).axes[0]
    assert [k for k in _lines(ax) if k.startswith("roc-")] == ["roc-all clips"]


def test_roc_rejects_a_section_without_anomalies():
    one_class = SectionScores("fan", "00", np.zeros(4, dtype=np.int64), np.arange(4.0), None)
    with pytest.raises(DataError, match="fan .section 00. needs both normal and anomalous clips"):
        roc_figure([one_class])
    with pytest.raises(DataError, match="no sections"):
        roc_figure([])


def test_histogram_threshold_drawn_only_where_known():
    sections = [_section("fan", 0), _section("pump", 1)]
    figure = histogram_figure(sections, {("fan", "00"): 0.75})
    fan, pump = [ax for ax in figure.axes if ax.get_visible()]
    assert _lines(fan)["threshold"].get_xdata()[0] == 0.75
    assert "threshold 0.75" in _legend(fan)
    assert "threshold" not in _lines(pump)
    assert not any(t.startswith("threshold ") for t in _legend(pump))
    assert any(t.get_text() == "threshold not saved" for t in pump.texts)
    assert _legend(fan)[:2] == ["normal (n=24)", "anomalous (n=24)"]
    # Every clip is in exactly one bar of its histogram.
    counts = sum(p.get_height() for p in fan.patches if p.get_gid() in ("hist-normal", "hist-anomalous"))
    assert counts == 48


def test_histogram_uses_log_bins_for_long_tailed_positive_scores_only():
    y = np.array([0, 0, 0, 1, 1, 1])
    tailed = SectionScores("fan", "00", y, np.array([0.001, 0.002, 0.003, 0.01, 0.05, 0.1]))
    signed = SectionScores("pump", "00", y, np.array([-1.0, 0.0, 0.5, 1.0, 3.0, 9.0]))
    log_ax, linear_ax = histogram_figure([tailed, signed]).axes[:2]
    assert log_ax.get_xscale() == "log"
    assert linear_ax.get_xscale() == "linear"
    constant = SectionScores("gear", "00", y, np.ones(6))
    assert histogram_figure([constant], {("gear", "00"): 1.0}).axes[0].get_xlim()[0] < 1.0


def _write_log(path, text: str):
    path.write_text(text)
    return path


def test_training_log_keeps_numeric_columns_and_empty_cells_as_nan(tmp_path):
    path = _write_log(tmp_path / "log.csv", (
        "step,loss,loss_frame,lr,ema_decay,clips_per_s,phase,unused\n"
        "1,2.0,1.5,0.001,0.9,100,warmup,\n"
        "2,1.5,,0.002,0.91,120,train,\n"
        "3,1.0,0.5,0.001,0.92,110,train,\n"
    ))
    log = read_training_log(path)
    assert log.x_name == "step" and log.x.tolist() == [1, 2, 3]
    assert list(log.columns) == ["loss", "loss_frame", "lr", "ema_decay", "clips_per_s"]
    assert np.isnan(log.columns["loss_frame"][1])

    figure = training_figure(log, title="run")
    axes = [ax for ax in figure.axes if ax.get_visible()]
    assert [ax.get_title() for ax in axes] == ["loss, loss_frame", "lr", "ema_decay", "clips_per_s"]
    lines = _lines(axes[0])
    assert lines["curve-loss_frame"].get_xdata().tolist() == [1, 3]  # the empty cell is skipped
    assert lines["curve-loss"].get_ydata().tolist() == [2.0, 1.5, 1.0]
    assert axes[1].get_ylabel() == "learning rate"


def test_training_log_edge_cases(tmp_path):
    assert training_figure(_write_log(tmp_path / "header.csv", "step,loss,lr\n")) is None
    one = training_figure(_write_log(tmp_path / "one.csv", "step,loss\n5,0.7\n"))
    line = _lines(one.axes[0])["curve-loss"]
    assert line.get_marker() == "o" and line.get_xdata().tolist() == [5]
    no_step = read_training_log(_write_log(tmp_path / "nostep.csv", "loss\n3\n2\n"))
    assert no_step.x_name == "row" and no_step.x.tolist() == [1, 2]
    assert training_figure(_write_log(tmp_path / "text.csv", "step,note\n1,hello\n")) is None
    with pytest.raises(DataError, match="no header"):
        read_training_log(_write_log(tmp_path / "empty.csv", ""))
    with pytest.raises(DataError, match="missing.csv: cannot read"):
        read_training_log(tmp_path / "missing.csv")


def test_save_figure_writes_a_png_atomically(tmp_path):
    path = save_figure(roc_figure([_section("fan", 0)]), tmp_path / "figs" / "roc.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in path.parent.iterdir()] == ["roc.png"]


def test_missing_matplotlib_names_the_extra(monkeypatch):
    real = importlib.import_module

    def without_matplotlib(name, *args, **kwargs):
        if name.split(".")[0] == "matplotlib":
            raise ImportError(f"No module named {name!r}")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(figures.importlib, "import_module", without_matplotlib)
    with pytest.raises(ConfigError, match=r"pip install 'asdlab\[report\]'"):
        roc_figure([_section("fan", 0)])
