"""The mobilenet fine-tuning recipe at toy size: model folder, reload to the same embeddings, the steps rule,
and a fine-tuned detector that round-trips (fit -> save -> load -> identical scores)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import asdlab
from asdlab.errors import ConfigError
from asdlab.features.level import normalize_rms
from asdlab.metrics.files import find_score_files, read_anomaly_scores
from asdlab.pipeline.finetune import (
    FinetuneSettings,
    load_finetuned_backbone,
    read_model_description,
    run_finetuning,
)
from asdlab.training.loop import read_checkpoint
from asdlab.training.mobilenet import MobileNetAttributeTask, make_mobilenet_backbone

# layer 6 keeps the toy network small; 0.5-s clips give 50 frames, cropped to 40
TINY = dict(recipe="mobilenet", steps=2, batch_size=4, embed_layer=6, projection_dim=16, crop_s=0.4, log_every=1,
            accelerator="cpu", seed=0)


def test_model_folder_reloads_to_the_trained_embedding(tiny_hidden_root, tmp_path):
    result = run_finetuning(tiny_hidden_root, tmp_path / "m", FinetuneSettings(**TINY))
    assert result.steps == 2
    description = read_model_description(tmp_path / "m")
    assert description["recipe"] == "mobilenet" and description["embed_layer"] == 6
    assert description["pooling"] == "band-mean" and description["level"] == "rms"
    assert set(description["files"]) == {"encoder", "layers", "head"}
    loaded = load_finetuned_backbone(tmp_path / "m")
    # the same weights through the task's own backbone, rebuilt from the training checkpoint
    checkpoint = read_checkpoint(tmp_path / "m" / "last.ckpt")
    task = MobileNetAttributeTask(make_mobilenet_backbone(embed_layer=6, projection_dim=16, seed=0),
                                  result.num_classes, sub_clusters=16)
    task.load_state_dict(checkpoint["task"], strict=True)
    x = torch.randn(3, 8000) * 0.05
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), task.backbone.eval()(normalize_rms(x)))
    assert loaded.embed_dim == 16 and not loaded.training and loaded.level == "rms"


def test_settings_errors():
    with pytest.raises(ConfigError, match="epochs must be positive"):
        FinetuneSettings(epochs=0).resolved()
    with pytest.raises(ConfigError, match="recipe mobilenet trains every layer: mode must be 'full'"):
        FinetuneSettings(recipe="mobilenet", mode="lora").resolved()
    resolved = FinetuneSettings(recipe="mobilenet").resolved()
    assert (resolved.preset, resolved.pooling, resolved.embed_layer) == ("mobilenet-mn04", "band-mean", 10)
    assert FinetuneSettings(recipe="eat").resolved().pooling == "cls"


def test_epochs_set_the_steps_of_a_run(tiny_hidden_root, tmp_path):
    # 12 training clips, batch 4, 0.5 epochs -> ceil(0.5 x 12 / 4) = 2 updates of the 50 allowed
    settings = FinetuneSettings(**{**TINY, "steps": 50, "epochs": 0.5})
    result = run_finetuning(tiny_hidden_root, tmp_path / "m", settings)
    assert result.steps == 2
    assert read_model_description(tmp_path / "m")["settings"]["steps"] == 2


def test_a_fine_tuned_detector_round_trips(tiny_hidden_root, tmp_path):
    # the shipped recipe at toy size; random mn04 weights so the test needs no ../shared
    overrides = {"backbone.weights": None, "pseudo.map_method": None, **{f"finetune.{k}": v for k, v in TINY.items()},
                 "backbone.options": {"embed_layer": 6}, "pseudo.encoder_options": {"embed_layer": 6}}
    detector = asdlab.fit(tiny_hidden_root, tmp_path / "model", recipe="mn04-arcface", overrides=overrides)
    record = json.loads((tmp_path / "model" / "detector.json").read_text())
    assert record["recipe"] == "mn04-arcface" and record["backbone"]["model_dir"] is not None
    first = detector.score(tiny_hidden_root, tmp_path / "s1")
    again = asdlab.load_detector(tmp_path / "model").score(tiny_hidden_root, tmp_path / "s2")

    def scores(folder):
        files = find_score_files(folder)
        return np.concatenate([read_anomaly_scores(paths[0])[1] for _, paths in sorted(files.items())])

    assert len(find_score_files(tmp_path / "s1")) == 2
    np.testing.assert_array_equal(scores(tmp_path / "s1"), scores(tmp_path / "s2"))
    assert first.summary is not None and again.summary.official_score == first.summary.official_score


def test_pseudo_stage_is_skipped_when_every_machine_has_attributes(tmp_path):
    from asdlab.data.synth import generate_dataset
    from asdlab.pipeline.fit import fit_detector

    root = tmp_path / "data"
    generate_dataset(root, machines=1, train_source=4, train_target=2, test_per_group=1, duration_s=0.5, seed=3)
    lines: list[str] = []
    overrides = {"backbone.weights": None, **{f"finetune.{k}": v for k, v in TINY.items()},
                 "backbone.options": {"embed_layer": 6}}
    fit_detector(root, tmp_path / "model", recipe="mn04-arcface", overrides=overrides, log=lines.append)
    assert "  pseudo: skipped (every machine type's training clips carry attributes)" in lines
    assert not list((tmp_path / "model.work").glob("pseudo-*"))
