"""The two-branch CNN recipe with Ward pseudo-attributes from an encoder the pseudo section names (own recordings)."""

from __future__ import annotations

import json
from pathlib import Path

import asdlab
from asdlab.data.synth import generate_dataset
from asdlab.pipeline.experiment import load_experiment_config
from asdlab.pipeline.fit import fit_detector

# Pseudo-attributes of logmel-stats embeddings, clustered per domain; a two-step toy CNN fit.
PSEUDO_CNN = {
    "pseudo": {"backbone": "logmel-stats", "pooling": "mean", "rule": "fixed", "n_clusters": 2,
               "min_cluster_size": 1, "target_min_cluster_size": 1, "map_method": None},
    "pseudo_source": "own",
    "finetune.preset": "two-branch-cnn-small",
    "finetune.steps": 2,
    "finetune.batch_size": 8,
}


def _dataset(root: Path, hidden: int) -> Path:
    generate_dataset(root, machines=1, hide_attributes=hidden, train_source=8, train_target=2, test_per_group=1,
                     duration_s=0.5, seed=4, overwrite=True)
    return root


def _classes(work: Path) -> list[list[str]]:
    (model,) = work.glob("finetune-*/model.json")
    return json.loads(model.read_text())["label_map"]["classes"]


def test_attribute_less_machine_gets_pseudo_classes_per_domain(tmp_path):
    root = _dataset(tmp_path / "data", hidden=1)
    asdlab.fit(root, tmp_path / "model", recipe="two-branch-cnn", overrides=PSEUDO_CNN)
    classes = _classes(tmp_path / "model.work")
    # 2 source clusters + 2 target clusters (one clip each), instead of one class for the machine.
    assert [c[2] for c in classes] == ["pseudo_00", "pseudo_01", "pseudo_02", "pseudo_03"]
    (clustering,) = (tmp_path / "model.work").glob("pseudo-*/clustering.json")
    group = json.loads(clustering.read_text())["groups"][0]
    assert group["domain_clusters"] == [["source", 8, 2, 2], ["target", 2, 2, 2]]


def test_pseudo_stage_is_skipped_when_every_machine_has_attributes(tmp_path):
    root = _dataset(tmp_path / "data", hidden=0)
    logged: list[str] = []
    fit_detector(root, tmp_path / "model", recipe="two-branch-cnn", overrides=PSEUDO_CNN, log=logged.append)
    assert not list((tmp_path / "model.work").glob("pseudo-*"))
    assert any("pseudo: skipped" in line for line in logged)
    assert all(not c[2].startswith("pseudo_") for c in _classes(tmp_path / "model.work"))


def test_own_source_clusters_the_encoder_the_pseudo_section_names():
    config = load_experiment_config("two-branch-cnn", overrides=PSEUDO_CNN)
    assert config.pseudo_source == "own" and config.pseudo.backbone == "logmel-stats" and config.pseudo.per_domain
