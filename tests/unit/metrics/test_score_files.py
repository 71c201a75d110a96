"""DCASE score files and ground truth: round trips, evaluator-style alignment, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from asdlab.errors import EvaluationError
from asdlab.metrics import (
    align_scores,
    evaluate,
    find_score_files,
    load_ground_truth,
    read_anomaly_scores,
    read_decisions,
    score_file_name,
    write_anomaly_scores,
    write_decisions,
    write_summary_csv,
)

DEV_NAMES = [
    "section_00_source_test_normal_0001_m-n_W.wav",
    "section_00_source_test_anomaly_0002_m-n_W.wav",
    "section_00_target_test_normal_0003_m-n_X.wav",
    "section_00_target_test_anomaly_0004_m-n_X.wav",
]


def touch_tree(root: Path, machine: str, names: list[str]) -> None:
    folder = root / "dev_data" / "raw" / machine / "test"
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).touch()


def evaluator_dir(root: Path, machine: str, rows: list[tuple[str, int, int]]) -> Path:
    """The organisers' layout: ground_truth_data/ (label) and ground_truth_domain/ (domain)."""
    name = f"ground_truth_{machine}_section_00_test.csv"
    for folder, column in (("ground_truth_data", 1), ("ground_truth_domain", 2)):
        (root / folder).mkdir(parents=True, exist_ok=True)
        (root / folder / name).write_text("".join(f"{r[0]},{r[column]}\n" for r in rows))
    return root


def test_score_file_round_trip_is_exact(tmp_path):
    scores = np.array([1 / 3, -2.5, 1e-300, 123456.789, 0.1 + 0.2])
    names = [f"section_00_{i:04d}.wav" for i in range(5)]
    path = write_anomaly_scores(tmp_path, "ToyCar", "00", names, scores)
    assert path.name == "anomaly_score_ToyCar_section_00_test.csv"
    lines = path.read_text().splitlines()
    assert lines[0] == f"section_00_0000.wav,{1 / 3!r}"  # no header
    read_names, read_scores = read_anomaly_scores(path)
    assert read_names == tuple(names)
    assert read_scores.dtype == np.float64
    np.testing.assert_array_equal(read_scores, scores)


def test_decision_file_round_trip(tmp_path):
    path = write_decisions(tmp_path, "fan", "00", ["a.wav", "b.wav", "c.wav"], np.array([1, 0, 1]))
    assert path.name == "decision_result_fan_section_00_test.csv"
    assert path.read_text() == "a.wav,1\nb.wav,0\nc.wav,1\n"
    names, values = read_decisions(path)
    assert names == ("a.wav", "b.wav", "c.wav") and values.tolist() == [1, 0, 1]
    with pytest.raises(EvaluationError, match="0 or 1"):
        write_decisions(tmp_path, "fan", "00", ["a.wav"], [2])


def test_writer_and_reader_errors(tmp_path):
    with pytest.raises(EvaluationError, match="NaN or infinite"):
        write_anomaly_scores(tmp_path, "fan", "00", ["a.wav", "b.wav"], [0.1, np.nan])
    with pytest.raises(EvaluationError, match="2 file names but 1 values"):
        write_anomaly_scores(tmp_path, "fan", "00", ["a.wav", "b.wav"], [0.1])
    with pytest.raises(EvaluationError, match="section"):
        score_file_name("fan", "0")
    bad = tmp_path / "anomaly_score_fan_section_00_test.csv"
    bad.write_text("filename,score\na.wav,0.5\n")
    no_header = r"line 1: score 'score' is not a number \(score files have no header\)"
    with pytest.raises(EvaluationError, match=no_header):
        read_anomaly_scores(bad)


def test_find_score_files_knows_every_years_names(tmp_path):
    for name in (
        "anomaly_score_fan_section_00_test.csv",
        "anomaly_score_pump_section_03_source_test.csv",  # 2021: one file per domain
        "anomaly_score_pump_section_03_target_test.csv",
        "anomaly_score_ToyCar_id_01.csv",  # 2020
        "decision_result_fan_section_00_test.csv",
        "evaluation.csv",
    ):
        (tmp_path / name).write_text("")
    found = find_score_files(tmp_path)
    assert sorted(found) == [("ToyCar", "01"), ("fan", "00"), ("pump", "03")]
    assert len(found[("pump", "03")]) == 2
    assert list(find_score_files(tmp_path, kind="decision_result")) == [("fan", "00")]


def test_ground_truth_from_a_dataset_tree_and_a_renamed_flat_copy(tmp_path):
    touch_tree(tmp_path / "tree", "fan", DEV_NAMES + ["section_00_0007.wav"])  # anonymised: skipped
    train = tmp_path / "tree" / "dev_data" / "raw" / "fan" / "train"
    train.mkdir()
    (train / "section_00_source_train_normal_0001_m-n_W.wav").touch()  # training clips are not truth
    flat = tmp_path / "flat"
    flat.mkdir()
    for name in DEV_NAMES:
        (flat / f"fan_test_{name}").touch()
    for root in (tmp_path / "tree", flat):
        truth = load_ground_truth(root)
        assert list(truth) == [("fan", "00")]
        gt = truth[("fan", "00")]
        assert gt.filenames == tuple(sorted(DEV_NAMES))  # the DCASE part, sorted
        by_name = dict(zip(gt.filenames, zip(gt.labels.tolist(), gt.domains.tolist())))
        assert by_name["section_00_source_test_anomaly_0002_m-n_W.wav"] == (1, 0)
        assert by_name["section_00_target_test_normal_0003_m-n_X.wav"] == (0, 1)


def test_alignment_sorts_by_filename_like_the_evaluator(tmp_path):
    rows = [("section_00_0003.wav", 1, 1), ("section_00_0001.wav", 0, 0), ("section_00_0004.wav", 0, 1),
            ("section_00_0002.wav", 1, 0)]
    truth = load_ground_truth(evaluator_dir(tmp_path / "gt", "fan", rows))
    scored = {"section_00_0001.wav": 0.1, "section_00_0002.wav": 0.2, "section_00_0003.wav": 0.3,
              "section_00_0004.wav": 0.4}
    names = ["section_00_0004.wav", "section_00_0002.wav", "section_00_0001.wav", "section_00_0003.wav"]
    write_anomaly_scores(tmp_path / "team", "fan", "00", names, [scored[n] for n in names])
    (section,) = align_scores(tmp_path / "team", truth)
    assert section.filenames == tuple(sorted(scored))
    assert section.y_score.tolist() == [0.1, 0.2, 0.3, 0.4]
    assert section.y_true.tolist() == [0, 1, 1, 0]
    assert section.domains.tolist() == [0, 0, 1, 1]


def test_revealing_names_map_through_ground_truth_attributes(tmp_path):
    rows = [("section_00_0001.wav", 0, 0), ("section_00_0002.wav", 1, 0), ("section_00_0003.wav", 0, 1),
            ("section_00_0004.wav", 1, 1)]
    root = evaluator_dir(tmp_path / "gt", "fan", rows)
    (root / "ground_truth_attributes").mkdir()
    (root / "ground_truth_attributes" / "ground_truth_fan_section_00_test.csv").write_text(
        "".join(f"section_00_000{i}.wav,{DEV_NAMES[i - 1][:-4]}\n" for i in range(1, 5))
    )
    write_anomaly_scores(tmp_path / "team", "fan", "00", DEV_NAMES, [0.1, 0.2, 0.3, 0.4])
    (section,) = align_scores(tmp_path / "team", load_ground_truth(root))
    assert section.filenames[0] == "section_00_0001.wav"
    assert section.y_score.tolist() == [0.1, 0.2, 0.3, 0.4]


def test_missing_machine_file_names_the_machine_and_path(tmp_path):
    touch_tree(tmp_path / "data", "fan", DEV_NAMES)
    touch_tree(tmp_path / "data", "valve", DEV_NAMES)
    write_anomaly_scores(tmp_path / "team", "fan", "00", DEV_NAMES, [0.1, 0.9, 0.2, 0.8])
    truth = load_ground_truth(tmp_path / "data")
    with pytest.raises(EvaluationError, match="machine 'valve' section 00") as error:
        align_scores(tmp_path / "team", truth)
    assert str(tmp_path / "team" / "anomaly_score_valve_section_00_test.csv") in str(error.value)
    (section,) = align_scores(tmp_path / "team", truth, machines=["fan"])
    assert section.machine == "fan"
    with pytest.raises(EvaluationError, match=r"machine\(s\) \['pump'\] not in the ground truth"):
        align_scores(tmp_path / "team", truth, machines=["pump"])


def test_mismatched_clip_lists_are_listed(tmp_path):
    touch_tree(tmp_path / "data", "fan", DEV_NAMES)
    names = DEV_NAMES[:3] + ["section_00_target_test_anomaly_0099_m-n_X.wav"]
    write_anomaly_scores(tmp_path / "team", "fan", "00", names, [0.1, 0.9, 0.2, 0.8])
    with pytest.raises(EvaluationError) as error:
        align_scores(tmp_path / "team", load_ground_truth(tmp_path / "data"))
    message = str(error.value)
    assert "1 ground-truth clips have no score (section_00_target_test_anomaly_0004_m-n_X.wav)" in message
    assert "1 scored clips are not in the ground truth (section_00_target_test_anomaly_0099_m-n_X.wav)" in message


def test_duplicate_clips_are_errors(tmp_path):
    touch_tree(tmp_path / "a", "fan", DEV_NAMES)
    touch_tree(tmp_path / "a" / "copy", "fan", DEV_NAMES[:1])
    with pytest.raises(EvaluationError, match="lists 1 clip names twice"):
        load_ground_truth(tmp_path / "a")
    touch_tree(tmp_path / "b", "fan", DEV_NAMES)
    (tmp_path / "team").mkdir()
    (tmp_path / "team" / "anomaly_score_fan_section_00_test.csv").write_text(
        "".join(f"{n},0.5\n" for n in DEV_NAMES + DEV_NAMES[:1])
    )
    with pytest.raises(EvaluationError, match="scored twice"):
        align_scores(tmp_path / "team", load_ground_truth(tmp_path / "b"))


def test_2021_per_domain_files(tmp_path):
    gt = tmp_path / "gt" / "ground_truth_data"
    gt.mkdir(parents=True)
    team = tmp_path / "team"
    team.mkdir()
    for domain, names in (("source", ["s1.wav", "s2.wav", "s3.wav"]), ("target", ["t1.wav", "t2.wav", "t3.wav"])):
        (gt / f"ground_truth_pump_section_03_{domain}_test.csv").write_text(
            f"{names[0]},0\n{names[1]},1\n{names[2]},0\n"
        )
        (team / f"anomaly_score_pump_section_03_{domain}_test.csv").write_text(
            f"{names[0]},0.1\n{names[1]},0.9\n{names[2]},0.2\n"
        )
    (section,) = align_scores(team, load_ground_truth(tmp_path / "gt"))
    assert section.filenames == ("s1.wav", "s2.wav", "s3.wav", "t1.wav", "t2.wav", "t3.wav")
    assert section.domains.tolist() == [0, 0, 0, 1, 1, 1]
    row = evaluate([section], rule="dcase2021", confidence_interval=False).rows[0]
    assert (row.auc_source, row.auc_target) == (1.0, 1.0)


def test_ground_truth_errors(tmp_path):
    with pytest.raises(EvaluationError, match="ground truth not found"):
        load_ground_truth(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(EvaluationError, match="no labelled test clips"):
        load_ground_truth(tmp_path / "empty")
    root = tmp_path / "gt"
    (root / "ground_truth_data").mkdir(parents=True)
    (root / "ground_truth_data" / "ground_truth_fan_section_00_test.csv").write_text("a.wav,1\n")
    with pytest.raises(EvaluationError, match="domain ground truth missing"):
        load_ground_truth(root)


def test_summary_csv_is_written(tmp_path):
    touch_tree(tmp_path / "data", "fan", DEV_NAMES)
    write_anomaly_scores(tmp_path / "team", "fan", "00", DEV_NAMES, [0.1, 0.9, 0.2, 0.8])
    sections = align_scores(tmp_path / "team", load_ground_truth(tmp_path / "data"))
    summary = evaluate(sections, confidence_interval=False)
    path = write_summary_csv(summary, tmp_path / "team" / "evaluation.csv")
    assert path.read_text() == summary.to_csv()
    assert summary.official_score == 1.0
