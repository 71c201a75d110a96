"""Decision thresholds: the baseline's Gamma fit, the 90th percentile, and strict decisions."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from asdlab.backends.thresholds import decide, fit_threshold, gamma_threshold, percentile_threshold
from asdlab.errors import ConfigError, DataError


def test_gamma_threshold_recovers_the_true_quantile():
    rng = np.random.default_rng(0)
    scores = stats.gamma.rvs(a=2.0, scale=1.5, size=4000, random_state=rng)
    true_q90 = stats.gamma.ppf(0.9, a=2.0, scale=1.5)
    assert gamma_threshold(scores) == pytest.approx(true_q90, rel=0.03)


def test_gamma_threshold_is_the_baselines_computation():
    rng = np.random.default_rng(1)
    scores = stats.gamma.rvs(a=5.0, loc=0.2, scale=0.3, size=500, random_state=rng)
    shape, loc, scale = stats.gamma.fit(scores)  # BaseModel.fit_anomaly_score_distribution
    assert gamma_threshold(scores) == stats.gamma.ppf(q=0.9, a=shape, loc=loc, scale=scale)


def test_percentile_threshold_is_exact():
    # Linear interpolation: position 0.9 * 9 = 8.1 between 9 and 10.
    assert percentile_threshold(np.arange(1.0, 11.0)) == pytest.approx(9.1, abs=1e-12)
    x = np.random.default_rng(2).normal(size=101)
    assert percentile_threshold(x) == np.percentile(x, 90)
    assert fit_threshold(x, method="percentile", quantile=0.5) == np.median(x)


def test_decide_is_strictly_greater():
    decisions = decide([0.5, 1.0, 1.5, 1.0000001], 1.0)
    assert decisions.dtype == np.int64
    assert decisions.tolist() == [0, 0, 1, 1]


def test_fit_threshold_dispatch_and_errors():
    x = np.arange(1.0, 21.0)
    assert fit_threshold(x, method="gamma") == gamma_threshold(x)
    with pytest.raises(ConfigError, match="method must be 'gamma' or 'percentile'"):
        fit_threshold(x, method="otsu")
    with pytest.raises(ConfigError, match="quantile"):
        fit_threshold(x, quantile=90)
    with pytest.raises(DataError, match="1 of 3 scores are NaN"):
        percentile_threshold([1.0, np.nan, 2.0])
    with pytest.raises(DataError, match="all 4 scores equal"):
        gamma_threshold([2.0, 2.0, 2.0, 2.0])
    with pytest.raises(DataError, match="at least 2 scores"):
        gamma_threshold([1.0])
    with pytest.raises(DataError, match="NaN"):
        decide([0.1, np.nan], 0.5)


@pytest.mark.parametrize("scale", [1e-5, 4e-3, 1.0, 1e3])
def test_gamma_threshold_is_sane_at_every_scale(scale):
    # kNN cosine distances live around 1e-3..1e-5, where scipy's raw fit alone can land far off.
    rng = np.random.default_rng(0)
    scores = (rng.gamma(3.0, 1.0, 200) + 0.1) * scale
    threshold = gamma_threshold(scores)
    assert np.percentile(scores, 80) < threshold < np.percentile(scores, 97)
