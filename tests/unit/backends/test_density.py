"""Density-normalised kNN and DADS-kNN: rho by hand, dense vs sparse clusters, exact re-ranking, synthesis."""

import numpy as np
import pytest

from asdlab.backends.density import DADSKNNBackend, DensityKNNBackend, density_scale
from asdlab.backends.knn import KNNBackend
from asdlab.backends.search import NeighborSearch
from asdlab.errors import DataError

GRID = np.array([[i, j] for i in range(3) for j in range(3)], dtype=float)  # 3 x 3, spacing 1


def test_density_scale_by_hand():
    search = NeighborSearch("euclidean").fit([[0.0], [1.0], [3.0], [7.0]])
    np.testing.assert_allclose(density_scale(search, 1), [1.0, 1.0, 2.0, 4.0])
    np.testing.assert_allclose(density_scale(search, 2), [2.0, 1.5, 2.5, 5.0])


def test_density_normalisation_equalises_dense_and_sparse_clusters():
    dense, sparse = 0.1 * GRID, 100.0 + GRID * 1.0  # same shape, spacings 0.1 and 1
    X = np.concatenate([dense, sparse])
    queries = np.array([dense[4] + [0.05, 0.0], sparse[4] + [0.5, 0.0]])  # half a spacing off
    plain = KNNBackend(metric="euclidean").fit(X).score_samples(queries)
    np.testing.assert_allclose(plain, [0.05, 0.5])
    density = DensityKNNBackend(metric="euclidean", density_neighbors=1).fit(X).score_samples(queries)
    np.testing.assert_allclose(density, [0.5, 0.5])


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_density_scores_equal_brute_force(metric):
    rng = np.random.default_rng(0)
    # Very uneven densities, so the best ratio is often not among the nearest references.
    X = np.concatenate([rng.normal(size=(200, 4)) * 0.05, rng.normal(size=(100, 4)) * 3.0 + 1.0])
    queries = rng.normal(size=(40, 4)) * 2
    backend = DensityKNNBackend(n_neighbors=2, metric=metric, density_neighbors=3).fit(X)
    bank = backend.banks_[0]
    if metric == "euclidean":
        dist = np.sqrt(((queries[:, None] - X[None]) ** 2).sum(-1))
    else:
        unit = lambda a: a / np.linalg.norm(a, axis=1, keepdims=True)  # noqa: E731
        dist = 1 - unit(queries) @ unit(X).T
    expected = np.sort(dist / bank.scale, axis=1)[:, :2].mean(axis=1)
    np.testing.assert_allclose(backend.score_samples(queries), expected, rtol=1e-5, atol=1e-6)


def test_dads_without_synthesis_is_density_knn():
    rng = np.random.default_rng(1)
    X, queries = rng.normal(size=(30, 5)), rng.normal(size=(10, 5))
    domains = np.array(["source"] * 24 + ["target"] * 6)
    dads = DADSKNNBackend(n_synthetic=0, n_cross=0, density_neighbors=2).fit(X, domains=domains)
    density = DensityKNNBackend(density_neighbors=2).fit(X, domains=domains)
    np.testing.assert_allclose(dads.score_samples(queries), density.score_samples(queries))


def test_dads_synthesises_target_references_between_domains():
    source = np.array([[10.0, 0.0], [10.0, 1.0], [11.0, 0.0]])
    target = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    X, domains = np.concatenate([source, target]), ["source"] * 3 + ["target"] * 3
    params = dict(metric="euclidean", n_synthetic=4, n_cross=5, interpolation_neighbors=1, max_fraction=0.5)
    backend = DADSKNNBackend(**params, seed=0).fit(X, domains=domains)
    source_bank, target_bank = backend.banks_
    assert len(source_bank) == 3 and len(target_bank) == 3 + 3 * 4 + 3 * 5
    refs = target_bank.search.references_
    np.testing.assert_array_equal(refs[:3], target)
    # SMOTE points stay inside the target triangle, cross-domain points at most halfway to the source.
    assert (refs[3:15, 0] <= 1.0 + 1e-6).all() and (refs[15:, 0] <= 5.5 + 1e-6).all() and (refs[15:, 0] > 0.0).any()
    assert set(target_bank.parents) == {3, 4, 5}
    again = DADSKNNBackend(**params, seed=0).fit(X, domains=domains)
    other = DADSKNNBackend(**params, seed=1).fit(X, domains=domains)
    np.testing.assert_array_equal(again.banks_[1].search.references_, backend.banks_[1].search.references_)
    assert not np.array_equal(other.banks_[1].search.references_, backend.banks_[1].search.references_)


def test_training_scores_exclude_own_synthetic_points():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(20, 3))
    domains = np.array(["source"] * 14 + ["target"] * 6)
    backend = DADSKNNBackend(metric="euclidean", seed=0).fit(X, domains=domains)
    train = backend.score_training_samples()
    bank = backend.banks_[1]
    refs = bank.search.references_
    for row in range(14, 20):  # target clip: its own bank without itself and its children
        keep = bank.parents != row
        d = np.sqrt(((refs[keep] - X[row]) ** 2).sum(-1)) / bank.scale[keep]
        source = backend.banks_[0]
        d_source = np.sqrt(((source.search.references_ - X[row]) ** 2).sum(-1)) / source.scale
        assert train[row] == pytest.approx(min(d.min(), d_source.min()), rel=1e-5)


def test_density_errors():
    with pytest.raises(DataError, match=r"every domain \(\['source', 'target'\]\) has a single training clip"):
        DensityKNNBackend().fit(GRID[:2], domains=["source", "target"])


@pytest.mark.parametrize("backend", [DensityKNNBackend, DADSKNNBackend])
def test_a_single_clip_domain_borrows_the_median_scale_of_the_others(backend):
    # Source clips at 0, 1, 3 on a line: rho (m = 1) = 1, 1, 2; each clip's LOO ratio 1/1, 1/1, 2/1 -> c = 1,
    # so the source scales are 1, 1, 2 and the lone target clip at 10 takes their median, 1.
    X = np.array([[0.0], [1.0], [3.0], [10.0]])
    fitted = backend(metric="euclidean", density_neighbors=1, **({"n_cross": 0} if backend is DADSKNNBackend else {}))
    fitted.fit(X, domains=["source", "source", "source", "target"])
    np.testing.assert_allclose(fitted.banks_[0].scale, [1.0, 1.0, 2.0])
    np.testing.assert_allclose(fitted.banks_[1].scale, [1.0])
    # a query at 12: 2 from the target clip (scale 1) and 9 / 2 from the source clip at 3 (scale 2)
    np.testing.assert_allclose(fitted.score_samples(np.array([[12.0]])), [2.0])


def test_dense_source_and_sparse_target_banks_are_comparable():
    # Same 3 x 3 shape per domain, spacings 0.1 (source) and 1 (target): each bank's calibration c_B = 1
    # (a clip's leave-one-out ratio to its nearest neighbour is 1 in both), so members look equally normal.
    dense, sparse = 0.1 * GRID, 5.0 + GRID
    X, domains = np.concatenate([dense, sparse]), ["source"] * 9 + ["target"] * 9
    backend = DensityKNNBackend(metric="euclidean", density_neighbors=1).fit(X, domains=domains)
    np.testing.assert_allclose([bank.scale.min() for bank in backend.banks_], [0.1, 1.0])
    queries = np.array([dense[4] + [0.05, 0.0], sparse[4] + [0.5, 0.0], [2.5, 20.0]])
    scores = backend.score_samples(queries)
    np.testing.assert_allclose(scores[:2], [0.5, 0.5])
    assert scores[2] > 10 * scores[0]
    # Leave-one-out training scores follow the same formula: every clip is 1 spacing from its neighbours.
    np.testing.assert_allclose(backend.score_training_samples(), np.ones(18))


def test_dads_synthetic_points_do_not_shrink_the_target_scale():
    rng = np.random.default_rng(3)
    X = np.concatenate([rng.normal(size=(40, 3)) * 0.1, 5.0 + rng.normal(size=(6, 3))])
    domains = np.array(["source"] * 40 + ["target"] * 6)
    dads = DADSKNNBackend(metric="euclidean", n_cross=0, seed=0).fit(X, domains=domains)
    density = DensityKNNBackend(metric="euclidean").fit(X, domains=domains)
    # Real target clips keep the scale they have without synthesis (rho and c_B from real clips only).
    np.testing.assert_allclose(dads.banks_[1].scale[:6], density.banks_[1].scale, rtol=1e-6)
