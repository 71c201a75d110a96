"""SMOTE interpolation (within and between sets) and the SMOTE-kNN backend."""

import numpy as np
import pytest

from asdlab.backends.knn import KNNBackend
from asdlab.backends.smote import SMOTEKNNBackend, interpolate_between, interpolate_neighbors
from asdlab.errors import ConfigError, DataError

LINE = np.array([[0.0, 0.0], [1.0, 0.0], [10.0, 0.0]])


def test_interpolate_neighbors_stays_on_segments_to_nearest_neighbour():
    synthetic, origin = interpolate_neighbors(LINE, 50, n_neighbors=1, generator=0)
    assert synthetic.shape == (150, 2) and synthetic.dtype == np.float32
    np.testing.assert_array_equal(origin, np.repeat([0, 1, 2], 50))
    assert (synthetic[:, 1] == 0).all()
    # Nearest neighbours: 0 <-> 1, 10 -> 1.
    x = synthetic[:, 0]
    assert (x[:100] >= 0).all() and (x[:100] <= 1).all()
    assert (x[100:] >= 1).all() and (x[100:] <= 10).all()


def test_interpolation_is_seeded():
    a = interpolate_neighbors(LINE, 5, generator=3)[0]
    np.testing.assert_array_equal(a, interpolate_neighbors(LINE, 5, generator=np.random.default_rng(3))[0])
    assert not np.array_equal(a, interpolate_neighbors(LINE, 5, generator=4)[0])


def test_interpolate_between_moves_at_most_max_fraction():
    A, B = np.array([[0.0, 0.0]]), np.array([[10.0, 0.0], [0.0, 100.0]])
    synthetic, origin = interpolate_between(A, B, 100, n_neighbors=1, max_fraction=0.5, generator=0)
    assert (synthetic[:, 1] == 0).all() and (synthetic[:, 0] >= 0).all() and (synthetic[:, 0] <= 5).all()
    assert (origin == 0).all()
    with pytest.raises(ConfigError, match="max_fraction"):
        interpolate_between(A, B, 1, max_fraction=0.0)
    with pytest.raises(DataError, match="at least 2"):
        interpolate_neighbors(A, 1)


def test_smote_knn_fills_gaps_of_the_target_bank():
    X = np.array([[50.0, 50.0], [51.0, 50.0], [0.0, 0.0], [4.0, 0.0]])
    domains = ["source", "source", "target", "target"]
    smote = SMOTEKNNBackend(metric="euclidean", n_synthetic=20, seed=0).fit(X, domains=domains)
    plain = KNNBackend(metric="euclidean").fit(X, domains=domains)
    assert len(smote.banks_[1]) == 2 + 2 * 20 and len(smote.banks_[0]) == 2
    query = [[2.0, 0.0]]  # midway between the two target clips
    assert plain.score_samples(query)[0] == pytest.approx(2.0)
    assert smote.score_samples(query)[0] < 0.5
    # Training clips are scored without themselves and their own synthetic points.
    assert (smote.score_training_samples()[2:] > 0).all()
    again = SMOTEKNNBackend(metric="euclidean", n_synthetic=20, seed=0).fit(X, domains=domains)
    np.testing.assert_array_equal(again.score_samples(query), smote.score_samples(query))
