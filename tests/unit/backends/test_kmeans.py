"""KMeansBackend: means of source clips plus target samples as references."""

import numpy as np
import pytest

from asdlab.backends.kmeans import KMeansBackend
from asdlab.backends.knn import KNNBackend
from asdlab.errors import DataError


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_as_many_clusters_as_source_points_is_one_nn(metric):
    rng = np.random.default_rng(0)
    X, queries = rng.normal(size=(12, 4)), rng.normal(size=(9, 4))
    domains = np.array(["source"] * 8 + ["target"] * 4)
    kmeans = KMeansBackend(n_clusters=8, metric=metric, n_init=1).fit(X, domains=domains)
    knn = KNNBackend(1, metric).fit(X, domains=domains)
    np.testing.assert_allclose(kmeans.score_samples(queries), knn.score_samples(queries), atol=1e-6)


def test_means_of_tight_clusters_and_target_points():
    centres = np.array([[5.0, 0.0], [0.0, 5.0]])
    offsets = np.array([[0.1, 0.0], [-0.1, 0.0], [0.0, 0.1], [0.0, -0.1]])
    source = (centres[:, None] + offsets[None]).reshape(8, 2)  # 2 clusters x 4 points
    target = np.array([[-5.0, -5.0]])
    X, domains = np.concatenate([source, target]), ["source"] * 8 + ["target"]
    backend = KMeansBackend(n_clusters=2, metric="euclidean").fit(X, domains=domains)
    np.testing.assert_allclose(backend.means_[np.argsort(backend.means_[:, 0])], centres[::-1], atol=1e-6)
    np.testing.assert_allclose(backend.score_samples([[5.0, 0.0], [-5.0, -5.0], [5.0, 3.0]]), [0.0, 0.0, 3.0], atol=1e-6)
    # Source clips: distance to their mean (in-sample); the target clip: no other target left.
    np.testing.assert_allclose(backend.score_training_samples()[:8], 0.1, atol=1e-6)


def test_fewer_source_clips_than_means_keeps_each_clip_as_a_mean():
    rng = np.random.default_rng(1)
    X, queries = rng.normal(size=(7, 5)), rng.normal(size=(6, 5))
    domains = np.array(["source"] * 4 + ["target"] * 3)
    kmeans = KMeansBackend(n_clusters=16).fit(X, domains=domains)
    assert kmeans.means_.shape == (4, 5)
    np.testing.assert_allclose(kmeans.score_samples(queries), KNNBackend(1).fit(X, domains=domains).score_samples(queries),
                               atol=1e-6)


def test_kmeans_errors():
    X = np.eye(3)
    with pytest.raises(DataError, match="no clip of the source domain 'source'"):
        KMeansBackend(n_clusters=1).fit(X, domains=["a", "b", "b"])
