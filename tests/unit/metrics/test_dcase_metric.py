"""Hand-checked values of the official metric: perfect, inverted and tied systems, pair counting."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest

from asdlab.errors import EvaluationError
from asdlab.metrics import (
    EPSILON,
    SectionScores,
    auc_score,
    evaluate,
    evaluate_section,
    harmonic_mean,
    official_score,
    pauc_score,
    rule_for_year,
)

# One section, 8 clips: (domain 0 = source / 1 = target, label 1 = anomaly, score).
#   source normals 0.1 0.4 | target normals 0.3 0.6 | source anomalies 0.5 0.9 | target anomalies 0.2 0.7
HAND_Y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
HAND_D = np.array([0, 0, 1, 1, 0, 0, 1, 1])
HAND_S = np.array([0.1, 0.4, 0.3, 0.6, 0.5, 0.9, 0.2, 0.7])
# Pair counts over {source normals} x {all 4 anomalies}: 0.5,0.9,0.7 beat both, 0.2 beats 0.1 -> 7/8.
AUC_S = 7 / 8
# {target normals 0.3, 0.6} x {all anomalies}: 0.5 beats 0.3; 0.9, 0.7 beat both; 0.2 none -> 5/8.
AUC_T = 5 / 8
# All clips: two anomalies (0.9, 0.7) rank above every normal, the first normal comes at
# FPR 1/4 > 0.1, so the ROC is flat at TPR 1/2 on [0, 0.1]: area 0.05;
# McClish 0.5 * (1 + (0.05 - 0.005) / (0.1 - 0.005)) = 14/19.
PAUC = 14 / 19
AUC_ALL = 12 / 16  # 0.5 beats 3 normals, 0.9 and 0.7 beat 4, 0.2 beats 1


def test_hand_example_counts_pairs_by_domain():
    row = evaluate_section(HAND_Y, HAND_S, HAND_D, machine="fan", section="00")
    assert row.auc_source == pytest.approx(AUC_S, abs=1e-15)
    assert row.auc_target == pytest.approx(AUC_T, abs=1e-15)
    assert row.pauc == pytest.approx(PAUC, abs=1e-15)
    assert row.auc == pytest.approx(AUC_ALL, abs=1e-15)
    # Domain-only pAUC: source clips are perfectly ranked; target clips rank 0.7 first then a
    # normal at FPR 1/2 -> TPR 1/2 flat on [0, 0.1] -> 14/19 again.
    assert row.pauc_source == pytest.approx(1.0, abs=1e-15)
    assert row.pauc_target == pytest.approx(14 / 19, abs=1e-15)
    assert row.score == pytest.approx(3 / (1 / AUC_S + 1 / AUC_T + 1 / PAUC), abs=1e-15)
    assert (row.machine, row.section, row.n_clips) == ("fan", "00", 8)


def test_auc_source_includes_target_domain_anomalies():
    # Using only source anomalies, source AUC would be perfect (0.5 and 0.9 beat 0.1 and 0.4);
    # the low-scoring target anomaly 0.2 must pull it down to 7/8.
    source = HAND_D == 0
    assert auc_score(HAND_Y[source], HAND_S[source]) == 1.0
    row = evaluate_section(HAND_Y, HAND_S, HAND_D)
    assert row.auc_source == pytest.approx(7 / 8)
    assert row.auc_source != 1.0


def test_2021_rule_is_domain_only():
    row = evaluate_section(HAND_Y, HAND_S, HAND_D, rule="dcase2021")
    # Source: {0.5, 0.9} vs {0.1, 0.4} -> 1; target: 0.7 beats {0.3, 0.6}, 0.2 beats none -> 1/2.
    assert row.auc_source == 1.0
    assert row.auc_target == 0.5
    assert row.pauc_source == 1.0
    assert row.pauc_target == pytest.approx(14 / 19)
    assert row.score == pytest.approx(4 / (1 + 2 + 1 + 19 / 14))


def test_2020_rule_is_arithmetic_mean_of_auc_and_pauc():
    row = evaluate_section(HAND_Y, HAND_S, rule="dcase2020")
    assert row.auc_source is None and row.pauc_target is None
    assert row.score == pytest.approx((AUC_ALL + PAUC) / 2)
    other = evaluate_section(HAND_Y, -HAND_S, rule="dcase2020", section="01")
    assert official_score([row, other], rule="dcase2020") == pytest.approx(
        (row.auc + other.auc + row.pauc + other.pauc) / 4
    )


def test_perfect_system_scores_one():
    scores = HAND_Y + np.linspace(0, 0.5, 8)
    summary = evaluate([SectionScores("fan", "00", HAND_Y, scores, HAND_D)])
    row = summary.rows[0]
    assert (row.auc_source, row.auc_target, row.pauc, row.pauc_source, row.pauc_target) == (1, 1, 1, 1, 1)
    assert summary.official_score == 1.0


def test_inverted_system_is_floored_at_epsilon_not_a_crash():
    row = evaluate_section(HAND_Y, -HAND_Y.astype(float), HAND_D)
    assert row.auc_source == 0.0 and row.auc_target == 0.0
    # All normals first: TPR stays 0 over [0, 0.1]; McClish 0.5 * (1 - 0.005 / 0.095) = 9/19.
    assert row.pauc == pytest.approx(9 / 19)
    expected = 3 / (2 / EPSILON + 19 / 9)  # zeros floored at machine epsilon
    assert row.score == pytest.approx(expected, rel=1e-12)
    assert 0 < official_score([row]) < 1e-15


def test_all_equal_scores_give_chance():
    scores = np.full(8, 0.3)
    row = evaluate_section(HAND_Y, scores, HAND_D)
    # One threshold: the ROC is the diagonal, area 0.005 on [0, 0.1] = McClish's minimum -> 0.5.
    assert (row.auc_source, row.auc_target, row.pauc, row.pauc_source, row.pauc_target) == (
        0.5, 0.5, 0.5, 0.5, 0.5,
    )


def test_partial_ties_by_hand():
    # normals 1,0,0,0,0; anomalies 1,1,0,0.
    y = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1])
    s = np.array([1.0, 0, 0, 0, 0, 1, 1, 0, 0])
    # Each anomaly at 1 beats 4 normals and ties 1 (4.5); each at 0 ties 4 (2): 13/20.
    assert auc_score(y, s) == pytest.approx(13 / 20)
    # First threshold jumps from (0, 0) to (FPR 1/5, TPR 1/2): at FPR 0.1 the TPR is 1/4,
    # area 0.5 * 0.1 * 0.25 = 0.0125; McClish 0.5 * (1 + 0.0075 / 0.095) = 41/76.
    assert pauc_score(y, s) == pytest.approx(41 / 76)


def test_official_score_is_harmonic_mean_of_per_machine_harmonic_means():
    rng = np.random.default_rng(7)
    sections = []
    for k, machine in enumerate(["ToyCar", "bearing", "fan", "valve", "slider"]):
        y = np.repeat([0, 1, 0, 1], 10)
        d = np.repeat([0, 0, 1, 1], 10)
        s = rng.normal(size=40) + y * (0.3 * k) - d * 0.5
        sections.append(SectionScores(machine, "00", y, s, d))
    summary = evaluate(sections, confidence_interval=False)
    per_machine = [r.score for r in summary.rows]
    assert summary.official_score == pytest.approx(harmonic_mean(per_machine), abs=1e-12)
    assert summary.official_score == pytest.approx(summary.harmonic_mean.score, abs=1e-12)
    pooled = [r.auc_source for r in summary.rows] + [r.auc_target for r in summary.rows] + [
        r.pauc for r in summary.rows
    ]
    assert summary.official_score == pytest.approx(len(pooled) / sum(1 / v for v in pooled), abs=1e-12)
    assert [r.machine for r in summary.rows] == sorted(m.machine for m in sections)


def test_several_sections_per_machine_are_separate_rows():
    sections = [
        SectionScores("fan", "01", HAND_Y, -HAND_S, HAND_D),
        SectionScores("fan", "00", HAND_Y, HAND_S, HAND_D),
    ]
    summary = evaluate(sections, confidence_interval=False)
    assert [(r.machine, r.section) for r in summary.rows] == [("fan", "00"), ("fan", "01")]
    assert summary.official_score == pytest.approx(harmonic_mean([r.score for r in summary.rows]))


def test_domain_without_anomalies_reports_na_but_still_scores():
    keep = ~((HAND_D == 1) & (HAND_Y == 1))  # drop the target anomalies
    row = evaluate_section(HAND_Y[keep], HAND_S[keep], HAND_D[keep], machine="fan")
    assert row.pauc_target is None
    assert row.auc_target == pytest.approx(3 / 4)  # 0.5 beats 0.3, 0.9 beats both
    with pytest.raises(EvaluationError, match="no anomalies among target-domain clips"):
        evaluate_section(HAND_Y[keep], HAND_S[keep], HAND_D[keep], machine="fan", rule="dcase2021")
    summary = evaluate([SectionScores("fan", "00", HAND_Y[keep], HAND_S[keep], HAND_D[keep])],
                       confidence_interval=False)
    assert "n/a" in summary.format_table()


@pytest.mark.parametrize(
    ("y", "s", "d", "message"),
    [
        (HAND_Y, np.r_[HAND_S[:-1], np.nan], HAND_D, "1 of 8 scores are NaN or infinite"),
        (HAND_Y, HAND_S[:-1], HAND_D, "8 labels but 7 scores"),
        (np.zeros(8, int), HAND_S, HAND_D, "no anomalies among all clips"),
        (HAND_Y, HAND_S, np.where(HAND_Y == 0, 0, HAND_D), "no target-domain normal clips"),
        (HAND_Y, HAND_S, None, "needs source/target domains"),
        (HAND_Y * 2, HAND_S, HAND_D, "labels must be 0"),
    ],
)
def test_section_errors_name_the_machine(y, s, d, message):
    with pytest.raises(EvaluationError, match=message) as error:
        evaluate_section(y, s, d, machine="gearbox", section="00")
    assert "gearbox section 00" in str(error.value)


def test_evaluate_rejects_duplicates_and_bad_rules():
    section = SectionScores("fan", "00", HAND_Y, HAND_S, HAND_D)
    with pytest.raises(EvaluationError, match="duplicated"):
        evaluate([section, section])
    with pytest.raises(EvaluationError, match="rule must be one of"):
        evaluate([section], rule="dcase2019")
    with pytest.raises(EvaluationError, match="no sections"):
        evaluate([])


def test_rule_for_year():
    assert rule_for_year(2020) == "dcase2020"
    assert rule_for_year(2021) == "dcase2021"
    assert {rule_for_year(y) for y in (2022, 2023, 2024, 2025)} == {"dcase2023"}
    with pytest.raises(EvaluationError, match="no scoring rule for year 2019"):
        rule_for_year(2019)


def test_table_and_csv_carry_the_numbers():
    sections = [SectionScores("fan", "00", HAND_Y, HAND_S, HAND_D),
                SectionScores("ToyCar", "00", HAND_Y, HAND_S[::-1].copy(), HAND_D)]
    summary = evaluate(sections)
    table = summary.format_table()
    assert "ToyCar" in table and "fan" in table
    assert "arithmetic mean" in table and "harmonic mean" in table
    assert f"official score: {100 * summary.official_score:.2f} %" in table
    assert f"{100 * AUC_S:.2f}" in table  # fan's AUC (source), 87.50
    rows = list(csv.reader(io.StringIO(summary.to_csv())))
    header = rows[0]
    assert header[:4] == ["machine", "section", "n_clips", "AUC"]
    fan = next(r for r in rows if r[0] == "fan")
    assert float(fan[header.index("AUC (source)")]) == pytest.approx(AUC_S)
    official = next(r for r in rows if r[0].startswith("official score ("))
    assert float(official[-1]) == summary.official_score
    ci = next(r for r in rows if r[0] == "official score ci95")
    assert float(ci[-1]) == summary.jackknife.half_width
