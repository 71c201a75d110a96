"""The ensemble report's member list (`ensemble-report`) end to end at toy size, with its ACP ensemble tuned on
some machine types and applied to the others; BEATs through the paper's pipeline (TATS, pseudo-labels, fine-tuning)."""

from __future__ import annotations

import json

import pytest

from asdlab.errors import ConfigError
from asdlab.pipeline.cache import StageRun
from asdlab.pipeline.config_io import apply_overrides
from asdlab.pipeline.experiment import EnsembleSpec, load_experiment_config, run_experiment
from asdlab.pipeline.experiment_ensembles import check_ensembles, run_ensemble_stage

MEMBERS = ["beats", "beats-lora", "beats-tats", "sslam", "sslam-tats", "eat", "eat-tats", "resnet"]
TOY = {  # seconds, not minutes: 2 machine types, 1-s clips, 2 updates per training stage
    "report": False, "data.machines": 2, "data.hide_attributes": 1, "data.train_source": 6, "data.train_target": 2,
    "data.test_per_group": 3, "data.duration_s": 1.0, "finetune.steps": 2, "finetune.batch_size": 8,
    "finetune.warmup_steps": 0, "variants.resnet.finetune.steps": 2, "variants.resnet.finetune.batch_size": 8,
    "ensembles.acp.tune_machines": ["SynFan"], "ensembles.acp.search_steps": 20,
    **{f"variants.{v}.pretrain.{k}": n for v in ("beats-tats", "sslam-tats", "eat-tats")
       for k, n in (("steps", 2), ("batch_size", 4), ("clones", 2), ("warmup_steps", 0))},
}


@pytest.fixture(scope="module")
def report_run(tmp_path_factory):
    pytest.importorskip("peft")
    config = load_experiment_config("ensemble-report", small_scale=True, overrides=TOY)
    return run_experiment(config, tmp_path_factory.mktemp("ensemble-report"), log=lambda line: None)


def test_every_member_and_both_ensembles_are_scored(report_run):
    assert [r.variant for r in report_run.results] == [*MEMBERS, "acp", "equal"]
    assert all(r.summary is not None and 0.0 < r.columns["All"] < 100.0 for r in report_run.results)
    table = report_run.table_path.read_text()
    assert all(f"| {name} |" in table for name in [*MEMBERS, "acp", "equal"])


def test_each_member_trained_its_own_backbone(report_run):
    cache = report_run.out_dir / "cache"
    models = [json.loads(p.read_text()) for p in cache.glob("finetune-*/model.json")]
    presets = sorted({(m["preset"], m["mode"]) for m in models})
    assert presets == [("beats-tiny", "full"), ("beats-tiny", "lora"), ("eat-tiny", "full"),
                       ("two-branch-cnn", "full")]
    pretrained = sorted(json.loads(p.read_text())["preset"] for p in cache.glob("pretrain-*/pretrain_settings.json"))
    assert pretrained == ["beats-tiny", "eat-tiny"]  # sslam-tats and eat-tats share one stand-in at this size


def test_acp_weights_are_tuned_on_one_machine_type_and_held_out_on_the_other(report_run):
    acp = next(r for r in report_run.results if r.variant == "acp")
    record = json.loads((acp.scores_dir.parent / "acp.json").read_text())
    assert record["tune_machines"] == ["SynFan"] and record["held_out_machines"] == ["SynValve"]
    assert record["official_score_tuned"] >= record["official_score_tuned_equal_weights"]
    weights = json.loads((acp.scores_dir / "weights.json").read_text())
    assert sorted(weights) == sorted(MEMBERS) and weights == pytest.approx(record["weights"])
    assert sum(weights.values()) == pytest.approx(1.0)


def test_acp_needs_machine_types_on_both_sides(report_run, tmp_path):
    by_name = {r.variant: r for r in report_run.results}
    members = {m: StageRun("scores", m, by_name[m].scores_dir.parent, True, 0.0) for m in ("beats", "resnet")}
    truth = next((report_run.out_dir / "cache").glob("synth-*")) / "data"
    spec = EnsembleSpec(members=("beats", "resnet"), weights="acp", tune_machines=("SynFan", "SynValve"))
    with pytest.raises(ConfigError, match=r"acp tunes on \['SynFan', 'SynValve'\] and holds out \[\]"):
        run_ensemble_stage(spec, members, cache_root=tmp_path, ground_truth=truth)
    with pytest.raises(ConfigError, match="tune_machines and search_steps apply to weights: acp only"):
        check_ensembles({"e": EnsembleSpec(members=("a", "b"), tune_machines=("SynFan",))}, ["a", "b"], where="x")


def test_overrides_reach_dotted_keys_written_in_a_variant():
    data = {"variants": {"sslam": {"finetune.preset": "sslam-base", "backbone": {"preset": "sslam-base"}}}}
    changed = apply_overrides(data, {"variants.sslam.finetune.preset": "eat-tiny",
                                     "variants.sslam.backbone.preset": "eat-tiny"})
    assert changed == {"variants": {"sslam": {"finetune.preset": "eat-tiny", "backbone": {"preset": "eat-tiny"}}}}


def test_beats_runs_the_papers_pipeline(tmp_path):
    overrides = {
        "report": False, "data.machines": 2, "data.hide_attributes": 1, "data.train_source": 6,
        "data.train_target": 2, "data.test_per_group": 3, "data.duration_s": 1.0,
        "backbone.preset": "beats-tiny", "backbone.pooling": "mean", "pretrain.preset": "beats-tiny",
        "pretrain.steps": 2, "pretrain.batch_size": 4, "pretrain.clones": 2, "pretrain.warmup_steps": 0,
        "finetune.preset": "beats-tiny", "finetune.steps": 2, "finetune.batch_size": 8, "finetune.warmup_steps": 0,
    }
    config = load_experiment_config("dap-pseudo-arcface", small_scale=True, overrides=overrides)
    result = run_experiment(config, tmp_path / "run", log=lambda line: None)
    assert result.results[0].summary is not None
    clustering = json.loads(next((tmp_path / "run" / "cache").glob("pseudo-*/clustering.json")).read_text())
    assert clustering["settings"]["backbone"] == "beats-tiny"
    assert [g["machine"] for g in clustering["groups"]] == ["SynValve"]
