from pathlib import Path

import numpy as np

from asdlab.backends.knn import KNNBackend
from asdlab.data.records import ClipRecord
from asdlab.embeddings.table import EmbeddingTable
from asdlab.pipeline.scoring import score_machines, write_score_files


def _table(rng: np.random.Generator) -> EmbeddingTable:
    records, rows = [], []
    for machine, centre in (("fan", 0.0), ("pump", 5.0)):
        for i in range(30):
            domain = "source" if i < 25 else "target"
            records.append(ClipRecord(Path(f"{machine}/train/section_00_{domain}_train_normal_{i:04d}_a_1.wav"),
                                      machine, "00", "train", "normal", domain, f"{i:04d}", "a_1"))
            rows.append(centre + rng.normal(0, 0.1, 4))
        for i in range(8):
            label = "anomaly" if i % 2 else "normal"
            domain = "source" if i < 4 else "target"
            records.append(ClipRecord(Path(f"{machine}/test/section_00_{domain}_test_{label}_{i:04d}_a_1.wav"),
                                      machine, "00", "test", label, domain, f"{i:04d}", "a_1"))
            rows.append(centre + rng.normal(0, 0.1, 4) + (3.0 if label == "anomaly" else 0.0))
    return EmbeddingTable.from_records(records, np.array(rows))


def test_each_machine_is_scored_against_its_own_training_clips(tmp_path):
    table = _table(np.random.default_rng(0))
    results = score_machines(table, lambda: KNNBackend(n_neighbors=1, metric="euclidean"), threshold_method="percentile")
    assert [(r.machine, r.section) for r in results] == [("fan", "00"), ("pump", "00")]
    for r in results:
        is_anomaly = np.char.find(r.test_filenames.astype(str), "anomaly") >= 0
        assert r.test_scores[is_anomaly].min() > r.test_scores[~is_anomaly].max()
        # out-of-fold training scores are distances to other clips, never 0 (self-match)
        assert r.train_scores.min() > 0
        assert r.threshold == np.percentile(r.train_scores, 90)
        np.testing.assert_array_equal(r.decisions, (r.test_scores > r.threshold).astype(int))
    written = write_score_files(results, tmp_path)
    names = sorted(Path(p).name for p in written)
    assert names == [
        "anomaly_score_fan_section_00_test.csv",
        "anomaly_score_pump_section_00_test.csv",
        "decision_result_fan_section_00_test.csv",
        "decision_result_pump_section_00_test.csv",
    ]


def _one_machine(n_train: int) -> EmbeddingTable:
    table = _table(np.random.default_rng(1))
    keep = (table.machine == "fan") & (table.split == "train") & (table.domain == "source")
    return table.select(np.flatnonzero(keep)[:n_train])


def test_too_few_training_clips_are_refused_naming_the_machine():
    import pytest

    from asdlab.backends.density import DensityKNNBackend
    from asdlab.errors import DataError
    from asdlab.pipeline.scoring import fit_machine_reference

    with pytest.raises(DataError, match=r"fan section 00 \(1 training clip\(s\): source 1\): out-of-fold .* at least 2"):
        fit_machine_reference(_one_machine(1), KNNBackend)
    # two clips: equal out-of-fold distances, no Gamma fit for the default threshold; a percentile works
    with pytest.raises(DataError, match=r"fan section 00 \(2 training clip\(s\): source 2\): .*Gamma"):
        fit_machine_reference(_one_machine(2), KNNBackend)
    assert len(fit_machine_reference(_one_machine(2), KNNBackend, threshold_method="percentile").train_scores) == 2
    # density needs two clips in a bank, so its out-of-fold fits need three
    with pytest.raises(DataError, match=r"fan section 00 \(2 training clip\(s\).*fit the backend on 1 of the 2"):
        fit_machine_reference(_one_machine(2), DensityKNNBackend)
    scores = fit_machine_reference(_one_machine(3), DensityKNNBackend).train_scores
    assert len(scores) == 3 and np.isfinite(scores).all()
