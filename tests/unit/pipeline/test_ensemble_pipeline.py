"""Ensembles of scored folders: fusion by hand, tune on A / apply on B, and the errors a user can hit."""

import json
from pathlib import Path

import numpy as np
import pytest

from asdlab.backends.ensemble import FusionWeights
from asdlab.errors import ConfigError, DataError
from asdlab.metrics.files import read_anomaly_scores, read_decisions, write_ground_truth
from asdlab.pipeline.ensemble import fuse_systems, load_system, load_weights, run_ensemble, tune_weights
from asdlab.pipeline.scoring import MachineScores, read_training_scores, write_score_files, write_training_scores

TRAIN = np.array([f"section_00_source_train_normal_{i:04d}_a_1.wav" for i in range(20)])


def _test_names(n_per_group: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    names, y, d = [], [], []
    for domain in ("source", "target"):
        for label in ("normal", "anomaly"):
            for i in range(n_per_group):
                names.append(f"section_00_{domain}_test_{label}_{len(names):04d}_a_1.wav")
                y.append(int(label == "anomaly"))
                d.append(int(domain == "target"))
    return np.array(names), np.array(y), np.array(d)


def _write_system(directory: Path, sections: dict, *, truth: dict | None = None, shuffle: int | None = None) -> Path:
    """sections: machine -> (test names, test scores, train scores); truth: machine -> (labels, domains)."""
    results = []
    for machine, (names, test, train) in sections.items():
        order = np.arange(len(names)) if shuffle is None else np.random.default_rng(shuffle).permutation(len(names))
        results.append(MachineScores(machine, "00", names[order], np.asarray(test, float)[order], TRAIN[: len(train)],
                                     np.asarray(train, float), 0.0, np.zeros(len(names), dtype=np.int64)))
        if truth is not None:
            write_ground_truth(directory / "ground_truth", machine, "00", names, *truth[machine])
    write_score_files(results, directory)
    write_training_scores(results, directory)
    return directory


def _z(scores, train):
    return (np.asarray(scores) - np.mean(train)) / np.std(train)


def test_two_hand_made_systems_fuse_as_mean_of_z_scores(tmp_path):
    names = np.array([f"section_00_source_test_normal_{i:04d}_a_1.wav" for i in range(4)])
    a_train, b_train = [1.0, 2.0, 3.0, 6.0], [10.0, 20.0, 30.0, 40.0]
    a_test, b_test = [0.0, 2.0, 4.0, 9.0], [50.0, 10.0, 25.0, 0.0]
    a = _write_system(tmp_path / "a", {"fan": (names, a_test, a_train)})
    b = _write_system(tmp_path / "b", {"fan": (names, b_test, b_train)}, shuffle=1)  # rows in another order
    systems = [load_system(a), load_system(b)]

    (equal,) = fuse_systems(systems, threshold_method="percentile")
    np.testing.assert_array_equal(equal.test_filenames, sorted(names))
    np.testing.assert_allclose(equal.test_scores, (_z(a_test, a_train) + _z(b_test, b_train)) / 2)
    fused_train = (_z(a_train, a_train) + _z(b_train, b_train)) / 2
    np.testing.assert_allclose(equal.train_scores, fused_train)
    assert equal.threshold == pytest.approx(np.quantile(fused_train, 0.9))
    np.testing.assert_array_equal(equal.decisions, (equal.test_scores > equal.threshold).astype(int))

    (weighted,) = fuse_systems(systems, FusionWeights(("b", "a"), (1.0, 3.0)), threshold_method="percentile")
    np.testing.assert_allclose(weighted.test_scores, (3 * _z(a_test, a_train) + _z(b_test, b_train)) / 4)

    result = run_ensemble([a, b], tmp_path / "ab", threshold_method="percentile")
    assert result.summary is None and json.loads((tmp_path / "ab" / "weights.json").read_text()) == {"a": 0.5, "b": 0.5}
    written_names, written = read_anomaly_scores(tmp_path / "ab" / "anomaly_score_fan_section_00_test.csv")
    np.testing.assert_allclose(written, equal.test_scores)
    assert read_decisions(tmp_path / "ab" / "decision_result_fan_section_00_test.csv")[0] == written_names
    # the ensemble folder is a system itself: it carries its own training scores
    np.testing.assert_allclose(read_training_scores(tmp_path / "ab", "fan", "00")[1], fused_train)
    assert json.loads((tmp_path / "ab" / "settings.json").read_text())["stage"] == "ensemble"


def _labelled_pair(directory: Path, seed: int, *, informative: str) -> list[Path]:
    """Systems "good" and "noise" on one labelled set; only `informative` separates anomalies."""
    rng = np.random.default_rng(seed)
    names, y, d = _test_names(10)
    dirs = []
    for name in ("good", "noise"):
        sections, truth = {}, {}
        for machine in ("fan", "pump"):
            signal = 1.5 * y if name == informative else 0.0
            sections[machine] = (names, signal + rng.normal(size=len(y)), rng.normal(size=len(TRAIN)))
            truth[machine] = (y, d)
        dirs.append(_write_system(directory / name, sections, truth=truth))
    return dirs


def test_weights_tuned_on_a_are_applied_unchanged_to_b(tmp_path):
    set_a = _labelled_pair(tmp_path / "A", 0, informative="good")
    set_b = _labelled_pair(tmp_path / "B", 1, informative="noise")  # the other system is the good one on B
    tuned_a = tune_weights([load_system(p) for p in set_a], tmp_path / "A" / "good" / "ground_truth", n_iter=15)
    assert tuned_a.search.weights.as_dict()["good"] > 0.6
    assert tuned_a.search.objective >= tuned_a.search.initial_objective

    result = run_ensemble(set_b, tmp_path / "out", tune_dirs=set_a, n_iter=15, threshold_method="percentile",
                          confidence_interval=False)
    assert result.weights == tuned_a.search.weights
    assert load_weights(tmp_path / "out" / "weights.json") == tuned_a.search.weights
    assert result.tuning.ground_truth == tmp_path / "A" / "good" / "ground_truth"
    assert result.ground_truth == tmp_path / "B" / "good" / "ground_truth"
    # B's evaluation uses A's weights: the ensemble follows "good", which is noise on B.
    assert result.summary.official_score < result.member_summaries["noise"].official_score
    b = {s.name: s for s in map(load_system, set_b)}
    w = tuned_a.search.weights.as_dict()
    for m in result.machines:
        key = (m.machine, "00")
        z = {n: dict(zip(b[n].test[key][0], _z(b[n].test[key][1], b[n].train[key][1]))) for n in b}
        expected = [(w["good"] * z["good"][f] + w["noise"] * z["noise"][f]) / sum(w.values()) for f in m.test_filenames]
        np.testing.assert_allclose(m.test_scores, expected)

    # Tuned and applied on the same set, the evaluation reproduces the search's objective.
    on_a = run_ensemble(set_a, tmp_path / "on_a", tune_dirs=set_a, n_iter=15, confidence_interval=False)
    assert on_a.summary.official_score == pytest.approx(on_a.tuning.search.objective)
    assert on_a.tuning.member_scores["good"] == pytest.approx(on_a.member_summaries["good"].official_score)


def test_a_machine_missing_from_one_system_is_a_clear_error(tmp_path):
    names, _, _ = _test_names(2)
    both = {m: (names, np.arange(len(names)), np.arange(5.0)) for m in ("fan", "pump")}
    a = _write_system(tmp_path / "a", both)
    b = _write_system(tmp_path / "b", {"fan": both["fan"]})
    with pytest.raises(DataError, match=r"system 'b' \(.*b\) has no scores for pump section 00"):
        run_ensemble([a, b], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_other_user_errors(tmp_path):
    names, _, _ = _test_names(2)
    section = {"fan": (names, np.arange(len(names)), np.arange(5.0))}
    a, b = _write_system(tmp_path / "a", section), _write_system(tmp_path / "b", section)
    with pytest.raises(ConfigError, match=r"the weights name systems \['a', 'c'\] but the ensemble has \['a', 'b'\]"):
        run_ensemble([a, b], tmp_path / "out", weights=FusionWeights(("a", "c"), (1.0, 1.0)))
    with pytest.raises(ConfigError, match="must have the same folder names"):
        run_ensemble([a, b], tmp_path / "out", tune_dirs=[a, _write_system(tmp_path / "c", section)])
    with pytest.raises(ConfigError, match="is one of the member systems"):
        run_ensemble([a, b], b)
    with pytest.raises(ConfigError, match="no labels for the development systems"):
        run_ensemble([a, b], tmp_path / "out", tune_dirs=[a, b])
    (b / "train_scores_fan_section_00.csv").unlink()
    with pytest.raises(DataError, match="fan section 00 has no training scores"):
        load_system(b)
    (tmp_path / "w.json").write_text('["a", "b"]')
    with pytest.raises(ConfigError, match="expected"):
        load_weights(tmp_path / "w.json")
