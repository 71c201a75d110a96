"""MahalanobisBackend equals the closed form with the fitted shrunk covariance."""

import numpy as np
import pytest
from scipy.spatial.distance import mahalanobis
from sklearn.covariance import LedoitWolf

from asdlab.backends.mahalanobis import MahalanobisBackend
from asdlab.errors import ConfigError, DataError, NotFittedError


def test_ledoit_wolf_closed_form_and_min_over_domains():
    rng = np.random.default_rng(0)
    source = rng.normal(size=(30, 4)) @ np.diag([1.0, 2.0, 0.5, 1.0])
    target = rng.normal(size=(6, 4)) + 10
    X, domains = np.concatenate([source, target]), ["source"] * 30 + ["target"] * 6
    queries = rng.normal(size=(5, 4)) * 3
    backend = MahalanobisBackend().fit(X, domains=domains)
    expected = []
    for part in (source, target):
        lw = LedoitWolf().fit(part)
        inverse = np.linalg.inv(lw.covariance_)
        expected.append([mahalanobis(q, lw.location_, inverse) for q in queries])
    np.testing.assert_allclose(backend.score_samples_per_domain(queries), np.array(expected).T, rtol=1e-6)
    np.testing.assert_allclose(backend.score_samples(queries), np.min(expected, axis=0), rtol=1e-6)


def test_zero_shrinkage_is_the_empirical_covariance():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(50, 3))
    query = np.array([[1.0, -2.0, 0.5]])
    centred = query - X.mean(axis=0)
    expected = np.sqrt(centred @ np.linalg.inv(np.cov(X.T, bias=True)) @ centred.T)[0, 0]
    assert MahalanobisBackend(shrinkage=0.0).fit(X).score_samples(query)[0] == pytest.approx(expected, rel=1e-6)
    assert MahalanobisBackend(shrinkage=0.0).fit(X).score_samples(X.mean(axis=0, keepdims=True))[0] == pytest.approx(0.0, abs=1e-6)  # float32 input


def test_mahalanobis_errors():
    with pytest.raises(NotFittedError):
        MahalanobisBackend().score_samples(np.zeros((1, 2)))
    with pytest.raises(ConfigError, match="shrinkage"):
        MahalanobisBackend(shrinkage="huge").fit(np.eye(3))
    with pytest.raises(DataError, match="at least 2"):
        MahalanobisBackend().fit(np.eye(3), domains=["s", "s", "t"])
