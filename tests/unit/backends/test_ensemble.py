"""Score fusion and the adaptive weight search (ACP): known optimum, seeding, tune on A / apply on B."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from asdlab.backends.ensemble import FusionWeights, fuse_scores, official_score_objective, search_weights
from asdlab.errors import ConfigError, DataError


def test_fusion_by_hand():
    scores = np.array([[1.0, 2.0], [3.0, 6.0]])
    np.testing.assert_allclose(fuse_scores(scores), [2.0, 4.0])
    np.testing.assert_allclose(fuse_scores(scores, [3.0, 1.0]), [1.5, 3.0])
    weights = FusionWeights(("a", "b"), (0.75, 0.25))
    np.testing.assert_allclose(weights.apply({"b": [3.0, 6.0], "a": [1.0, 2.0], "extra": [9.0, 9.0]}), [1.5, 3.0])
    assert FusionWeights.from_dict(weights.as_dict()) == weights
    with pytest.raises(DataError, match=r"no scores for systems \['b'\]"):
        weights.apply({"a": [1.0]})
    with pytest.raises(ConfigError, match="non-negative"):
        FusionWeights(("a", "b"), (1.0, -1.0))


def test_search_finds_the_known_best_weights():
    # System s scores clip s as 1 and the rest 0, so the fused scores are the weights themselves.
    target = np.array([0.6, 0.3, 0.1])
    objective = lambda fused: -float(((fused - target) ** 2).sum())  # noqa: E731
    result = search_weights(np.eye(3), objective, n_iter=400, step=0.2, decay=0.99, seed=0)
    np.testing.assert_allclose(result.weights.weights, target, atol=0.02)
    assert result.objective >= result.initial_objective
    assert (np.diff(result.history) >= 0).all() and len(result.history) == 401
    again = search_weights(np.eye(3), objective, n_iter=400, step=0.2, decay=0.99, seed=0)
    assert again.weights == result.weights
    assert search_weights(np.eye(3), objective, n_iter=400, seed=1).weights != result.weights


def _labelled_set(rng, n=200):
    y = np.r_[np.zeros(n // 2), np.ones(n // 2)]
    good = y + 0.8 * rng.normal(size=n)  # informative system
    bad = rng.normal(size=n)  # noise
    return y, {"good": good, "bad": bad}


def test_tune_on_one_dataset_and_apply_to_another():
    rng = np.random.default_rng(0)
    y_a, scores_a = _labelled_set(rng)
    y_b, scores_b = _labelled_set(rng)
    result = search_weights(scores_a, lambda fused: roc_auc_score(y_a, fused), n_iter=100, seed=0)
    w = result.weights.as_dict()
    assert w["good"] > 0.9 and result.weights.names == ("good", "bad")
    fused_b = result.weights.apply(scores_b)
    np.testing.assert_allclose(fused_b, w["good"] * scores_b["good"] + w["bad"] * scores_b["bad"])
    assert roc_auc_score(y_b, fused_b) > roc_auc_score(y_b, fuse_scores(scores_b))


def test_official_score_objective_matches_metrics():
    from asdlab.metrics.dcase import evaluate_section, official_score

    rng = np.random.default_rng(1)
    n = 40
    y = np.tile([0, 0, 1, 1], n // 4)
    domains = np.tile(["source", "target"], n // 2)
    machines = np.repeat(["fan", "valve"], n // 2)
    fused = y + rng.normal(size=n)
    objective = official_score_objective(y, machines, domains)
    d = (domains == "target").astype(int)
    rows = [evaluate_section(y[machines == m], fused[machines == m], d[machines == m], machine=m) for m in ("fan", "valve")]
    assert objective(fused) == pytest.approx(official_score(rows))
    result = search_weights({"good": fused, "noise": rng.normal(size=n)}, objective, n_iter=15, seed=0)
    assert result.weights.as_dict()["good"] > 0.5
