"""BEATs (and SSLAM) in every training task an EAT has: one fine-tuning step gives every trainable parameter a
non-zero gradient (full, LoRA, probe; ArcFace / AdaCos; dual head), and continued pre-training (TATS) trains."""

from __future__ import annotations

import pytest
import torch

from asdlab.pipeline.pretrain import PretrainSettings, build_dap_task
from asdlab.training.finetune import AttributeTask, make_eat_backbone
from asdlab.training.schedules import eat_layer_id

pytest.importorskip("peft")


def _batch(classes: int, *, pseudo: bool = False) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    batch = {"waveform": 0.1 * torch.randn(4, 16000, generator=g), "target": torch.tensor([0, 1, 2, 1]) % classes}
    if pseudo:
        batch["pseudo"] = torch.tensor([0, -1, 1, 0])
    return batch


def _zero_or_missing(task: torch.nn.Module) -> list[str]:
    return [n for n, p in task.named_parameters() if p.requires_grad and (p.grad is None or not bool(p.grad.abs().sum() > 0))]


@pytest.mark.parametrize(("mode", "head", "pooling"), [
    ("full", "arcface", "asp"), ("full", "adacos", "mean"), ("lora", "arcface", "asp"), ("probe", "arcface", "mean"),
])
def test_one_step_then_every_trainable_parameter_has_a_gradient(mode, head, pooling):
    torch.manual_seed(0)
    backbone = make_eat_backbone("beats-tiny", pooling=pooling, projection_layers=2, target_frames=None, seed=0,
                                 drop_path=0.1)
    task = AttributeTask(backbone, 3, mode=mode, head=head, time_width=10, seed=0).train()
    optimizer = torch.optim.AdamW([p for p in task.parameters() if p.requires_grad], lr=1e-3)
    generator = torch.Generator().manual_seed(1)
    for _ in range(2):  # LoRA's B starts at zero, so A's gradient is zero until one step has been taken
        optimizer.zero_grad()
        task(_batch(3), generator=generator).loss.backward()
        optimizer.step()
    assert _zero_or_missing(task) == []
    trainable = {n for n, p in task.named_parameters() if p.requires_grad}
    if mode == "lora":
        assert trainable and all(".lora_" in n for n in trainable if n.startswith("backbone.encoder."))
        assert any("attn.qkv.lora_A" in n for n in trainable) and any("attn.proj.lora_B" in n for n in trainable)
    if mode == "probe":
        assert not any(n.startswith("backbone.encoder.") for n in trainable)


def test_dual_head_trains_the_second_head():
    backbone = make_eat_backbone("beats-tiny", pooling="mean", target_frames=None, seed=0)
    task = AttributeTask(backbone, 3, head="arcface", second_head_classes=2, time_width=10, seed=0).train()
    task(_batch(3, pseudo=True), generator=torch.Generator().manual_seed(2)).loss.backward()
    assert _zero_or_missing(task) == []


def test_layer_decay_puts_beats_input_layers_at_zero():
    backbone = make_eat_backbone("beats-tiny", pooling="mean", target_frames=None)
    depth = len(backbone.encoder.blocks)
    ids = {n: eat_layer_id(n, depth, prefix="encoder.") for n, _ in backbone.named_parameters()}
    assert {ids[n] for n in ids if n.startswith("encoder.") and ".blocks." not in n} == {0}
    assert ids["encoder.blocks.2.attn.gate.weight"] == 3 and ids["projection.net.weight"] == depth + 1
    task = AttributeTask(backbone, 3, layer_decay=0.5)
    scales = {name: g["lr_scale"] for g in task.optimizer_groups(weight_decay=0.05) for name in g["names"]}
    assert scales["backbone.encoder.rel_pos_bias.weight"] == pytest.approx(0.5 ** (depth + 1))
    decay = {name: g["weight_decay"] for g in task.optimizer_groups(weight_decay=0.05) for name in g["names"]}
    assert decay["backbone.encoder.blocks.0.attn.gate_scale"] == 0.0 and decay["backbone.encoder.pos_conv.weight_g"] == 0.0
    assert decay["backbone.encoder.pos_conv.weight_v"] == 0.05


def test_cls_pooling_is_refused_for_beats():
    from asdlab.errors import ConfigError

    with pytest.raises(ConfigError, match="pooling='cls' is not available; choose mean"):
        make_eat_backbone("beats-tiny", pooling="cls")
    with pytest.raises(ConfigError, match="fine-tunes transformer presets"):
        make_eat_backbone("two-branch-cnn")


def test_tats_on_beats_lowers_its_loss_and_moves_the_teacher():
    torch.manual_seed(0)
    task = build_dap_task(PretrainSettings(preset="beats-tiny", clones=2, ema_start=0.9, ema_end=0.9), target_frames=96)
    teacher_before = {k: v.clone() for k, v in task.teacher.state_dict().items()}
    optimizer = torch.optim.AdamW(task.optimizer_groups(weight_decay=0.0), lr=1e-3)
    batch = {"spectrogram": torch.randn(2, 1, 96, 128, generator=torch.Generator().manual_seed(3))}
    losses = []
    for step in range(8):
        optimizer.zero_grad()
        out = task(batch, generator=torch.Generator().manual_seed(step))
        out.loss.backward()
        if step == 0:
            assert _zero_or_missing(task) == []  # student and decoder; the teacher takes no gradient
        optimizer.step()
        task.after_optimizer_step(step + 1)
        losses.append(float(out.loss.detach()))
    assert losses[-1] < losses[0]
    assert not any(p.requires_grad for p in task.teacher.parameters())
    assert not torch.equal(task.teacher.state_dict()["blocks.0.attn.qkv.weight"], teacher_before["blocks.0.attn.qkv.weight"])
