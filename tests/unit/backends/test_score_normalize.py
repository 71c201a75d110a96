"""ScoreNormalizer: z-score and rank by hand, per group, order preserved."""

import numpy as np
import pytest

from asdlab.backends.normalize import ScoreNormalizer
from asdlab.errors import DataError, NotFittedError


def test_zscore_by_hand_per_group():
    train = [1.0, 2.0, 3.0, 10.0, 30.0]
    groups = ["fan", "fan", "fan", "valve", "valve"]
    normalizer = ScoreNormalizer("zscore").fit(train, groups=groups)
    out = normalizer.transform([2.0, 4.0, 20.0, 40.0], groups=["fan", "fan", "valve", "valve"])
    np.testing.assert_allclose(out, [0.0, 2.0 / np.sqrt(2.0 / 3.0), 0.0, 2.0])
    np.testing.assert_array_equal(normalizer.groups_, ["fan", "valve"])


def test_rank_by_hand_with_ties_and_beyond_the_training_range():
    normalizer = ScoreNormalizer("rank").fit([0.0, 1.0, 1.0, 3.0])
    # Mid-ranks: 0 -> 0.5/4, 1 (twice) -> 2/4, 3 -> 3.5/4; slope 1/3 outside [0, 3].
    out = normalizer.transform([0.0, 1.0, 2.0, 3.0, 6.0, -3.0])
    np.testing.assert_allclose(out, [0.125, 0.5, 0.6875, 0.875, 1.875, -0.875])


@pytest.mark.parametrize("method", ["zscore", "rank"])
def test_transform_is_strictly_increasing(method):
    rng = np.random.default_rng(0)
    normalizer = ScoreNormalizer(method).fit(rng.gamma(2.0, size=50))
    grid = np.linspace(-5, 30, 500)
    assert (np.diff(normalizer.transform(grid)) > 0).all()


def test_constant_training_scores_and_errors(caplog):
    with caplog.at_level("WARNING"):
        normalizer = ScoreNormalizer().fit([2.0, 2.0])
    assert "constant" in caplog.text
    np.testing.assert_allclose(normalizer.transform([3.0]), [1.0])
    with pytest.raises(NotFittedError):
        ScoreNormalizer().transform([1.0])
    with pytest.raises(DataError, match="group 'pump' was not"):
        ScoreNormalizer().fit([1.0, 2.0], groups=["fan", "fan"]).transform([1.0], groups=["pump"])
    with pytest.raises(DataError, match="NaN"):
        ScoreNormalizer().fit([1.0, np.nan])
