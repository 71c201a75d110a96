"""The jackknife interval: fast leave-one-out paths against the evaluator's literal procedure."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from asdlab.errors import EvaluationError
from asdlab.metrics import SectionScores, evaluate, jackknife
from asdlab.metrics.jackknife import jackknife_auc_pauc, leave_one_out_auc, leave_one_out_pauc


def tied_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    y[:2], y[2:4] = 0, 1
    return y, np.round(rng.normal(size=n) + 0.8 * y, 1)


@pytest.mark.parametrize(("seed", "max_fpr"), [(0, 0.1), (1, 0.05), (2, 0.3)])
def test_leave_one_out_matches_sklearn_refits(seed, max_fpr):
    y, s = tied_data(60, seed)
    keep = np.ones(y.size, bool)
    auc, pauc = [], []
    for i in range(y.size):
        keep[i] = False
        auc.append(roc_auc_score(y[keep], s[keep]))
        pauc.append(roc_auc_score(y[keep], s[keep], max_fpr=max_fpr))
        keep[i] = True
    np.testing.assert_allclose(leave_one_out_auc(y, s), auc, rtol=0, atol=1e-12)
    np.testing.assert_allclose(leave_one_out_pauc(y, s, max_fpr=max_fpr), pauc, rtol=0, atol=1e-12)


def evaluator_jackknife(fn, y, s):
    """The organisers' jackknife_estimate, steps (1)-(7), written out again."""
    n = len(y)
    theta = fn(y, s)
    thetas = [fn(np.delete(y, i), np.delete(s, i)) for i in range(n)]
    mean = np.mean(thetas)
    estimate = np.mean([n * theta - (n - 1) * t for t in thetas])
    sigma = np.sqrt(np.sum([(t - mean) ** 2 for t in thetas]) / (n * (n - 1)))
    return estimate, abs(stats.t.ppf(0.025, n - 1)) * sigma


def test_summary_ci_is_the_evaluators_pooled_jackknife():
    y1, s1 = tied_data(50, 3)
    y2, s2 = tied_data(50, 4)
    d = np.arange(50) % 2
    summary = evaluate([SectionScores("valve", "00", y2, s2, d), SectionScores("fan", "00", y1, s1, d)])
    # The evaluator pools clips in machine order: fan, then valve.
    y, s = np.r_[y1, y2], np.r_[s1, s2]
    auc_est, auc_ci = evaluator_jackknife(roc_auc_score, y, s)
    pauc_est, pauc_ci = evaluator_jackknife(lambda a, b: roc_auc_score(a, b, max_fpr=0.1), y, s)
    ci = summary.jackknife
    assert ci.auc.n == 100
    assert ci.auc.estimate == pytest.approx(auc_est, abs=1e-12)
    assert ci.pauc.estimate == pytest.approx(pauc_est, abs=1e-12)
    assert ci.auc.half_width == pytest.approx(auc_ci, rel=1e-9)
    assert ci.pauc.half_width == pytest.approx(pauc_ci, rel=1e-9)
    assert ci.half_width == pytest.approx((auc_ci + pauc_ci) / 2, rel=1e-9)


def test_generic_jackknife_of_the_mean():
    x = np.array([1.0, 4.0, 2.0, 8.0, 5.0, 7.0])
    n = x.size
    t = abs(stats.t.ppf(0.025, n - 1))
    textbook = jackknife(np.mean, x, variance="pseudo-values")
    # For the mean, pseudo-values are the data: the textbook half-width is t * s / sqrt(n).
    assert textbook.estimate == pytest.approx(x.mean())
    assert textbook.half_width == pytest.approx(t * x.std(ddof=1) / np.sqrt(n))
    # The evaluator's formula works on leave-one-out means, (n - 1) times less spread.
    assert jackknife(np.mean, x).half_width == pytest.approx(t * x.std(ddof=1) / np.sqrt(n) / (n - 1))


def test_jackknife_needs_two_of_each_class():
    with pytest.raises(EvaluationError, match="at least 2 normal and 2 anomalous"):
        jackknife_auc_pauc([0, 0, 0, 1], [0.1, 0.2, 0.3, 0.4])
    with pytest.raises(EvaluationError, match="NaN"):
        jackknife_auc_pauc([0, 0, 1, 1], [0.1, np.nan, 0.3, 0.4])
