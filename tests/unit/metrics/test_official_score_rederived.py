"""Reference: the official score re-derived independently (pair counting, hand-built ROC, McClish).

The library follows nttcslab/dcase2023_task2_evaluator step by step through scikit-learn; this
test recomputes every number without scikit-learn or SciPy on a fixed seeded dataset (four machine
types, 200 clips each, 50 per domain x label, with ties) and demands agreement to 1e-9. It also
runs the score files through the organisers' ground-truth format, shuffled, as the evaluator reads it.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

from asdlab.metrics import SectionScores, evaluate, evaluate_scores_dir, write_anomaly_scores

MACHINES = ("ToyCar", "bearing", "fan", "valve")
MAX_FPR = 0.1
TOL = 1e-9


def make_dataset(seed: int = 2025) -> list[SectionScores]:
    rng = np.random.default_rng(seed)
    sections = []
    for k, machine in enumerate(MACHINES):
        y = np.tile(np.repeat([0, 1], 50), 2)  # source normal, source anomaly, target normal, target anomaly
        d = np.repeat([0, 1], 100)
        shift = [1.5, 0.6, -1.5, 0.0][k]  # fan is inverted, valve at chance
        s = rng.normal(size=200) + shift * y + 0.8 * d
        s = np.round(s, 1)  # many ties, so tie handling is exercised on both code paths
        sections.append(SectionScores(machine, "00", y, s, d))
    return sections


def auc_by_pairs(y: np.ndarray, s: np.ndarray) -> float:
    pos, neg = s[y == 1], s[y == 0]
    diff = pos[:, None] - neg[None, :]
    return (np.count_nonzero(diff > 0) + 0.5 * np.count_nonzero(diff == 0)) / diff.size


def pauc_by_hand(y: np.ndarray, s: np.ndarray, max_fpr: float = MAX_FPR) -> float:
    """Walk the ROC point by point, integrate up to max_fpr, standardise as McClish (1989)."""
    pos, neg = s[y == 1], s[y == 0]
    points = [(0.0, 0.0)]
    for threshold in sorted(set(s.tolist()), reverse=True):
        fpr = np.count_nonzero(neg >= threshold) / neg.size
        tpr = np.count_nonzero(pos >= threshold) / pos.size
        points.append((fpr, tpr))
    area = 0.0
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        if x1 <= max_fpr:
            area += (x1 - x0) * (y0 + y1) / 2
        elif x0 < max_fpr:
            y_cut = y0 + (y1 - y0) * (max_fpr - x0) / (x1 - x0)
            area += (max_fpr - x0) * (y0 + y_cut) / 2
            break
        else:
            break
    low, high = max_fpr**2 / 2, max_fpr  # chance and perfect areas on [0, max_fpr]
    return 0.5 * (1 + (area - low) / (high - low))


def hmean_floored(values: list[float]) -> float:
    return len(values) / sum(1 / max(v, sys.float_info.epsilon) for v in values)


def expected_rows(sections: list[SectionScores]) -> dict[str, dict[str, float]]:
    rows = {}
    for x in sections:
        y, s, d = x.y_true, x.y_score, x.domains
        row = {}
        for name, index in (("source", 0), ("target", 1)):
            with_all_anomalies = (d == index) | (y == 1)
            row[f"auc_{name}"] = auc_by_pairs(y[with_all_anomalies], s[with_all_anomalies])
            row[f"pauc_{name}"] = pauc_by_hand(y[d == index], s[d == index])
        row["pauc"] = pauc_by_hand(y, s)
        row["auc"] = auc_by_pairs(y, s)
        row["score"] = hmean_floored([row["auc_source"], row["auc_target"], row["pauc"]])
        rows[x.machine] = row
    return rows


def test_per_machine_values_and_official_score_match_rederivation():
    sections = make_dataset()
    summary = evaluate(sections, confidence_interval=False)
    expected = expected_rows(sections)
    for row in summary.rows:
        for name, value in expected[row.machine].items():
            assert getattr(row, name) == pytest.approx(value, abs=TOL), (row.machine, name)
    pooled = [expected[m][k] for k in ("auc_source", "auc_target", "pauc") for m in MACHINES]
    assert summary.official_score == pytest.approx(hmean_floored(pooled), abs=TOL)
    for name in ("auc_source", "auc_target", "pauc", "pauc_source", "pauc_target"):
        column = [expected[m][name] for m in MACHINES]
        assert getattr(summary.arithmetic_mean, name) == pytest.approx(sum(column) / len(column), abs=TOL)
        assert getattr(summary.harmonic_mean, name) == pytest.approx(hmean_floored(column), abs=TOL)
    # The dataset really exercises the range: one good, one inverted machine.
    assert expected["ToyCar"]["auc_source"] > 0.8 and expected["fan"]["auc_source"] < 0.5


def test_same_score_through_the_organisers_file_format(tmp_path):
    """Anonymised names, ground_truth_data/ + ground_truth_domain/, score rows shuffled."""
    sections = make_dataset()
    rng = np.random.default_rng(0)
    root, scores_dir = tmp_path / "evaluator", tmp_path / "team"
    (root / "ground_truth_data").mkdir(parents=True)
    (root / "ground_truth_domain").mkdir()
    for x in sections:
        names = [f"section_00_{i:04d}.wav" for i in rng.permutation(np.arange(1, 201))]
        base = f"ground_truth_{x.machine}_section_00_test.csv"
        (root / "ground_truth_data" / base).write_text("".join(f"{n},{v}\n" for n, v in zip(names, x.y_true)))
        (root / "ground_truth_domain" / base).write_text("".join(f"{n},{v}\n" for n, v in zip(names, x.domains)))
        order = rng.permutation(200)
        write_anomaly_scores(scores_dir, x.machine, "00", [names[i] for i in order], x.y_score[order])
    summary = evaluate_scores_dir(scores_dir, root, confidence_interval=False)
    expected = expected_rows(sections)
    pooled = [expected[m][k] for k in ("auc_source", "auc_target", "pauc") for m in MACHINES]
    assert summary.official_score == pytest.approx(hmean_floored(pooled), abs=TOL)
    for row in summary.rows:
        assert row.pauc == pytest.approx(expected[row.machine]["pauc"], abs=TOL)
