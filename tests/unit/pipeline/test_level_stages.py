"""The training stages pass `level` on: the clips they train on, the files they write, the backbones rebuilt."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from asdlab.encoders.backbone import build_backbone
from asdlab.encoders.checkpoints import read_encoder_metadata
from asdlab.errors import ConfigError
from asdlab.pipeline.backbones import BackboneSpec, load_backbone
from asdlab.pipeline.experiment import load_experiment_config
from asdlab.pipeline.finetune import FinetuneSettings, load_finetuned_backbone, run_finetuning
from asdlab.pipeline.fit import DEFAULT_RECIPE
from asdlab.pipeline.pretrain import PretrainSettings, run_pretraining
from asdlab.pipeline.pseudo_label import PseudoLabelSettings, run_pseudo_labeling


@pytest.fixture(scope="module")
def root(tiny_hidden_root):
    return tiny_hidden_root


def _cache_levels(folder) -> list[str]:
    return [json.loads(p.read_text())["level"] for p in folder.glob("clips-*.json")]


def test_training_stages_default_to_rms():
    assert FinetuneSettings().level == PretrainSettings().level == PseudoLabelSettings().level == "rms"
    assert load_experiment_config(DEFAULT_RECIPE).finetune.level == "rms"
    with pytest.raises(ConfigError, match="level"):
        load_experiment_config(DEFAULT_RECIPE, overrides={"finetune.level": "loud"})


def test_finetuned_folder_records_the_level_and_reloads_with_it(root, tmp_path):
    settings = FinetuneSettings(recipe="two-branch-cnn", preset="two-branch-cnn-small", sub_clusters=2, steps=1,
                                batch_size=4, accelerator="cpu", cache_dir=str(tmp_path / "cache"))
    model = run_finetuning(root, tmp_path / "m", settings).model_dir
    assert _cache_levels(tmp_path / "cache") == ["rms"]  # the training clips were normalised
    assert json.loads((model / "model.json").read_text())["level"] == "rms"
    assert read_encoder_metadata(model / "encoder.safetensors")["level"] == "rms"
    backbone = load_backbone(BackboneSpec(model_dir=str(model)))  # spec "none": the folder decides
    assert backbone.level == "rms"
    x = 0.05 * torch.randn(2, 8000, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(backbone(0.5 * x), backbone(x), rtol=1e-5, atol=1e-5)

    # A folder from before `level` existed trained on the files' own levels; a spec may still ask for rms.
    old = tmp_path / "old"
    shutil.copytree(model, old)
    description = json.loads((old / "model.json").read_text())
    del description["level"]
    (old / "model.json").write_text(json.dumps(description))
    assert load_finetuned_backbone(old).level == "none"
    assert load_backbone(BackboneSpec(model_dir=str(old), level="rms")).level == "rms"
    with pytest.raises(ConfigError, match="backbone.level must be one of"):
        load_backbone(BackboneSpec(model_dir=str(old), level="peak"))


def test_dap_encoder_records_the_level_its_clips_had(root, tmp_path):
    settings = PretrainSettings(preset="eat-tiny", steps=1, batch_size=2, clones=2, warmup_steps=0,
                                accelerator="cpu", checkpoint_every=1, log_every=1)
    result = run_pretraining([root], tmp_path, settings)
    assert _cache_levels(tmp_path / "cache") == ["rms"]
    assert read_encoder_metadata(result.encoder_path)["level"] == "rms"
    assert load_backbone(BackboneSpec(preset="eat-tiny", weights=str(result.encoder_path))).level == "rms"
    assert build_backbone("eat-tiny", weights=result.encoder_path, level="none").level == "none"


@pytest.mark.parametrize("level", ["rms", "none"])
def test_pseudo_labelling_embeds_at_the_level_asked(root, tmp_path, level):
    settings = PseudoLabelSettings(backbone="logmel-stats", rule="fixed", n_clusters=2, min_cluster_size=1,
                                   map_method=None, level=level)
    result = run_pseudo_labeling(root, tmp_path, settings)
    assert json.loads(result.clustering_path.read_text())["backbone"]["level"] == level
