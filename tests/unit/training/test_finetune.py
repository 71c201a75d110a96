"""EAT attribute task: modes freeze the right weights, layer-wise lr decay, augmentations, the second head."""

import pytest
import torch

from asdlab.errors import ConfigError
from asdlab.training.finetune import AttributeTask, EmbeddingProjection, make_eat_backbone, make_head

FRAMES = 32  # 2 patches of 16 frames: 0.33 s of audio


def _batch(n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"waveform": torch.randn(n, 3200, generator=g) * 0.1, "target": torch.tensor([0, 1, 2, 1][:n]),
            "pseudo": torch.tensor([-1, 0, 1, -1][:n])}


def _task(mode="full", **options):
    backbone = make_eat_backbone("eat-tiny", pooling=options.pop("pooling", "cls"), projection_dim=32,
                                 target_frames=FRAMES, seed=0)
    return AttributeTask(backbone, 3, mode=mode, time_width=4, freq_width=8, **options)


def _grads(task, batch):
    out = task(batch, generator=torch.Generator().manual_seed(1))
    out.loss.backward()
    return {n for n, p in task.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}, out


def test_full_mode_trains_everything_with_layer_decay():
    task = _task("full")
    touched, out = _grads(task, _batch())
    assert torch.isfinite(out.loss) and {"loss_attr", "acc"} <= set(out.logs)
    assert "backbone.encoder.blocks.0.attn.qkv.weight" in touched and "head.centres" in touched
    scales = {n: g["lr_scale"] for g in task.optimizer_groups(weight_decay=0.05) for n in g["names"]}
    assert scales["head.centres"] == 1.0 and scales["backbone.projection.net.weight"] == 1.0
    assert scales["backbone.encoder.blocks.3.mlp.fc1.weight"] == pytest.approx(0.65)
    assert scales["backbone.encoder.patch_embed.weight"] == pytest.approx(0.65**5)


def test_probe_mode_keeps_the_encoder_frozen_and_in_eval():
    task = _task("probe").train()
    assert not task.backbone.encoder.training and task.backbone.projection.training
    before = {k: v.clone() for k, v in task.backbone.encoder.state_dict().items()}
    touched, _ = _grads(task, _batch())
    assert touched and all(not n.startswith("backbone.encoder.") for n in touched)
    names = {n for g in task.optimizer_groups(weight_decay=0.0) for n in g["names"]}
    assert names == {"backbone.projection.net.weight", "backbone.projection.net.bias", "head.centres"}
    for k, v in task.backbone.encoder.state_dict().items():
        torch.testing.assert_close(v, before[k])


def test_lora_mode_trains_adapters_and_new_layers_only():
    pytest.importorskip("peft")
    task = _task("lora", pooling="asp")
    names = {n for g in task.optimizer_groups(weight_decay=0.0) for n in g["names"]}
    encoder_names = {n for n in names if n.startswith("backbone.encoder.")}
    assert encoder_names and all(".lora_" in n for n in encoder_names)
    assert any(n.startswith("backbone.pool_module.") for n in names)
    touched, _ = _grads(task, _batch())
    assert any(".lora_B" in n for n in touched)


def test_same_generator_same_loss_and_second_head():
    task = _task("full", second_head_classes=2, mixup_p=1.0)
    task.eval()  # no dropout / drop-path: the loss depends only on the generator
    a = task(_batch(), generator=torch.Generator().manual_seed(5))
    b = task(_batch(), generator=torch.Generator().manual_seed(5))
    assert a.loss.item() == b.loss.item() and "loss_pseudo" in a.logs
    touched, _ = _grads(task, _batch())
    assert "second_head.centres" in touched
    no_pseudo = dict(_batch(), pseudo=torch.full((4,), -1))
    out = task(no_pseudo, generator=torch.Generator().manual_seed(5))
    assert out.logs["loss_pseudo"] == 0.0


def test_heads_projection_and_errors():
    assert make_head("sc-adacos", 8, 3, sub_clusters=2).centres.shape == (6, 8)
    assert make_head("arcface", 8, 3).scale == 30.0
    assert EmbeddingProjection(8, 4, layers=2)(torch.randn(2, 8)).shape == (2, 4)
    backbone = make_eat_backbone("eat-tiny", pooling="asp", projection_dim=None, target_frames=FRAMES, seed=0)
    assert backbone.embed_dim == 2 * 192 and backbone(torch.randn(2, 3200)).shape == (2, 384)
    with pytest.raises(ConfigError, match="head must be one of"):
        make_head("softmax", 8, 3)
    with pytest.raises(ConfigError, match="AdaCos"):
        make_head("adacos", 8, 2)
    with pytest.raises(ConfigError, match="mode must be"):
        _task("partial")
    with pytest.raises(ConfigError, match="pooling must be"):
        make_eat_backbone("eat-tiny", pooling="max")


def test_compiled_encoder_gives_the_eager_loss():
    def task(backend):
        backbone = make_eat_backbone("eat-tiny", target_frames=48, seed=0, drop_path=0.0)
        return AttributeTask(backbone, 3, mixup_p=0.0, time_masks=0, freq_masks=0, compile_backend=backend)

    batch = {"waveform": 0.1 * torch.randn(2, 8000, generator=torch.Generator().manual_seed(0)),
             "target": torch.tensor([0, 2])}
    eager = task(None)(batch, generator=torch.Generator().manual_seed(1))
    compiled_task = task("aot_eager")
    compiled = compiled_task(batch, generator=torch.Generator().manual_seed(1))
    assert compiled_task._embed.worked
    torch.testing.assert_close(compiled.loss, eager.loss, rtol=1e-5, atol=1e-6)
