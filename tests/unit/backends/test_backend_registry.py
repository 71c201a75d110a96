"""Every registered backend: shape, dtype, score sign, NotFittedError, pickling, sklearn clone."""

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.metrics import roc_auc_score

from asdlab.backends import available_backends, make_backend
from asdlab.errors import ConfigError, NotFittedError

# Small-bank settings so every backend fits 40 source + 8 target clips.
PARAMS = {"kmeans": {"n_clusters": 4}}


def _data():
    rng = np.random.default_rng(0)
    centre_s, centre_t = np.eye(8)[0] * 3, np.eye(8)[1] * 3
    source = centre_s + 0.3 * rng.normal(size=(40, 8))
    target = centre_t + 0.3 * rng.normal(size=(8, 8))
    X = np.concatenate([source, target])
    domains = np.array(["source"] * 40 + ["target"] * 8)
    normal = np.concatenate([centre_s + 0.3 * rng.normal(size=(10, 8)), centre_t + 0.3 * rng.normal(size=(10, 8))])
    anomalous = np.eye(8)[2:4].repeat(10, axis=0) * 3 + 0.3 * rng.normal(size=(20, 8))
    return X, domains, normal, anomalous


@pytest.mark.parametrize("name", available_backends())
def test_registered_backend_contract(name):
    X, domains, normal, anomalous = _data()
    backend = make_backend(name, **PARAMS.get(name, {}))
    with pytest.raises(NotFittedError, match="fit"):
        backend.score_samples(normal)
    assert backend.fit(X, domains=domains) is backend
    scores = backend.score_samples(np.concatenate([normal, anomalous]))
    assert scores.dtype == np.float64 and scores.shape == (40,)
    # Higher = more anomalous: anomalies (other directions) outrank the normals.
    assert roc_auc_score(np.r_[np.zeros(20), np.ones(20)], scores) == 1.0
    train = backend.score_training_samples()
    assert train.shape == (48,) and np.isfinite(train).all()
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(backend)).score_samples(normal), scores[:20])
    assert clone(backend).get_params() == backend.get_params()
    # Without domains: one bank, still a valid scorer.
    assert make_backend(name, **PARAMS.get(name, {})).fit(X).score_samples(normal).shape == (20,)


def test_make_backend_errors():
    with pytest.raises(ConfigError, match="unknown backend 'nope'"):
        make_backend("nope")
    with pytest.raises(ConfigError, match="takes no parameter"):
        make_backend("knn", n_clusters=3)
    assert make_backend("knn", n_neighbors=3).n_neighbors == 3
