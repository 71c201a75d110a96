"""Ensembles inside `asdlab run`: the fused row, its score files, an independent fusion, caching, config errors."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import yaml

from asdlab.backends.ensemble import FusionWeights
from asdlab.data.synth import generate_dataset
from asdlab.errors import ConfigError
from asdlab.metrics.files import evaluate_scores_dir, find_score_files, read_anomaly_scores
from asdlab.pipeline.ensemble import fuse_systems, load_system, run_ensemble
from asdlab.pipeline.experiment import (
    DataConfig,
    EnsembleSpec,
    ExperimentConfig,
    list_recipes,
    load_experiment_config,
    run_experiment,
)
from asdlab.pipeline.scoring import write_score_files
from asdlab.report import read_thresholds

VARIANTS = {
    "logmel": {"backbone": {"preset": "logmel-stats"}},
    # the clip's level is one number: cosine distances between scalars are all 0, so euclidean
    "clip": {"backbone": {"preset": "clip-level"}, "scoring": {"params": {"metric": "euclidean"}}},
}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth")
    generate_dataset(root, machines=2, train_source=12, train_target=3, test_per_group=4, duration_s=0.5, seed=7,
                     overwrite=True)
    return root


def _write_config(path: Path, dataset: Path | None, ensembles: dict) -> Path:
    data = {"name": "ens", "report": False, "variants": VARIANTS, "ensembles": ensembles}
    if dataset is not None:
        data["data"] = {"root": str(dataset)}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _manual_fusion(results, members, weights, out: Path, dataset: Path) -> tuple[list, float]:
    """Fuse the members' score folders with `fuse_systems` and evaluate the written files, outside the experiment."""
    by_name = {r.variant: r for r in results}
    systems = [load_system(by_name[m].scores_dir, name=m) for m in members]
    fused = fuse_systems(systems, weights)
    write_score_files(fused, out)
    return fused, evaluate_scores_dir(out, dataset, confidence_interval=False).official_score


def test_ensemble_is_a_row_matching_an_independent_fusion_and_is_cached(dataset, tmp_path):
    config = load_experiment_config(_write_config(tmp_path / "ens.yaml", dataset,
                                                  {"both": {"members": ["logmel", "clip"]}}))
    result = run_experiment(config, tmp_path / "run", log=lambda line: None)
    assert [r.variant for r in result.results] == ["logmel", "clip", "both"]
    both = result.results[-1]
    assert both.seed == 0 and both.summary is not None
    members = {r.variant: r for r in result.results[:2]}
    assert set(find_score_files(both.scores_dir)) == set(find_score_files(members["logmel"].scores_dir))
    assert len(list(both.scores_dir.glob("decision_result_*.csv"))) == 2

    fused, official = _manual_fusion(result.results, ["logmel", "clip"], None, tmp_path / "manual", dataset)
    assert both.summary.official_score == pytest.approx(official, abs=1e-12)
    assert both.columns["All"] == pytest.approx(100 * official, abs=1e-9)
    for machine in fused:
        path = both.scores_dir / f"anomaly_score_{machine.machine}_section_{machine.section}_test.csv"
        names, scores = read_anomaly_scores(path)
        order = np.argsort(names)
        np.testing.assert_array_equal(np.asarray(names)[order], machine.test_filenames)
        np.testing.assert_allclose(np.asarray(scores)[order], machine.test_scores, rtol=1e-12)
    # the report draws the ensemble's threshold like a variant's
    assert read_thresholds(both.scores_dir) == pytest.approx({(m.machine, m.section): m.threshold for m in fused})

    rows = list(csv.DictReader((tmp_path / "run" / "results.csv").open()))
    assert [r["variant"] for r in rows] == ["logmel", "clip", "both"]
    assert float(rows[2]["All"]) == pytest.approx(100 * official, abs=1e-4)
    assert "| both | 1 |" in (tmp_path / "run" / "results.md").read_text()

    lines: list[str] = []
    again = run_experiment(config, tmp_path / "run", log=lines.append)
    assert any(line.strip().startswith("ensemble: cached") for line in lines)
    assert again.results[-1].columns == both.columns and again.results[-1].scores_dir == both.scores_dir

    # new weights: the members' scores are reused, the ensemble stage runs again
    weighted = load_experiment_config(_write_config(tmp_path / "w.yaml", dataset, {
        "both": {"members": ["logmel", "clip"], "weights": {"logmel": 3.0, "clip": 1.0}}}))
    lines.clear()
    changed = run_experiment(weighted, tmp_path / "run", log=lines.append)
    assert sum(line.strip().startswith("scores: cached") for line in lines) == 2
    assert any(line.strip().startswith("ensemble: done") for line in lines)
    _, official = _manual_fusion(changed.results, ["logmel", "clip"], FusionWeights(("logmel", "clip"), (3.0, 1.0)),
                                 tmp_path / "manual-weighted", dataset)
    assert changed.results[-1].summary.official_score == pytest.approx(official, abs=1e-12)
    assert changed.results[-1].scores_dir != both.scores_dir

    # `names` tell apart folders that are all called `scores`, also for the development systems
    dirs = [members["logmel"].scores_dir, members["clip"].scores_dir]
    tuned = run_ensemble(dirs, tmp_path / "tuned", names=["logmel", "clip"], tune_dirs=dirs, tune_ground_truth=dataset,
                         ground_truth=dataset, n_iter=5, confidence_interval=False)
    assert set(tuned.weights.names) == {"logmel", "clip"} and set(tuned.member_summaries) == {"logmel", "clip"}
    with pytest.raises(ConfigError, match="1 names for 2 systems"):
        run_ensemble(dirs, tmp_path / "bad", names=["logmel"])


@pytest.mark.parametrize(
    ("ensembles", "message"),
    [
        ({"both": {"members": ["logmel", "nope"]}}, r"ensembles\.both: member 'nope' is not a variant"),
        ({"solo": {"members": ["logmel"]}}, r"ensembles\.solo: an ensemble needs at least 2 members"),
        ({"twice": {"members": ["clip", "clip"]}}, r"ensembles\.twice: members must be distinct"),
        ({"clip": {"members": ["logmel", "clip"]}}, r"ensembles\.clip: 'clip' is also a variant's name"),
        ({"both": {"members": ["logmel", "clip"], "weights": {"logmel": 1.0}}},
         r"ensembles\.both: weights name \['logmel'\] but the members are"),
        ({"both": {"members": ["logmel", "clip"], "weights": {"logmel": -1.0, "clip": 1.0}}},
         r"ensembles\.both\.weights: weights must be finite, non-negative"),
        ({"both": {"members": ["logmel", "clip"], "weights": "tuned"}}, r"ensembles\.both\.weights: 'tuned' is not"),
    ],
)
def test_invalid_ensembles_name_the_file_ensemble_and_member(tmp_path, ensembles, message):
    path = _write_config(tmp_path / "bad.yaml", None, ensembles)
    with pytest.raises(ConfigError, match=message) as error:
        load_experiment_config(path)
    assert str(path) in str(error.value)


def test_run_experiment_checks_ensembles_before_any_work(tmp_path):
    config = ExperimentConfig(name="code", data=DataConfig(synthetic=True), variants=VARIANTS,
                              ensembles={"all": EnsembleSpec(members=("logmel", "mel"))})
    with pytest.raises(ConfigError, match=r"code: ensembles\.all: member 'mel' is not a variant"):
        run_experiment(config, tmp_path / "run", log=lambda line: None)
    assert not (tmp_path / "run").exists()


def test_every_recipe_loads_with_its_variants_at_both_scales():
    assert "ensemble" in list_recipes()
    for name in list_recipes():
        for small in (False, True):
            config = load_experiment_config(name, small_scale=small)
            assert config.data.synthetic or not small
            for variant in config.variant_names():
                config.variant(variant)


def test_ensemble_recipe_fuses_its_three_variants_at_small_scale():
    config = load_experiment_config("ensemble", small_scale=True)
    assert config.variant_names() == ["dap-pseudo-arcface", "two-branch-cnn", "baseline"]
    assert config.ensembles == {"all-three": EnsembleSpec(members=("dap-pseudo-arcface", "two-branch-cnn", "baseline"))}
    dap, cnn, baseline = (config.variant(v) for v in config.variant_names())
    assert (dap.pretrain.preset, dap.finetune.recipe, dap.finetune.preset, dap.finetune_from) == (
        "eat-tiny", "eat", "eat-tiny", "dap")
    assert dap.pseudo is not None and dap.data.hide_attributes == 2
    cnn_training = cnn.finetune.resolved()
    assert (cnn.pretrain, cnn.pseudo, cnn_training.recipe, cnn_training.preset, cnn_training.steps) == (
        None, None, "two-branch-cnn", "two-branch-cnn", 300)
    assert (baseline.backbone.preset, baseline.pretrain, baseline.pseudo, baseline.finetune) == (
        "logmel-stats", None, None, None)
