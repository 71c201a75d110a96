"""Scoring options: backend by name + params, per-machine normalisation, thresholds on the written scale, settings."""

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from asdlab.backends.knn import KNNBackend
from asdlab.data.records import ClipRecord
from asdlab.embeddings.table import EmbeddingTable
from asdlab.errors import ConfigError, DataError, EvaluationError
from asdlab.metrics.dcase import SectionScores, evaluate
from asdlab.metrics.files import ground_truth_from_dataset, load_ground_truth, read_anomaly_scores
from asdlab.pipeline.scoring import (
    ScoreSettings,
    parse_params,
    read_training_scores,
    score_embeddings,
    score_machines,
)


def _table(seed: int = 0, *, labelled: bool = True) -> EmbeddingTable:
    """Two machines, 25 source + 5 target training clips each; 12 test clips, half anomalous, partly overlapping."""
    rng = np.random.default_rng(seed)
    records, rows = [], []
    for machine, centre in (("fan", 0.0), ("pump", 5.0)):
        for i in range(30):
            domain = "source" if i < 25 else "target"
            records.append(ClipRecord(Path(f"{machine}/train/section_00_{domain}_train_normal_{i:04d}_a_1.wav"),
                                      machine, "00", "train", "normal", domain, f"{i:04d}", "a_1"))
            rows.append(centre + rng.normal(0, 0.1, 4) + (0.5 if domain == "target" else 0.0))
        for i in range(12):
            label = "anomaly" if i % 2 else "normal"
            domain = "source" if i < 6 else "target"
            records.append(ClipRecord(Path(f"{machine}/test/section_00_{domain}_test_{label}_{i:04d}_a_1.wav"),
                                      machine, "00", "test", label if labelled else None, domain, f"{i:04d}", "a_1"))
            shift = rng.uniform(0.0, 0.4) if label == "anomaly" else 0.0
            rows.append(centre + rng.normal(0, 0.1, 4) + shift + (0.5 if domain == "target" else 0.0))
    return EmbeddingTable.from_records(records, np.array(rows))


def _knn():
    return KNNBackend(n_neighbors=1, metric="euclidean")


def _is_anomaly(names) -> np.ndarray:
    return np.char.find(np.asarray(names).astype(str), "anomaly") >= 0


@pytest.mark.parametrize("method", ["zscore", "rank"])
def test_normalisation_keeps_each_machines_auc_and_changes_the_scale(method):
    table = _table()
    raw = score_machines(table, _knn, threshold_method="percentile")
    normed = score_machines(table, _knn, threshold_method="percentile", normalization=method)
    for r, n in zip(raw, normed):
        y = _is_anomaly(r.test_filenames)
        auc = roc_auc_score(y, r.test_scores)
        assert 0.5 < auc < 1.0  # informative but imperfect, so a broken order would show
        assert roc_auc_score(y, n.test_scores) == pytest.approx(auc, abs=1e-12)
        np.testing.assert_array_equal(np.argsort(n.train_scores, kind="stable"), np.argsort(r.train_scores, kind="stable"))
    if method == "zscore":
        for n in normed:
            assert n.train_scores.mean() == pytest.approx(0.0, abs=1e-12)
            assert n.train_scores.std() == pytest.approx(1.0)
    else:
        for n in normed:
            assert 0.0 < n.train_scores.min() and n.train_scores.max() < 1.0


def test_threshold_is_computed_on_the_normalised_scale():
    table = _table()
    raw = score_machines(table, _knn, threshold_method="percentile")
    normed = score_machines(table, _knn, threshold_method="percentile", normalization="zscore")
    for r, n in zip(raw, normed):
        assert n.threshold == np.quantile(n.train_scores, 0.9)
        np.testing.assert_array_equal(n.decisions, (n.test_scores > n.threshold).astype(np.int64))
        # z-scoring is affine and the percentile commutes with it: same threshold, same decisions
        mean, std = r.train_scores.mean(), r.train_scores.std()
        assert n.threshold == pytest.approx((r.threshold - mean) / std)
        np.testing.assert_array_equal(n.decisions, r.decisions)
        assert n.threshold != pytest.approx(r.threshold)  # not the raw scale


def test_backend_chosen_by_registry_name_and_params():
    table = _table()
    settings = ScoreSettings(backend="knn", params={"n_neighbors": 3, "metric": "euclidean"}, threshold="percentile")
    by_name = score_machines(table, settings.new_backend, threshold_method="percentile")
    direct = score_machines(table, lambda: KNNBackend(n_neighbors=3, metric="euclidean"), threshold_method="percentile")
    k1 = score_machines(table, _knn, threshold_method="percentile")
    for a, b, c in zip(by_name, direct, k1):
        np.testing.assert_array_equal(a.test_scores, b.test_scores)
        assert not np.array_equal(a.test_scores, c.test_scores)
    with pytest.raises(ConfigError, match="unknown backend 'nope'"):
        ScoreSettings(backend="nope").new_backend()
    with pytest.raises(ConfigError, match=r"takes no parameter\(s\) \['k'\]"):
        score_embeddings(table, "unused", ScoreSettings(backend="knn", params={"k": 3}))
    with pytest.raises(ConfigError, match="normalization must be one of"):
        score_machines(table, _knn, normalization="minmax")


def test_parse_params_reads_json_values_and_keeps_words():
    assert parse_params(["n_neighbors=3", "metric=cosine", "shrinkage=0.5", "normalize=true", "max_fraction = 1e-1"]) == {
        "n_neighbors": 3, "metric": "cosine", "shrinkage": 0.5, "normalize": True, "max_fraction": 0.1,
    }
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        parse_params(["n_neighbors"])
    with pytest.raises(ConfigError, match="given twice"):
        parse_params(["seed=1", "seed=2"])


def test_settings_json_training_scores_and_the_tables_own_labels(tmp_path):
    table = _table()
    table.save(tmp_path / "emb.npz")
    settings = ScoreSettings(backend="knn", params={"metric": "euclidean"}, normalization="rank", threshold="percentile")
    result = score_embeddings(tmp_path / "emb.npz", tmp_path / "out", settings, confidence_interval=False)

    record = json.loads((tmp_path / "out" / "settings.json").read_text())
    assert {k: record[k] for k in ("stage", "backend", "params", "normalization", "threshold", "n_folds", "seed")} == {
        "stage": "score", "backend": "knn", "params": {"metric": "euclidean"}, "normalization": "rank",
        "threshold": "percentile", "n_folds": 5, "seed": 0,
    }
    assert record["embeddings"] == str((tmp_path / "emb.npz").resolve())
    assert record["thresholds"] == {f"{m.machine}/00": m.threshold for m in result.machines}

    for m in result.machines:
        names, scores = read_training_scores(tmp_path / "out", m.machine, "00")
        assert names == tuple(m.train_filenames) and len(names) == 30
        np.testing.assert_array_equal(scores, m.train_scores)
        names, scores = read_anomaly_scores(tmp_path / "out" / f"anomaly_score_{m.machine}_section_00_test.csv")
        np.testing.assert_array_equal(scores, m.test_scores)

    # The labels copied from the table are those a dataset root of the same clip names gives.
    root = tmp_path / "root"
    for path in table.path[table.split == "test"]:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).touch()
    copied, parsed = load_ground_truth(tmp_path / "out" / "ground_truth"), ground_truth_from_dataset(root)
    assert sorted(copied) == sorted(parsed) == [("fan", "00"), ("pump", "00")]
    for key in parsed:
        assert copied[key].filenames == parsed[key].filenames
        np.testing.assert_array_equal(copied[key].labels, parsed[key].labels)
        np.testing.assert_array_equal(copied[key].domains, parsed[key].domains)

    # ... and the summary equals evaluating the in-memory scores against the table's columns.
    sections = []
    for m in result.machines:
        test = table.select((table.machine == m.machine) & (table.split == "test"))
        order = np.argsort(test.filename)
        by_name = dict(zip(m.test_filenames, m.test_scores))
        sections.append(SectionScores(m.machine, "00", (test.label[order] == "anomaly").astype(np.int64),
                                      np.array([by_name[n] for n in test.filename[order]]),
                                      (test.domain[order] == "target").astype(np.int64)))
    assert result.summary.official_score == evaluate(sections, confidence_interval=False).official_score
    assert (tmp_path / "out" / "evaluation.csv").is_file()


def test_unlabelled_embeddings_are_scored_but_not_evaluated(tmp_path):
    result = score_embeddings(_table(labelled=False), tmp_path / "out", ScoreSettings(threshold="percentile"))
    assert result.summary is None and result.ground_truth is None
    assert not (tmp_path / "out" / "ground_truth").exists() and not (tmp_path / "out" / "evaluation.csv").exists()
    assert json.loads((tmp_path / "out" / "settings.json").read_text())["ground_truth"] is None
    assert len(list((tmp_path / "out").glob("decision_result_*_test.csv"))) == 2


def test_a_folder_is_not_an_embeddings_file(tmp_path):
    with pytest.raises(DataError, match="is a folder; scoring takes an embeddings file"):
        score_embeddings(tmp_path, tmp_path / "out")
    with pytest.raises(EvaluationError, match="ground truth not found"):
        score_embeddings(_table(), tmp_path / "out", ground_truth=tmp_path / "missing")
    assert not (tmp_path / "out").exists()
    only_train = _table().select(_table().split == "train")
    with pytest.raises(DataError, match="has no test rows"):
        score_embeddings(only_train, tmp_path / "out")
