"""The official DCASE Task 2 metric: AUC per domain, pAUC, harmonic means, official score (DCASE.md).

Rule "dcase2023" (2022-2025) follows nttcslab/dcase2023_task2_evaluator and its 2024 twin line by
line: sklearn `roc_auc_score` per section, pooled vector [AUC_s] + [AUC_t] + [pAUC] floored at
`sys.float_info.epsilon`, `scipy.stats.hmean`, jackknife over all clips. "dcase2021" follows
y-kawagu/dcase2021_task2_evaluator (domain-only AUC and pAUC); "dcase2020" its 2020 evaluator.py.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats
from sklearn.metrics import roc_auc_score

from asdlab.errors import EvaluationError
from asdlab.metrics.jackknife import JackknifeCI, jackknife_auc_pauc

__all__ = [
    "Rule",
    "MAX_FPR",
    "EPSILON",
    "rule_for_year",
    "auc_score",
    "pauc_score",
    "harmonic_mean",
    "SectionScores",
    "MachineResult",
    "MetricMeans",
    "EvaluationSummary",
    "evaluate_section",
    "official_score",
    "evaluate",
]

# Which year's ranking score: "dcase2020" = arithmetic mean of AUC and pAUC over sections;
# "dcase2021" = harmonic mean of domain-only AUC and pAUC; "dcase2023" = the 2022-2025 rule.
Rule = Literal["dcase2020", "dcase2021", "dcase2023"]

MAX_FPR = 0.1  # the evaluators' MAX_FPR
EPSILON = float(np.finfo(np.float64).eps)  # == sys.float_info.epsilon, the evaluators' floor

_RULES: tuple[str, ...] = ("dcase2020", "dcase2021", "dcase2023")
_RULE_FOR_YEAR: dict[int, Rule] = {
    2020: "dcase2020", 2021: "dcase2021", 2022: "dcase2023", 2023: "dcase2023", 2024: "dcase2023",
    2025: "dcase2023",
}
# Metric fields of a row, in table order, and their column titles.
_METRICS: tuple[str, ...] = ("auc", "auc_source", "auc_target", "pauc", "pauc_source", "pauc_target", "score")
_TITLES: dict[str, str] = {
    "auc": "AUC", "auc_source": "AUC (source)", "auc_target": "AUC (target)", "pauc": "pAUC",
    "pauc_source": "pAUC (source)", "pauc_target": "pAUC (target)", "score": "score",
}
# The columns each rule shows; the last is the row's contribution to the official score.
_SHOWN: dict[str, tuple[str, ...]] = {
    "dcase2023": ("auc_source", "auc_target", "pauc", "pauc_source", "pauc_target", "score"),
    "dcase2021": ("auc_source", "auc_target", "pauc_source", "pauc_target", "pauc", "score"),
    "dcase2020": ("auc", "pauc", "score"),
}
_SCORE_TITLE: dict[str, str] = {"dcase2023": "h-mean", "dcase2021": "h-mean", "dcase2020": "a-mean"}


def rule_for_year(year: int) -> Rule:
    """The ranking rule of a DCASE year (2020-2025); 2022-2025 share the 2023 evaluator."""
    try:
        return _RULE_FOR_YEAR[int(year)]
    except (KeyError, ValueError):
        raise EvaluationError(f"no scoring rule for year {year!r}; known: {sorted(_RULE_FOR_YEAR)}") from None


def _check_rule(rule: str) -> None:
    if rule not in _RULES:
        raise EvaluationError(f"rule must be one of {_RULES}, got {rule!r}")


def auc_score(y_true: ArrayLike, y_score: ArrayLike) -> float:
    """ROC AUC, `sklearn.metrics.roc_auc_score(y_true, y_score)` (1 = anomaly, higher = anomalous)."""
    return float(roc_auc_score(y_true, y_score))


def pauc_score(y_true: ArrayLike, y_score: ArrayLike, *, max_fpr: float = MAX_FPR) -> float:
    """McClish-standardised partial AUC, `roc_auc_score(..., max_fpr=max_fpr)` (chance 0.5, best 1)."""
    return float(roc_auc_score(y_true, y_score, max_fpr=max_fpr))


def harmonic_mean(values: ArrayLike) -> float:
    """`scipy.stats.hmean` of the values floored at machine epsilon, as every evaluator does."""
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0:
        raise EvaluationError("harmonic mean of no values")
    return float(stats.hmean(np.maximum(v, EPSILON)))


@dataclass(frozen=True, eq=False)
class SectionScores:
    """One section's clips, aligned: the input of `evaluate`.

    Attributes:
        machine: machine type, e.g. "fan".
        section: two-digit section ("00").
        y_true: shape (N,), 1 = anomaly, 0 = normal.
        y_score: shape (N,), anomaly scores, higher = more anomalous.
        domains: shape (N,), 0 = source, 1 = target (the evaluator's ground_truth_domain),
            or None where the data has no domains (2020).
        filenames: the clip names in the same order (sorted, as the evaluator aligns them).
    """

    machine: str
    section: str
    y_true: NDArray[np.int64]
    y_score: NDArray[np.float64]
    domains: NDArray[np.int64] | None = None
    filenames: tuple[str, ...] = ()


@dataclass(frozen=True)
class MachineResult:
    """Metrics of one (machine type, section); since 2023 one row per machine type.

    Under "dcase2023", `auc_source`/`auc_target` use one domain's normals plus every anomaly
    of the section and `pauc_source`/`pauc_target` one domain's clips only (reported, not
    scored); under "dcase2021" all four are domain-only; "dcase2020" leaves them None.
    `score` is the row's share of the official score: the harmonic mean of its scored metrics
    (arithmetic mean of AUC and pAUC under "dcase2020"). None marks a metric the data cannot
    give (a domain without anomalies) and that the rule does not score.
    """

    machine: str
    section: str
    n_clips: int
    auc: float
    pauc: float
    auc_source: float | None
    auc_target: float | None
    pauc_source: float | None
    pauc_target: float | None
    score: float


@dataclass(frozen=True)
class MetricMeans:
    """One mean (arithmetic or harmonic) of each metric over all rows; None where a row lacks it."""

    auc: float | None
    auc_source: float | None
    auc_target: float | None
    pauc: float | None
    pauc_source: float | None
    pauc_target: float | None
    score: float | None


@dataclass(frozen=True)
class EvaluationSummary:
    """Per-section rows, means over rows, the official score and its confidence interval.

    Attributes:
        rule: the ranking rule applied.
        rows: one `MachineResult` per (machine, section), sorted as the evaluator loops.
        arithmetic_mean: arithmetic mean of each metric over rows.
        harmonic_mean: harmonic mean of each metric over rows (floored at machine epsilon).
        official_score: the rule's ranking score (a fraction; papers print it in percent).
        jackknife: the evaluator's 95 % jackknife over all clips, or None when not computed.
        max_fpr: pAUC's false-positive-rate limit.
    """

    rule: Rule
    rows: tuple[MachineResult, ...]
    arithmetic_mean: MetricMeans
    harmonic_mean: MetricMeans
    official_score: float
    jackknife: JackknifeCI | None = None
    max_fpr: float = MAX_FPR

    def format_table(self) -> str:
        """A plain-text table in percent: rows, the two means, the official score and its CI."""
        shown = _SHOWN[self.rule]
        titles = [_SCORE_TITLE[self.rule] if m == "score" else _TITLES[m] for m in shown]
        header = ["machine", "section", *titles]
        body = [[r.machine, r.section, *(_percent(getattr(r, m)) for m in shown)] for r in self.rows]
        body.append(["arithmetic mean", "", *(_percent(getattr(self.arithmetic_mean, m)) for m in shown)])
        body.append(["harmonic mean", "", *(_percent(getattr(self.harmonic_mean, m)) for m in shown)])
        widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]

        def line(cells: list[str]) -> str:
            left = [c.ljust(w) for c, w in zip(cells[:2], widths[:2])]
            return "  ".join(left + [c.rjust(w) for c, w in zip(cells[2:], widths[2:])]).rstrip()

        lines = [f"values in %, rule {self.rule}, pAUC max_fpr={self.max_fpr:g}", line(header)]
        lines.append("-" * len(lines[-1]))
        lines.extend(line(r) for r in body[:-2])
        lines.append("-" * len(lines[1]))
        lines.extend(line(r) for r in body[-2:])
        score = f"official score: {100 * self.official_score:.2f} %"
        if self.jackknife is not None:
            ci = self.jackknife
            score += (
                f" ± {100 * ci.half_width:.4f} (95 % CI: the DCASE evaluator's jackknife over "
                f"{ci.auc.n} clips)"
            )
        lines.append(score)
        return "\n".join(lines) + "\n"

    def to_csv(self) -> str:
        """The table as CSV text (fractions at full precision), one row per section, then the
        arithmetic and harmonic means, the official score and, if computed, its CI half-width."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["machine", "section", "n_clips", *(_TITLES[m] for m in _METRICS)])
        for r in self.rows:
            writer.writerow([r.machine, r.section, r.n_clips, *(_cell(getattr(r, m)) for m in _METRICS)])
        for name, means in (("arithmetic mean", self.arithmetic_mean), ("harmonic mean", self.harmonic_mean)):
            writer.writerow([name, "", "", *(_cell(getattr(means, m)) for m in _METRICS)])
        blanks = [""] * (len(_METRICS) - 1)
        writer.writerow([f"official score ({self.rule})", "", "", *blanks, _cell(self.official_score)])
        if self.jackknife is not None:
            writer.writerow(["official score ci95", "", self.jackknife.auc.n, *blanks,
                             _cell(self.jackknife.half_width)])
        return buffer.getvalue()


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}"


def _cell(value: float | None) -> str:
    return "" if value is None else repr(float(value))


def _validated(
    y_true: ArrayLike, y_score: ArrayLike, domains: ArrayLike | None, where: str
) -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.int64] | None]:
    y = np.asarray(y_true)
    s = np.asarray(y_score, dtype=np.float64)
    if y.ndim != 1 or s.ndim != 1:
        raise EvaluationError(f"{where}: labels and scores must be 1-D, got shapes {y.shape} and {s.shape}")
    if y.size != s.size:
        raise EvaluationError(f"{where}: {y.size} labels but {s.size} scores")
    if y.size == 0:
        raise EvaluationError(f"{where}: no clips")
    if not np.all((y == 0) | (y == 1)):
        raise EvaluationError(f"{where}: labels must be 0 (normal) or 1 (anomaly), got {np.unique(y)[:5]}")
    bad = ~np.isfinite(s)
    if bad.any():
        raise EvaluationError(f"{where}: {int(bad.sum())} of {s.size} scores are NaN or infinite")
    d = None
    if domains is not None:
        d = np.asarray(domains)
        if d.shape != y.shape:
            raise EvaluationError(f"{where}: {d.size} domain labels but {y.size} clips")
        if not np.all((d == 0) | (d == 1)):
            raise EvaluationError(f"{where}: domains must be 0 (source) or 1 (target), got {np.unique(d)[:5]}")
        d = d.astype(np.int64)
    return y.astype(np.int64), s, d


def _require_both(y: NDArray[np.int64], where: str, clips: str) -> None:
    n_anomalies = int(y.sum())
    if n_anomalies == 0 or n_anomalies == y.size:
        missing = "anomalies" if n_anomalies == 0 else "normal clips"
        raise EvaluationError(f"{where}: no {missing} among {clips}; AUC is undefined")


def evaluate_section(
    y_true: ArrayLike,
    y_score: ArrayLike,
    domains: ArrayLike | None = None,
    *,
    rule: Rule = "dcase2023",
    machine: str = "",
    section: str = "00",
    max_fpr: float = MAX_FPR,
) -> MachineResult:
    """Metrics of one section, exactly as the rule's evaluator computes them.

    Args:
        y_true: shape (N,), 1 = anomaly, 0 = normal.
        y_score: shape (N,), higher = more anomalous.
        domains: shape (N,), 0 = source, 1 = target; required by "dcase2021" and "dcase2023".
        rule: which year's evaluator to follow.
        machine: machine type, for the result row and error messages.
        section: two-digit section id.
        max_fpr: pAUC's false-positive-rate limit.

    Returns:
        The section's `MachineResult`.

    Raises:
        EvaluationError: length mismatch, NaN or infinite scores, bad labels, missing domains,
            or a scored metric without normals or anomalies (e.g. no target normals).
    """
    _check_rule(rule)
    where = f"{machine or 'machine'} section {section}"
    y, s, d = _validated(y_true, y_score, domains, where)
    _require_both(y, where, "all clips")
    auc, pauc = auc_score(y, s), pauc_score(y, s, max_fpr=max_fpr)
    if rule == "dcase2020":
        return MachineResult(machine, section, y.size, auc, pauc, None, None, None, None, (auc + pauc) / 2)
    if d is None:
        raise EvaluationError(f"{where}: rule {rule} needs source/target domains for every clip")

    per_domain: dict[str, float | None] = {}
    for name, index in (("source", 0), ("target", 1)):
        in_domain = d == index
        if not np.any(in_domain & (y == 0)):
            raise EvaluationError(f"{where}: no {name}-domain normal clips; AUC ({name}) is undefined")
        # The evaluator's y_true_auc: this domain's clips plus the anomalies of both domains.
        with_all_anomalies = in_domain | (y != 0)
        domain_only = in_domain
        if rule == "dcase2021":
            _require_both(y[domain_only], where, f"{name}-domain clips")
            per_domain[f"auc_{name}"] = auc_score(y[domain_only], s[domain_only])
        else:
            per_domain[f"auc_{name}"] = auc_score(y[with_all_anomalies], s[with_all_anomalies])
        # Domain-only pAUC, as the baseline reports it; scored only by "dcase2021".
        has_both = 0 < int(y[domain_only].sum()) < int(domain_only.sum())
        per_domain[f"pauc_{name}"] = (
            pauc_score(y[domain_only], s[domain_only], max_fpr=max_fpr) if has_both else None
        )
    if rule == "dcase2021":
        terms = [per_domain["auc_source"], per_domain["auc_target"], per_domain["pauc_source"],
                 per_domain["pauc_target"]]
    else:
        terms = [per_domain["auc_source"], per_domain["auc_target"], pauc]
    return MachineResult(machine, section, y.size, auc, pauc, score=harmonic_mean(terms), **per_domain)


def _score_terms(rows: Sequence[MachineResult], rule: Rule) -> list[float]:
    """The pooled vector the rule averages, in the evaluator's order (all of one metric, then the next)."""
    names = {
        "dcase2023": ("auc_source", "auc_target", "pauc"),
        "dcase2021": ("auc_source", "auc_target", "pauc_source", "pauc_target"),
        "dcase2020": ("auc", "pauc"),
    }[rule]
    return [getattr(r, name) for name in names for r in rows]


def official_score(rows: Sequence[MachineResult], *, rule: Rule = "dcase2023") -> float:
    """The ranking score of a system from its per-section rows.

    "dcase2023": hmean(max([AUC_s(m)] + [AUC_t(m)] + [pAUC(m)], eps)) over all (machine,
    section); it equals the harmonic mean of the rows' `score`. "dcase2021": the same over
    domain-only AUC_s, AUC_t, pAUC_s, pAUC_t. "dcase2020": arithmetic mean of all AUCs and pAUCs.
    """
    _check_rule(rule)
    if not rows:
        raise EvaluationError("no machines to score")
    terms = _score_terms(rows, rule)
    if rule == "dcase2020":
        return float(np.mean(terms))
    return harmonic_mean(terms)


def _means(rows: Sequence[MachineResult], reduce: Callable[[list[float]], float]) -> MetricMeans:
    values = {}
    for m in _METRICS:
        column = [getattr(r, m) for r in rows]
        values[m] = None if any(v is None for v in column) else float(reduce(column))
    return MetricMeans(**values)


def evaluate(
    sections: Iterable[SectionScores],
    *,
    rule: Rule = "dcase2023",
    max_fpr: float = MAX_FPR,
    confidence_interval: bool = True,
) -> EvaluationSummary:
    """Evaluate a system: every section, the means over sections and the official score.

    Args:
        sections: aligned clips of each (machine, section); order does not matter, rows are
            sorted by (machine, section) as the evaluator loops over them.
        rule: which year's evaluator to follow.
        max_fpr: pAUC's false-positive-rate limit.
        confidence_interval: run the evaluator's jackknife over all clips of all sections.

    Returns:
        The `EvaluationSummary`.

    Raises:
        EvaluationError: no sections, a duplicated (machine, section), or any section error
            of `evaluate_section`.
    """
    _check_rule(rule)
    ordered = sorted(sections, key=lambda x: (x.machine, x.section))
    if not ordered:
        raise EvaluationError("no sections to evaluate")
    keys = [(x.machine, x.section) for x in ordered]
    if len(set(keys)) != len(keys):
        raise EvaluationError(f"duplicated (machine, section): {sorted({k for k in keys if keys.count(k) > 1})}")
    rows = tuple(
        evaluate_section(x.y_true, x.y_score, x.domains, rule=rule, machine=x.machine, section=x.section,
                         max_fpr=max_fpr)
        for x in ordered
    )
    ci = None
    if confidence_interval:
        # The evaluator pools every clip of every machine and section (all_y_trues, all_y_preds).
        ci = jackknife_auc_pauc(
            np.concatenate([np.asarray(x.y_true) for x in ordered]),
            np.concatenate([np.asarray(x.y_score, dtype=np.float64) for x in ordered]),
            max_fpr=max_fpr,
        )
    return EvaluationSummary(
        rule=rule,
        rows=rows,
        arithmetic_mean=_means(rows, np.mean),
        harmonic_mean=_means(rows, harmonic_mean),
        official_score=official_score(rows, rule=rule),
        jackknife=ci,
        max_fpr=max_fpr,
    )
