"""What an experiment returns and writes: per variant and seed results, the paper's score columns
(Dev / Eval / NoAttr / All), the summary table and `results.csv` (`asdlab.pipeline.experiment`)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from asdlab._io import atomic_write_text
from asdlab.metrics.dcase import EvaluationSummary, official_score

__all__ = ["VariantResult", "ExperimentResult", "COLUMNS", "score_columns", "pseudo_agreement", "summary_rows",
           "format_results_table", "write_results_csv"]

@dataclass(frozen=True)
class VariantResult:
    """One variant at one seed: where its scores are, its evaluation and the pseudo-label agreement."""

    variant: str
    seed: int
    scores_dir: Path
    summary: EvaluationSummary | None
    columns: dict[str, float | None]
    pseudo_agreement: dict[str, dict[str, Any]] = field(default_factory=dict)
    training_logs: dict[str, Path] = field(default_factory=dict)
    maps: tuple[Path, ...] = ()


@dataclass(frozen=True)
class ExperimentResult:
    """Every variant x seed, and the files written."""

    out_dir: Path
    results: tuple[VariantResult, ...]
    table_path: Path
    report_path: Path | None = None


COLUMNS = ("Dev", "Eval", "NoAttr", "All")


def score_columns(summary: EvaluationSummary, *, eval_machines: set[str], no_attribute: set[str]) -> dict[str, float | None]:
    """Official scores (%) over machine subsets: the paper's Dev / Eval / NoAttr / All columns."""
    groups = {
        "Dev": [r for r in summary.rows if r.machine not in eval_machines],
        "Eval": [r for r in summary.rows if r.machine in eval_machines],
        "NoAttr": [r for r in summary.rows if r.machine in no_attribute],
        "All": list(summary.rows),
    }
    return {name: (100 * official_score(rows, rule=summary.rule) if rows else None) for name, rows in groups.items()}


def pseudo_agreement(pseudo_dir: Path | None) -> dict[str, dict[str, Any]]:
    """Per machine/section: chosen K, true K, ARI, NMI from the pseudo stage's clustering.json."""
    if pseudo_dir is None or not (pseudo_dir / "clustering.json").exists():
        return {}
    record = json.loads((pseudo_dir / "clustering.json").read_text())
    out = {}
    for group in record.get("groups", []):
        agreement = group.get("agreement") or {}
        out[f"{group['machine']}/{group['section']}"] = {
            "k": group.get("n_clusters"), "true_k": group.get("true_k"),
            "ari": agreement.get("ari"), "nmi": agreement.get("nmi"),
        }
    return out


def summary_rows(results: Sequence[VariantResult]) -> tuple[list[str], list[list[str | int]]]:
    """Column names and one row per variant: seeds, then (Dev, Eval, NoAttr, All) as mean ± std in %."""
    present = [c for c in COLUMNS if any(r.columns.get(c) is not None for r in results)]
    table = []
    for variant in dict.fromkeys(r.variant for r in results):
        rows = [r for r in results if r.variant == variant]
        cells: list[str | int] = [variant, len(rows)]
        for column in present:
            values = [r.columns[column] for r in rows if r.columns.get(column) is not None]
            if not values:
                cells.append("–")
            elif len(values) == 1:
                cells.append(f"{values[0]:.2f}")
            else:
                cells.append(f"{np.mean(values):.2f} ± {np.std(values, ddof=1):.2f}")
        table.append(cells)
    return ["variant", "seeds", *present], table


def format_results_table(results: Sequence[VariantResult]) -> str:
    """Variants x (Dev, Eval, NoAttr, All) as mean ± std over seeds, in percent (markdown)."""
    columns, rows = summary_rows(results)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def write_results_csv(results: Sequence[VariantResult], path: Path) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["variant", "seed", *COLUMNS, "scores_dir"])
    for r in results:
        writer.writerow([r.variant, r.seed, *("" if r.columns.get(c) is None else f"{r.columns[c]:.4f}" for c in COLUMNS),
                         str(r.scores_dir)])
    atomic_write_text(path, buffer.getvalue())
