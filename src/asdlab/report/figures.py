"""Report figures: ROC curves per machine and domain, score histograms, training curves.

ROC clip sets follow DCASE.md "Official metric": a domain's normals plus all anomalies of both
domains. Figures are `matplotlib.figure.Figure` objects on the Agg canvas (no pyplot state);
matplotlib is imported only when a figure is drawn (`pip install 'asdlab[report]'`).
"""

from __future__ import annotations

import csv
import importlib
import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray
from sklearn.metrics import roc_curve

from asdlab._io import atomic_path
from asdlab.errors import ConfigError, DataError
from asdlab.metrics.dcase import MAX_FPR, SectionScores, auc_score, pauc_score

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "require_matplotlib",
    "roc_figure",
    "histogram_figure",
    "TrainingLog",
    "read_training_log",
    "training_figure",
    "save_figure",
]

logger = logging.getLogger(__name__)

_PANEL_IN = (3.5, 4.0)  # inches per machine panel (legend below the axes): four fit a 1400 px page at 100 dpi
_CURVE_PANEL_IN = (3.5, 3.0)
_MAX_COLUMNS = 4
_DPI = 100
_DOMAIN_COLOURS = {"source": "tab:blue", "target": "tab:orange", "all clips": "0.45"}
_LOG_RATIO = 10.0  # positive scores spanning more than this factor get a log-scaled histogram
_FEW_POINTS = 30  # training curves with fewer rows get markers, so one or two points still show


def require_matplotlib() -> Any:
    """Import matplotlib (Agg canvas) or say how to install it.

    Returns:
        The `matplotlib` module.

    Raises:
        ConfigError: matplotlib is not installed.
    """
    try:
        matplotlib = importlib.import_module("matplotlib")
        importlib.import_module("matplotlib.backends.backend_agg")
        importlib.import_module("matplotlib.figure")
    except ImportError as error:
        raise ConfigError(
            f"the report needs matplotlib, which is not installed ({error}): pip install 'asdlab[report]'"
        ) from None
    return matplotlib


def _new_figure(width_in: float, height_in: float) -> Figure:
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width_in, height_in), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(figure)  # attaches itself: savefig renders with Agg, whatever pyplot's backend is
    return figure


def _panel_grid(n: int, title: str | None, *, panel_in: tuple[float, float] = _PANEL_IN) -> tuple[Figure, list[Axes]]:
    columns = max(1, min(n, _MAX_COLUMNS))
    rows = max(1, math.ceil(n / columns))
    figure = _new_figure(panel_in[0] * columns, panel_in[1] * rows + (0.35 if title else 0.0))
    axes = figure.subplots(rows, columns, squeeze=False).ravel().tolist()
    for unused in axes[n:]:
        unused.set_visible(False)
    if title:
        figure.suptitle(title, fontsize="large")
    return figure, axes[:n]


def _log_axis(ax: Axes) -> None:
    """Log x axis labelled at 1-2-5 steps as plain numbers (default minor labels overlap)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:.3g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _legend_below(ax: Axes) -> None:
    """Legend under the axes, where it can never hide a curve or a bar."""
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), fontsize="small", frameon=False)


def _percent(value: float) -> str:
    return f"{100 * value:.1f} %"


def _panel_title(section: SectionScores) -> str:
    return f"{section.machine} (section {section.section})"


def roc_figure(sections: Sequence[SectionScores], *, title: str | None = None, max_fpr: float = MAX_FPR) -> Figure:
    """ROC curves, one panel per (machine, section), one line per domain.

    A domain's curve uses that domain's normal clips plus every anomaly of the section, the clips
    of the official AUC_source/AUC_target; its legend shows that AUC. A grey line shows all clips
    with their AUC and pAUC (FPR <= `max_fpr`, McClish-standardised as in the official metric).
    Sections without domains (2020 data) get the all-clips line only.

    Args:
        sections: aligned clips from `asdlab.metrics.align_scores`.
        title: figure title.
        max_fpr: pAUC's false-positive-rate limit, drawn as a dotted vertical line.

    Raises:
        DataError: no sections, or a section without both normal and anomalous clips.
    """
    if not sections:
        raise DataError("ROC figure: no sections to draw")
    figure, axes = _panel_grid(len(sections), title)
    for ax, section in zip(axes, sections):
        y = np.asarray(section.y_true, dtype=np.int64)
        s = np.asarray(section.y_score, dtype=np.float64)
        if not 0 < int(y.sum()) < y.size:
            raise DataError(f"ROC figure: {_panel_title(section)} needs both normal and anomalous clips")
        curves: list[tuple[str, NDArray[np.bool_], str]] = []
        if section.domains is not None:
            d = np.asarray(section.domains)
            for name, index in (("source", 0), ("target", 1)):
                clips = (d == index) | (y == 1)  # the evaluator's y_true_auc for this domain
                if np.any(clips & (y == 0)):
                    curves.append((name, clips, f"{name}: AUC {_percent(auc_score(y[clips], s[clips]))}"))
        everything = np.ones(y.size, dtype=bool)
        curves.append((
            "all clips", everything,
            f"all clips: AUC {_percent(auc_score(y, s))}, pAUC {_percent(pauc_score(y, s, max_fpr=max_fpr))}",
        ))
        for name, clips, label in curves:
            fpr, tpr, _ = roc_curve(y[clips], s[clips])
            width, style = (1.2, "--") if name == "all clips" else (2.0, "-")
            ax.plot(fpr, tpr, style, color=_DOMAIN_COLOURS[name], linewidth=width, label=label, gid=f"roc-{name}")
        ax.plot([0, 1], [0, 1], ":", color="0.7", linewidth=1.0, gid="chance")
        ax.axvline(max_fpr, color="0.6", linestyle=":", linewidth=1.0, gid="max-fpr")
        ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="false positive rate", ylabel="true positive rate")
        ax.set_box_aspect(1)  # square ROC panels; unlike set_aspect it lets constrained layout place the legend
        ax.set_title(_panel_title(section), fontsize="medium")
        _legend_below(ax)
        ax.grid(alpha=0.25)
    return figure


def histogram_figure(
    sections: Sequence[SectionScores],
    thresholds: Mapping[tuple[str, str], float] | None = None,
    *,
    title: str | None = None,
    bins: int = 30,
) -> Figure:
    """Histograms of test scores, normal vs anomalous, one panel per (machine, section).

    Args:
        sections: aligned clips from `asdlab.metrics.align_scores`.
        thresholds: decision threshold per (machine, section), on the scale of the scores; a
            section without one gets no threshold line (it is never guessed from decisions).
        title: figure title.
        bins: bins shared by both histograms of a panel.

    Raises:
        DataError: no sections.
    """
    if not sections:
        raise DataError("histogram figure: no sections to draw")
    thresholds = thresholds or {}
    figure, axes = _panel_grid(len(sections), title)
    for ax, section in zip(axes, sections):
        y = np.asarray(section.y_true, dtype=np.int64)
        s = np.asarray(section.y_score, dtype=np.float64)
        threshold = thresholds.get((section.machine, section.section))
        low, high = float(s.min()), float(s.max())
        if threshold is not None:
            low, high = min(low, threshold), max(high, threshold)
        if high <= low:  # every score equal: give the bins some width
            low, high = low - 0.5, high + 0.5
        # Distance scores (kNN) are positive with a long tail: log bins keep the bulk readable.
        log_x = low > 0 and high / low > _LOG_RATIO
        edges = np.geomspace(low, high, bins + 1) if log_x else np.linspace(low, high, bins + 1)
        for label, mask, colour in (("normal", y == 0, "tab:blue"), ("anomalous", y == 1, "tab:red")):
            ax.hist(s[mask], bins=edges, color=colour, alpha=0.45, label=f"{label} (n={int(mask.sum())})",
                    gid=f"hist-{label}")
            ax.hist(s[mask], bins=edges, color=colour, histtype="step", linewidth=1.2)
        if threshold is not None:
            ax.axvline(threshold, color="black", linestyle="--", linewidth=1.5, label=f"threshold {threshold:.4g}",
                       gid="threshold")
        else:
            ax.text(0.02, 0.97, "threshold not saved", transform=ax.transAxes, va="top", fontsize="small",
                    color="0.4")
        ax.set(xlabel="anomaly score" + (" (log scale)" if log_x else ""), ylabel="clips")
        if log_x:
            _log_axis(ax)
        ax.set_title(_panel_title(section), fontsize="medium")
        _legend_below(ax)
        ax.grid(alpha=0.25)
    return figure


@dataclass(frozen=True)
class TrainingLog:
    """The numeric columns of a training-log CSV.

    Attributes:
        path: the file read.
        x_name: "step", or "row" when the file has no `step` column.
        x: shape (R,), the step (or row number) of each row.
        columns: name -> shape (R,) float64 values, NaN where a row left the cell empty.
    """

    path: Path
    x_name: str
    x: NDArray[np.float64]
    columns: dict[str, NDArray[np.float64]]


def _as_number(cell: str) -> float | None:
    """float of a cell, NaN for an empty one, None when the cell is not a number."""
    cell = cell.strip()
    if not cell:
        return math.nan
    try:
        return float(cell)
    except ValueError:
        return None


def read_training_log(path: str | os.PathLike) -> TrainingLog:
    """Read a training-log CSV with a header (`step`, `loss`, `lr`, ...); keep its numeric columns.

    A column with any non-numeric cell, or with no value at all, is skipped; empty cells are NaN
    (loggers leave them empty on rows where a metric was not logged). Without a `step` column
    the row number is used.

    Raises:
        DataError: the file is missing, unreadable or has no header.
    """
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except OSError as error:
        raise DataError(f"{path}: cannot read the training log: {error}") from None
    if not rows or not any(cell.strip() for cell in rows[0]):
        raise DataError(f"{path}: training log has no header line (expected e.g. 'step,loss,lr')")
    header = [cell.strip() for cell in rows[0]]
    body = [row for row in rows[1:] if any(cell.strip() for cell in row)]
    numeric: dict[str, NDArray[np.float64]] = {}
    for index, name in enumerate(header):
        if not name or name in numeric:
            continue
        values = [_as_number(row[index]) if index < len(row) else math.nan for row in body]
        if any(v is None for v in values):
            logger.info("%s: column %r is not numeric; not plotted", path, name)
            continue
        array = np.asarray(values, dtype=np.float64)
        if body and np.isnan(array).all():
            continue
        numeric[name] = array
    if "step" in numeric:
        x_name, x = "step", numeric.pop("step")
    else:
        x_name, x = "row", np.arange(1, len(body) + 1, dtype=np.float64)
    return TrainingLog(path=path, x_name=x_name, x=x, columns=numeric)


def _is_loss(name: str) -> bool:
    return "loss" in name.lower()


def _is_lr(name: str) -> bool:
    lowered = name.lower()
    return lowered == "lr" or lowered.startswith("lr_") or lowered.endswith("_lr") or "learning_rate" in lowered


def training_figure(log: TrainingLog | str | os.PathLike, *, title: str | None = None) -> Figure | None:
    """Training curves: every loss column on one panel, learning rates on another, then one panel
    per other numeric column (EMA decay, throughput, ...), all against the step.

    Args:
        log: a `TrainingLog` or the CSV to read with `read_training_log`.
        title: figure title (default: the file name).

    Returns:
        The figure, or None when the log has no rows or no numeric column to draw.

    Raises:
        DataError: the CSV cannot be read.
    """
    if not isinstance(log, TrainingLog):
        log = read_training_log(log)
    if log.x.size == 0 or not log.columns:
        return None
    losses = [n for n in log.columns if _is_loss(n)]
    rates = [n for n in log.columns if _is_lr(n) and n not in losses]
    others = [n for n in log.columns if n not in losses and n not in rates]
    panels: list[tuple[list[str], str]] = []
    if losses:
        panels.append((losses, "loss"))
    if rates:
        panels.append((rates, "learning rate"))
    panels.extend(([name], name) for name in others)
    figure, axes = _panel_grid(len(panels), title if title is not None else log.path.name, panel_in=_CURVE_PANEL_IN)
    marker = "o" if log.x.size < _FEW_POINTS else None
    for ax, (names, ylabel) in zip(axes, panels):
        for name in names:
            values = log.columns[name]
            kept = ~np.isnan(values) & ~np.isnan(log.x)
            ax.plot(log.x[kept], values[kept], marker=marker, markersize=3, linewidth=1.4, label=name,
                    gid=f"curve-{name}")
        if ylabel == "learning rate":
            positive = np.concatenate([log.columns[n][~np.isnan(log.columns[n])] for n in names])
            if positive.size and (positive > 0).all() and positive.max() > 10 * positive.min():
                ax.set_yscale("log")
        ax.set(xlabel=log.x_name, ylabel=ylabel)
        ax.set_title(", ".join(names) if len(names) <= 3 else ylabel, fontsize="medium")
        if len(names) > 1:
            ax.legend(fontsize="small", framealpha=0.9)
        ax.grid(alpha=0.25)
    return figure


def save_figure(figure: Figure, path: str | os.PathLike) -> Path:
    """Write `figure` as PNG atomically (temp file, then rename); returns the path."""
    path = Path(path)
    with atomic_path(path, suffix=".png") as tmp:
        figure.savefig(tmp, format="png", dpi=_DPI, bbox_inches="tight", pad_inches=0.15)
    return path
