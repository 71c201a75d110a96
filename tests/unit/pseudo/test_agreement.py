"""Agreement scores: hand-checked partitions (identical, renamed, merged, split, independent)."""

from __future__ import annotations

import numpy as np
import pytest

from asdlab.errors import DataError
from asdlab.pseudo.agreement import measure_agreement

TRUE = ["a", "a", "b", "b", "c", "c"]


def test_identical_up_to_renaming_scores_one():
    result = measure_agreement(TRUE, [5, 5, 0, 0, 9, 9])
    assert (result.ari, result.nmi, result.homogeneity, result.completeness) == pytest.approx((1, 1, 1, 1))
    assert (result.n_clusters, result.n_true, result.n_clips) == (3, 3, 6)


def test_merged_clusters_are_complete_not_homogeneous_and_split_the_reverse():
    merged = measure_agreement(TRUE, [0, 0, 0, 0, 1, 1])
    assert merged.completeness == pytest.approx(1.0) and merged.homogeneity < 1
    split = measure_agreement(TRUE, [0, 1, 2, 3, 4, 5])
    assert split.homogeneity == pytest.approx(1.0) and split.completeness < 1


def test_ari_by_hand():
    # true {0,1},{2,3}; predicted {0,2},{1,3}: no pair agrees -> index 0, expected 2/3 -> ARI = -0.5
    result = measure_agreement(["x", "x", "y", "y"], [0, 1, 0, 1])
    assert result.ari == pytest.approx(-0.5)
    assert result.nmi == pytest.approx(0.0)


def test_shape_errors_are_named():
    with pytest.raises(DataError, match=r"must be two \(N,\) arrays"):
        measure_agreement(TRUE, [0, 1])
    with pytest.raises(DataError, match="no clips"):
        measure_agreement(np.array([], dtype=str), np.array([], dtype=int))
