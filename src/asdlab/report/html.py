"""The static HTML report of a run: tables, ROC curves, score histograms, training curves, images.

One `index.html` with relative links to `figures/*.png`, so it works opened as file://. Scores
are evaluated with `asdlab.metrics` (DCASE.md "Official metric"); decision thresholds are read
from the `settings.json` that `score_embeddings` writes and drawn only where saved there.
"""

from __future__ import annotations

import html
import json
import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from asdlab import __version__
from asdlab._io import atomic_write_bytes, atomic_write_text
from asdlab.errors import DataError, EvaluationError
from asdlab.metrics.dcase import EvaluationSummary, MetricMeans, Rule, SectionScores, evaluate
from asdlab.metrics.files import align_scores, find_score_files, load_ground_truth
from asdlab.report.figures import histogram_figure, require_matplotlib, roc_figure, save_figure, training_figure

__all__ = ["ReportSystem", "ReportTable", "ReportImage", "read_thresholds", "write_report"]

logger = logging.getLogger(__name__)

FIGURES_DIR = "figures"
_SETTINGS_FILE = "settings.json"  # asdlab.pipeline.scoring.SETTINGS_FILE; not imported to keep report off pipeline
_METRIC_TITLES = {
    "auc_source": "AUC (source)",
    "auc_target": "AUC (target)",
    "auc": "AUC (all)",
    "pauc": "pAUC",
    "pauc_source": "pAUC (source)",
    "pauc_target": "pAUC (target)",
    "score": "score",
}
_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px auto; max-width: 1480px;
       padding: 0 16px; color: #1d1d1f; line-height: 1.45; }
h1 { font-size: 1.7em; margin-bottom: 0.2em; } h2 { border-bottom: 2px solid #ddd; padding-bottom: 4px; margin-top: 2em; }
h3 { margin-top: 1.4em; } .meta, .caption { color: #666; font-size: 0.9em; }
.notes { white-space: pre-wrap; background: #f6f8fa; border-left: 4px solid #8aa; padding: 8px 12px; }
.warning { background: #fff4e5; border-left: 4px solid #e69500; padding: 6px 12px; }
table { border-collapse: collapse; margin: 8px 0 4px; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 4px 10px; } th { background: #f0f2f5; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; } tr.mean td { background: #fafafa; font-style: italic; }
figure { margin: 10px 0 18px; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9em; }
"""


@dataclass(frozen=True)
class ReportSystem:
    """A scored system: its scores folder (as `score_embeddings` writes it) and its ground truth.

    Attributes:
        name: shown as the section heading.
        scores_dir: folder of `anomaly_score_*` CSVs (+ `settings.json` with the thresholds).
        ground_truth_root: dataset root or evaluator folder, as `asdlab.metrics.load_ground_truth` takes.
        rule: which year's official metric to apply.
    """

    name: str
    scores_dir: str | os.PathLike
    ground_truth_root: str | os.PathLike
    rule: Rule = "dcase2023"


@dataclass(frozen=True)
class ReportTable:
    """An already-computed table: a title, column names and rows of cells (floats shown to 4 digits)."""

    title: str
    columns: Sequence[str]
    rows: Sequence[Sequence[object]] = field(default_factory=tuple)


@dataclass(frozen=True)
class ReportImage:
    """An existing image (e.g. a t-SNE embedding map) to copy into the report."""

    title: str
    path: str | os.PathLike


def read_thresholds(scores_dir: str | os.PathLike) -> dict[tuple[str, str], float]:
    """Decision thresholds saved in `<scores_dir>/settings.json` (key "thresholds", "machine/section").

    Returns:
        (machine, section) -> threshold on the scale of the score files; empty when the folder
        has no settings file or the file saves no thresholds (e.g. ensembles).

    Raises:
        DataError: the settings file is not valid JSON or a threshold is not a number.
    """
    path = Path(scores_dir) / _SETTINGS_FILE
    if not path.is_file():
        return {}
    try:
        saved = json.loads(path.read_text(encoding="utf-8")).get("thresholds") or {}
    except (OSError, json.JSONDecodeError, AttributeError) as error:
        raise DataError(f"{path}: cannot read the saved settings: {error}") from None
    thresholds = {}
    for key, value in saved.items():
        machine, _, section = str(key).rpartition("/")
        if not machine or isinstance(value, bool) or not isinstance(value, (int, float)):
            raise DataError(f"{path}: thresholds[{key!r}] = {value!r}; expected 'machine/section': number")
        thresholds[(machine, section)] = float(value)
    return thresholds


def _settings_line(scores_dir: Path) -> str | None:
    path = scores_dir / _SETTINGS_FILE
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    if not isinstance(saved, dict):
        return None
    parts = []
    if saved.get("backend"):
        params = ", ".join(f"{k}={v}" for k, v in (saved.get("params") or {}).items())
        parts.append(f"backend {saved['backend']}" + (f" ({params})" if params else ""))
    if saved.get("stage") == "ensemble":
        parts.append(f"ensemble of {len(saved.get('systems') or {})} systems")
    for key, what in (("normalization", "normalisation"), ("threshold", "threshold")):
        if saved.get(key):
            parts.append(f"{what} {saved[key]}")
    return ", ".join(parts) or None


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")[:60] or "item"


def _cell(value: object) -> str:
    if isinstance(value, float):
        return html.escape(format(value, ".4g"))
    return html.escape("" if value is None else str(value))


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _table_html(columns: Sequence[str], rows: Sequence[Sequence[object]], *, mean_rows: int = 0) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = []
    for i, row in enumerate(rows):
        cls = ' class="mean"' if i >= len(rows) - mean_rows else ""
        cells = "".join(
            f'<td class="num">{_cell(v)}</td>' if _is_number(v) else f"<td>{_cell(v)}</td>" for v in row
        )
        body.append(f"<tr{cls}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}"


def _summary_html(summary: EvaluationSummary) -> str:
    metrics = [m for m in _METRIC_TITLES if any(getattr(r, m) is not None for r in summary.rows)]
    columns = ["machine", "section", "clips", *(_METRIC_TITLES[m] + " %" for m in metrics)]
    rows: list[list[object]] = [
        [r.machine, r.section, r.n_clips, *(_percent(getattr(r, m)) for m in metrics)] for r in summary.rows
    ]
    means: tuple[tuple[str, MetricMeans], ...] = (
        ("arithmetic mean", summary.arithmetic_mean), ("harmonic mean", summary.harmonic_mean)
    )
    rows += [[name, "", "", *(_percent(getattr(m, k)) for k in metrics)] for name, m in means]
    score = f"official score ({summary.rule}): <b>{_percent(summary.official_score)} %</b>"
    if summary.jackknife is not None:
        score += (f" ± {100 * summary.jackknife.half_width:.4f} (95 % jackknife CI over "
                  f"{summary.jackknife.auc.n} clips)")
    caption = (f'<p class="caption">AUC (domain): that domain\'s normal clips plus all anomalies; pAUC: all clips, '
               f"FPR ≤ {summary.max_fpr:g} (McClish-standardised), as the DCASE evaluator computes them.</p>")
    return _table_html(columns, rows, mean_rows=2) + f"<p>{score}</p>" + caption


def _figure_html(src: str, title: str, caption: str = "") -> str:
    text = html.escape(title) + (f" — {html.escape(caption)}" if caption else "")
    return (f'<figure><img src="{html.escape(src)}" alt="{html.escape(title)}">'
            f"<figcaption>{text}</figcaption></figure>")


@dataclass
class _Evaluated:
    system: ReportSystem
    sections: list[SectionScores]
    summary: EvaluationSummary
    unscored: list[str]


def _evaluate_system(system: ReportSystem) -> _Evaluated:
    scores_dir = Path(system.scores_dir)
    truth = load_ground_truth(system.ground_truth_root)
    scored = {machine for machine, _ in find_score_files(scores_dir)}
    known = {machine for machine, _ in truth}
    machines = sorted(scored & known)
    if not machines:
        raise EvaluationError(
            f"system {system.name!r}: no score file in {scores_dir} matches a machine of the ground truth "
            f"in {system.ground_truth_root} (it has {sorted(known)})"
        )
    sections = align_scores(scores_dir, truth, machines=machines)
    summary = evaluate(sections, rule=system.rule, confidence_interval=True)
    return _Evaluated(system, sections, summary, sorted(known - scored))


def _system_html(item: _Evaluated, index: int, figures_dir: Path) -> str:
    system = item.system
    scores_dir = Path(system.scores_dir)
    stem = f"{index:02d}-{_slug(system.name)}"
    parts = [f'<h2 id="system-{index}">{html.escape(system.name)}</h2>']
    meta = f"scores: {scores_dir} · ground truth: {system.ground_truth_root}"
    settings = _settings_line(scores_dir)
    parts.append(f'<p class="meta">{html.escape(meta)}' + (f"<br>{html.escape(settings)}" if settings else "") + "</p>")
    if item.unscored:
        parts.append(
            f'<p class="warning">Not scored, left out of this evaluation: {html.escape(", ".join(item.unscored))}. '
            "The DCASE evaluator would drop the whole system.</p>"
        )
    parts.append(_summary_html(item.summary))

    roc_name = f"{stem}-roc.png"
    save_figure(roc_figure(item.sections, max_fpr=item.summary.max_fpr), figures_dir / roc_name)
    parts.append("<h3>ROC curves</h3>")
    parts.append(_figure_html(f"{FIGURES_DIR}/{roc_name}", f"{system.name}: ROC per machine and domain",
                              "one line per domain (its normals plus all anomalies); dashed grey: all clips; "
                              f"dotted vertical: the pAUC range FPR ≤ {item.summary.max_fpr:g}"))

    thresholds = read_thresholds(scores_dir)
    known = sum((s.machine, s.section) in thresholds for s in item.sections)
    hist_name = f"{stem}-histograms.png"
    save_figure(histogram_figure(item.sections, thresholds), figures_dir / hist_name)
    if known == len(item.sections):
        note = "dashed line: the decision threshold saved in settings.json"
    elif known:
        note = f"decision threshold saved for {known} of {len(item.sections)} machines (settings.json)"
    else:
        note = "no decision threshold saved with these scores, so none is drawn"
    parts.append("<h3>Score histograms</h3>")
    parts.append(_figure_html(f"{FIGURES_DIR}/{hist_name}", f"{system.name}: test scores, normal vs anomalous", note))
    return "\n".join(parts)


def write_report(
    out_dir: str | os.PathLike,
    *,
    title: str,
    systems: Sequence[ReportSystem],
    tables: Sequence[ReportTable] = (),
    training_logs: Mapping[str, str | os.PathLike] | None = None,
    images: Sequence[ReportImage] = (),
    notes: str = "",
) -> Path:
    """Write `<out_dir>/index.html` and its `figures/*.png`, every file atomically, the page last.

    The page holds the title and notes, the given tables, an overview of the systems' official
    scores, then per system its official score table, ROC grid and histogram grid, then one
    training-curve figure per log and the copied images.

    Args:
        out_dir: the report folder (created if needed).
        title: page title.
        systems: scored systems, each evaluated with the official metric.
        tables: already-computed tables shown first.
        training_logs: name -> training-log CSV (`step` plus numeric columns).
        images: existing images copied into `figures/`.
        notes: free text shown under the title.

    Returns:
        The path of `index.html`.

    Raises:
        ConfigError: matplotlib is not installed.
        EvaluationError: a system's scores do not line up with its ground truth.
        DataError: a training log or image cannot be read.
    """
    require_matplotlib()
    out_dir = Path(out_dir)
    figures_dir = out_dir / FIGURES_DIR
    evaluated = [_evaluate_system(s) for s in systems]
    for image in images:
        if not Path(image.path).is_file():
            raise DataError(f"report image {image.title!r}: {image.path} not found")

    body = [f"<h1>{html.escape(title)}</h1>",
            f'<p class="meta">asdlab {html.escape(__version__)} · values in % unless noted</p>']
    if notes:
        body.append(f'<div class="notes">{html.escape(notes)}</div>')
    for table in tables:
        body.append(f"<h2>{html.escape(table.title)}</h2>")
        body.append(_table_html(table.columns, table.rows))
    if evaluated:
        body.append("<h2>Systems</h2>")
        rows = []
        for i, item in enumerate(evaluated):
            s = item.summary
            ci = "" if s.jackknife is None else f"{100 * s.jackknife.half_width:.4f}"
            name = f'<a href="#system-{i}">{html.escape(item.system.name)}</a>'
            rows.append(
                f"<tr><td>{name}</td>" + "".join(f'<td class="num">{c}</td>' for c in (
                    _percent(s.official_score), ci, _percent(s.harmonic_mean.auc_source),
                    _percent(s.harmonic_mean.auc_target), _percent(s.harmonic_mean.pauc)))
                + f"<td>{html.escape(', '.join(sorted({x.machine for x in item.sections})))}</td></tr>"
            )
        head = "".join(f"<th>{c}</th>" for c in ("system", "official score %", "± 95 % CI", "hmean AUC (source) %",
                                                  "hmean AUC (target) %", "hmean pAUC %", "machines"))
        body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>")
    for i, item in enumerate(evaluated):
        body.append(_system_html(item, i, figures_dir))

    if training_logs:
        body.append("<h2>Training curves</h2>")
        for i, (name, path) in enumerate(training_logs.items()):
            figure = training_figure(path, title=name)
            if figure is None:
                body.append(f"<p><b>{html.escape(name)}</b>: {html.escape(str(path))} has no rows yet.</p>")
                continue
            file_name = f"train-{i:02d}-{_slug(name)}.png"
            save_figure(figure, figures_dir / file_name)
            body.append(_figure_html(f"{FIGURES_DIR}/{file_name}", name, str(path)))

    if images:
        body.append("<h2>Images</h2>")
        for i, image in enumerate(images):
            source = Path(image.path)
            file_name = f"image-{i:02d}-{_slug(source.stem)}{source.suffix.lower() or '.png'}"
            atomic_write_bytes(figures_dir / file_name, source.read_bytes())
            body.append(_figure_html(f"{FIGURES_DIR}/{file_name}", image.title))

    page = (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{html.escape(title)}</title>\n'
            f"<style>{_CSS}</style>\n</head>\n<body>\n" + "\n".join(body) + "\n</body>\n</html>\n")
    index = out_dir / "index.html"
    atomic_write_text(index, page)
    logger.info("report written to %s", index)
    return index
