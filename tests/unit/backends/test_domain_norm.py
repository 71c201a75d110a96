"""DomainNormalizedKNNBackend: per-domain z-scores (or ratios) from leave-one-out distances, values by hand."""

import numpy as np
import pytest

from asdlab.backends.domain_norm import DomainNormalizedKNNBackend
from asdlab.backends.knn import KNNBackend
from asdlab.errors import ConfigError, DataError

# Source: 4 points on a line at 0, 1, 2, 4 -> leave-one-out 1-NN distances 1, 1, 1, 2 (mean 1.25,
# sample std 0.5). Target: 3 points at 100, 110, 130 -> LOO distances 10, 10, 20 (mean 40/3,
# sample std 10/sqrt(3) = 5.7735).
SOURCE = np.array([[0.0], [1.0], [2.0], [4.0]])
TARGET = np.array([[100.0], [110.0], [130.0]])
X = np.concatenate([SOURCE, TARGET])
DOMAINS = ["source"] * 4 + ["target"] * 3


def _fit(**params):
    return DomainNormalizedKNNBackend(metric="euclidean", **params).fit(X, domains=DOMAINS)


def test_leave_one_out_statistics_by_hand():
    backend = _fit(min_std=0.0)
    assert list(backend.domains_) == ["source", "target"]
    np.testing.assert_allclose(backend.loo_mean_, [1.25, 40 / 3])
    np.testing.assert_allclose(backend.loo_std_, [0.5, 10 / np.sqrt(3)])


def test_zscores_per_domain_and_minimum():
    backend = _fit(min_std=0.0)
    queries = np.array([[7.0], [150.0], [60.0]])
    # 7: source d = 3 -> (3 - 1.25) / 0.5 = 3.5; target d = 93 -> (93 - 13.33) / 5.77 = 13.8
    # 150: source d = 146 -> 289.5; target d = 20 -> (20 - 13.33) / 5.77 = 1.1547
    # 60: source d = 56 -> 109.5; target d = 40 -> (40 - 13.33) / 5.77 = 4.6188
    per_domain = backend.score_samples_per_domain(queries)
    np.testing.assert_allclose(per_domain[:, 0], [3.5, 289.5, 109.5])
    np.testing.assert_allclose(per_domain[:, 1], [(93 - 40 / 3) / (10 / np.sqrt(3)), (20 - 40 / 3) / (10 / np.sqrt(3)),
                                                  (40 - 40 / 3) / (10 / np.sqrt(3))])
    np.testing.assert_allclose(backend.score_samples(queries), per_domain.min(axis=1))
    # Raw kNN would call 150 (20 from the target bank) more anomalous than 7 (3 from the source bank);
    # per domain, 7 is 3.5 source spreads out and 150 only 1.15 target spreads.
    raw = KNNBackend(1, "euclidean").fit(X, domains=DOMAINS).score_samples(queries)
    assert raw[1] > raw[0] and backend.score_samples(queries)[1] < backend.score_samples(queries)[0]


def test_ratio_method():
    backend = _fit(method="ratio")
    np.testing.assert_allclose(backend.score_samples([[7.0], [150.0]]), [3 / 1.25, 20 / (40 / 3)])


def test_std_floor_for_a_two_clip_domain():
    # Two clips always have equal LOO distances (std 0): sigma falls back to min_std * mu.
    X2 = np.array([[0.0], [1.0], [2.0], [4.0], [100.0], [104.0]])
    backend = DomainNormalizedKNNBackend(metric="euclidean", min_std=0.25).fit(X2, domains=DOMAINS[:4] + ["target"] * 2)
    np.testing.assert_allclose(backend.loo_mean_[1], 4.0)
    np.testing.assert_allclose(backend.loo_std_[1], 1.0)
    np.testing.assert_allclose(backend.score_samples_per_domain([[110.0]])[0, 1], (6.0 - 4.0) / 1.0)


def test_training_scores_are_leave_one_out_and_standardised():
    backend = _fit(min_std=0.0)
    train = backend.score_training_samples()
    # The source clip at 4 (LOO distance 2): (2 - 1.25) / 0.5 = 1.5 in its own domain, far more in the other.
    assert train[3] == pytest.approx(1.5)
    z_target = (np.array([10.0, 10.0, 20.0]) - 40 / 3) / (10 / np.sqrt(3))
    np.testing.assert_allclose(train[4:], z_target)


def test_cosine_default_is_scale_invariant_per_clip():
    rng = np.random.default_rng(0)
    Xr, q = rng.normal(size=(12, 6)), rng.normal(size=(5, 6))
    domains = ["source"] * 8 + ["target"] * 4
    a = DomainNormalizedKNNBackend().fit(Xr, domains=domains).score_samples(q)
    b = DomainNormalizedKNNBackend().fit(Xr * rng.uniform(0.5, 2, size=(12, 1)), domains=domains).score_samples(q * 3)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_errors():
    with pytest.raises(ConfigError, match="method must be one of"):
        DomainNormalizedKNNBackend(method="mad").fit(X, domains=DOMAINS)
    with pytest.raises(ConfigError, match="min_std must be a number >= 0"):
        DomainNormalizedKNNBackend(min_std=-1).fit(X, domains=DOMAINS)
    with pytest.raises(DataError, match="domain 'target' has a single training clip"):
        DomainNormalizedKNNBackend().fit(X[:5], domains=DOMAINS[:5])
