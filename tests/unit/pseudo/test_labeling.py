"""cluster_by_domain: each domain clustered on its own, labels never span domains, per-domain minimum sizes."""

from __future__ import annotations

import numpy as np
import pytest

from asdlab.errors import DataError
from asdlab.pseudo.labeling import cluster_by_domain, cluster_embeddings


def _data():
    rng = np.random.default_rng(0)
    source = np.concatenate([c + 0.1 * rng.standard_normal((6, 2)) for c in ([0.0, 0.0], [5.0, 0.0])])
    # Target clips sit on top of the source blobs: clustered together they would join source clusters.
    target = np.array([[0.1, 0.0], [0.0, 0.1], [5.1, 0.0], [4.9, 0.1]])
    X = np.concatenate([target[:2], source, target[2:]])
    domains = np.array(["target"] * 2 + ["source"] * 12 + ["target"] * 2)
    return X, domains


def test_domains_are_clustered_apart_source_first():
    X, domains = _data()
    result = cluster_by_domain(X, domains, rule="fixed", n_clusters=2, min_cluster_size={"source": 5, "target": 2})
    assert result.domains == ("source", "target") and result.n_clusters == 4
    assert set(result.labels[domains == "source"]) == {0, 1}
    assert set(result.labels[domains == "target"]) == {2, 3}
    # Target clips 0, 1 are near one source blob and 14, 15 near the other: two target clusters.
    assert result.labels[0] == result.labels[1] != result.labels[14] == result.labels[15]
    np.testing.assert_array_equal(result.parts["source"].labels,
                                  cluster_embeddings(X[domains == "source"], rule="fixed", n_clusters=2).labels)
    together = cluster_embeddings(X, rule="fixed", n_clusters=2)
    assert together.labels[0] == together.labels[2]  # what per-domain clustering avoids


def test_minimum_size_per_domain_and_unnamed_domains():
    X, domains = _data()
    merged = cluster_by_domain(X, domains, rule="fixed", n_clusters=2, min_cluster_size={"source": 5, "target": 3})
    assert merged.n_clusters == 3 and set(merged.labels[domains == "target"]) == {2}
    one = cluster_by_domain(X, np.full(len(X), ""), rule="fixed", n_clusters=2)
    assert one.domains == ("",) and one.n_clusters == 2


def test_domains_must_match_the_clips():
    X, domains = _data()
    with pytest.raises(DataError, match="one label per clip"):
        cluster_by_domain(X, domains[:-1], rule="fixed", n_clusters=2)
