"""The fine-tuning stage: model folder contents, reloading to the same embeddings, LoRA merge, resume, pseudo labels."""

import csv
import json
from dataclasses import replace

import pytest
import torch

from asdlab.data.index import index_dataset
from asdlab.errors import CheckpointError, ConfigError
from asdlab.features.level import normalize_rms
from asdlab.pipeline.finetune import FinetuneSettings, load_finetuned_backbone, read_model_description, run_finetuning

TINY = dict(steps=2, batch_size=4, log_every=1, accelerator="cpu", seed=0)


@pytest.fixture(scope="module")
def root(tiny_hidden_root):
    return tiny_hidden_root


def test_two_branch_model_folder_reloads(root, tmp_path):
    settings = FinetuneSettings(recipe="two-branch-cnn", preset="two-branch-cnn-small", sub_clusters=2, **TINY)
    result = run_finetuning(root, tmp_path / "m", settings)
    assert result.steps == 2 and (tmp_path / "m" / "train_log.csv").is_file()
    description = read_model_description(tmp_path / "m")
    # 4 attribute combinations of the attributed machine (source + target) + 1 class for the hidden one
    hidden = {r.machine for r in index_dataset(root, splits=("train",)) if not r.has_attributes}
    classes = description["label_map"]["classes"]
    assert [c for c in classes if c[0] in hidden] == [[next(iter(hidden)), "00", "noAttribute", ""]]
    assert result.num_classes == len(classes)
    backbone = load_finetuned_backbone(tmp_path / "m")
    x = torch.randn(2, 8000)
    assert backbone(x).shape == (2, 64) and not backbone.training


def test_eat_lora_saves_adapters_only_and_merges(root, tmp_path):
    pytest.importorskip("peft")
    settings = FinetuneSettings(recipe="eat", preset="eat-tiny", mode="lora", pooling="mean", projection_dim=16,
                                lr=1e-2, **TINY)
    run_finetuning(root, tmp_path / "m", settings)
    files = sorted(p.name for p in (tmp_path / "m").iterdir())
    assert "adapters.safetensors" in files and "encoder.safetensors" not in files
    description = read_model_description(tmp_path / "m")
    assert description["base"] == {"path": None, "sha256": None, "seed": 0} and description["target_frames"] == 48
    merged = load_finetuned_backbone(tmp_path / "m")
    # the same model unmerged: the training checkpoint's task weights in a fresh LoRA backbone
    from asdlab.training.finetune import AttributeTask, make_eat_backbone
    from asdlab.training.loop import read_checkpoint

    fresh = make_eat_backbone("eat-tiny", pooling="mean", projection_dim=16, target_frames=48, seed=0)
    task = AttributeTask(fresh, description["label_map"]["classes"].__len__(), mode="lora")
    task.load_state_dict(read_checkpoint(tmp_path / "m" / "last.ckpt")["task"])
    x = torch.randn(2, 8000)
    # The loaded model normalises the level as the training clips were (FinetuneSettings.level "rms").
    torch.testing.assert_close(merged(x), task.backbone.eval()(normalize_rms(x)), rtol=1e-4, atol=1e-4)
    base = make_eat_backbone("eat-tiny", pooling="mean", projection_dim=16, target_frames=48, seed=0).eval()
    assert not torch.allclose(merged.encoder(merged.front_end(x)), base.encoder(base.front_end(x)))


def test_resume_pseudo_attributes_and_errors(root, tmp_path):
    settings = FinetuneSettings(recipe="two-branch-cnn", preset="two-branch-cnn-small", sub_clusters=2,
                                checkpoint_every=1, **{**TINY, "steps": 3})
    hidden = [r for r in index_dataset(root, splits=("train",)) if not r.has_attributes]
    pseudo = {str(r.path): f"pseudo_0{i % 2}" for i, r in enumerate(hidden)}
    full = run_finetuning(root, tmp_path / "a", settings, pseudo_attributes=pseudo)
    n_classes = len(read_model_description(tmp_path / "a")["label_map"]["classes"])
    assert full.num_classes == n_classes and read_model_description(tmp_path / "a")["label_map"]["pseudo_attributes"] == len(hidden)
    resumed = run_finetuning(root, tmp_path / "a", settings, pseudo_attributes=pseudo, resume=True)
    assert resumed.steps == 3
    rows = list(csv.DictReader(open(tmp_path / "a" / "train_log.csv")))
    assert [int(r["step"]) for r in rows] == [1, 2, 3]
    run_finetuning(root, tmp_path / "a", replace(settings, log_every=2), pseudo_attributes=pseudo, resume=True)
    with pytest.raises(ConfigError, match=r"finetune_settings.json: cannot resume with other settings \(lr: "):
        run_finetuning(root, tmp_path / "a", replace(settings, lr=settings.resolved().lr * 2), resume=True)
    with pytest.raises(ConfigError, match="mode must be 'full'"):
        run_finetuning(root, tmp_path / "b", FinetuneSettings(recipe="two-branch-cnn", mode="lora"))
    with pytest.raises(ConfigError, match="no init weights"):
        run_finetuning(root, tmp_path / "b", settings, init_weights=tmp_path / "x.safetensors")
    with pytest.raises(CheckpointError, match="fine-tuned model description"):
        load_finetuned_backbone(tmp_path)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "model.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(CheckpointError, match="not an asdlab fine-tuned"):
        load_finetuned_backbone(tmp_path / "bad")


def test_dual_head_two_stages(root, tmp_path):
    settings = FinetuneSettings(recipe="eat", preset="eat-tiny", projection_dim=16, dual_head=True,
                                dual_head_clusters=2, **{**TINY, "steps": 4})
    result = run_finetuning(root, tmp_path / "m", settings)
    assert result.steps == 2  # stage 2 runs the other half of the steps
    stage1 = json.loads((tmp_path / "m" / "stage1" / "pseudo_labels.json").read_text())
    hidden = [r for r in index_dataset(root, splits=("train",)) if not r.has_attributes]
    assert stage1["clusters"] == 2 and len(stage1["labels"]) == len(hidden)
    rows = list(csv.DictReader(open(tmp_path / "m" / "train_log.csv")))
    assert "loss_pseudo" in rows[-1]
    assert load_finetuned_backbone(tmp_path / "m")(torch.randn(1, 8000)).shape == (1, 16)


def test_only_rank_zero_writes_the_model_folder(root, tmp_path, monkeypatch):
    import asdlab.pipeline.finetune as stage

    monkeypatch.setattr(stage, "is_global_zero", lambda: False)  # as rank 1 of a DDP run sees it
    settings = FinetuneSettings(recipe="two-branch-cnn", preset="two-branch-cnn-small", sub_clusters=2, **TINY)
    run_finetuning(root, tmp_path / "m", settings)
    written = {p.name for p in (tmp_path / "m").iterdir()}
    # The loop's own files come from Fabric's rank 0 (this process); the stage wrote nothing.
    assert written == {"last.ckpt", "train_log.csv"}
