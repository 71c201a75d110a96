"""KNNBackend: per-domain mean k-NN distance, min over domains, leave-one-out training scores."""

import pickle

import numpy as np
import pytest
from sklearn.base import clone

from asdlab.backends.knn import KNNBackend
from asdlab.backends.search import faiss_available
from asdlab.errors import ConfigError, DataError, NotFittedError

X = np.array([[0.0, 0.0], [1.0, 0.0], [10.0, 0.0], [10.0, 2.0]])
DOMAINS = np.array(["source", "source", "target", "target"])


def test_query_at_reference_scores_zero_and_far_query_higher():
    backend = KNNBackend(metric="euclidean").fit(X, domains=DOMAINS)
    scores = backend.score_samples([[1.0, 0.0], [4.0, 0.0], [50.0, 0.0]])
    assert scores.dtype == np.float64 and scores.shape == (3,)
    np.testing.assert_allclose(scores, [0.0, 3.0, 40.0])


def test_min_over_domains_picks_the_right_domain():
    backend = KNNBackend(n_neighbors=2, metric="euclidean").fit(X, domains=DOMAINS)
    per_domain = backend.score_samples_per_domain([[10.0, 1.0]])
    np.testing.assert_array_equal(backend.domains_, ["source", "target"])
    # source: mean(|(10,1)-(1,0)|, |(10,1)-(0,0)|); target: both at distance 1.
    np.testing.assert_allclose(per_domain[0], [(np.sqrt(82) + np.sqrt(101)) / 2, 1.0])
    assert backend.score_samples([[10.0, 1.0]])[0] == pytest.approx(1.0)


def test_one_bank_without_domains_equals_brute_force():
    rng = np.random.default_rng(0)
    refs, queries = rng.normal(size=(50, 5)), rng.normal(size=(7, 5))
    backend = KNNBackend(n_neighbors=3).fit(refs)
    unit = lambda a: a / np.linalg.norm(a, axis=1, keepdims=True)  # noqa: E731
    cos_dist = 1 - unit(queries) @ unit(refs).T
    np.testing.assert_allclose(backend.score_samples(queries), np.sort(cos_dist, axis=1)[:, :3].mean(axis=1), atol=1e-6)


def test_training_scores_leave_one_out():
    backend = KNNBackend(metric="euclidean").fit(X, domains=DOMAINS)
    # (0,0): own domain without itself -> (1,0) at 1. (10,0): own -> 2, source -> 9.
    np.testing.assert_allclose(backend.score_training_samples(), [1.0, 1.0, 2.0, 2.0])


@pytest.mark.skipif(not faiss_available(), reason="faiss is not installed")
def test_faiss_and_numpy_scores_agree():
    rng = np.random.default_rng(3)
    refs, queries = rng.normal(size=(200, 6)), rng.normal(size=(30, 6))
    domains = np.where(np.arange(200) < 190, "source", "target")
    a = KNNBackend(2, search_backend="faiss").fit(refs, domains=domains).score_samples(queries)
    b = KNNBackend(2, search_backend="numpy").fit(refs, domains=domains).score_samples(queries)
    np.testing.assert_array_equal(a, b)


def test_clone_pickle_and_errors():
    backend = KNNBackend(n_neighbors=1, metric="euclidean")
    with pytest.raises(NotFittedError):
        backend.score_samples(X)
    assert clone(backend).get_params() == backend.get_params()
    backend.fit(X, domains=DOMAINS)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(backend)).score_samples(X), backend.score_samples(X))
    with pytest.raises(DataError, match="domain 'source' has only 2"):
        KNNBackend(n_neighbors=3).fit(X, domains=DOMAINS)
    with pytest.raises(DataError, match="one label per row"):
        KNNBackend().fit(X, domains=["source"])
    with pytest.raises(ConfigError, match="n_neighbors"):
        KNNBackend(n_neighbors=0).fit(X)
