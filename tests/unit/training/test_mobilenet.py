"""MobileNet attribute task: gradients reach every trainable weight, frozen layers stay frozen, layer-wise
learning rates, crops, the mel cache, and the pre-trained start (with ../shared)."""

from pathlib import Path

import pytest
import torch

from asdlab.encoders.mobilenet import MN04_FILENAME, load_mn04_weights
from asdlab.errors import ConfigError
from asdlab.training.mobilenet import MelClips, MobileNetAttributeTask, _random_crops, make_mobilenet_backbone

SAMPLES = 8000  # 0.5 s at 16 kHz: 100 frames at 32 kHz / hop 320


def _batch(n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"waveform": torch.randn(n, SAMPLES, generator=g) * 0.1, "target": torch.tensor([0, 1, 2, 1][:n])}


def _task(embed_layer=10, **options):
    backbone = make_mobilenet_backbone(embed_layer=embed_layer, projection_dim=16, seed=0)
    return MobileNetAttributeTask(backbone, 3, time_width=4, freq_width=8, **options)


def test_gradient_reaches_every_trainable_parameter_and_nothing_else():
    task = _task(head="arcface", crop_frames=64).train()
    out = task(_batch(), generator=torch.Generator().manual_seed(1))
    out.loss.backward()
    assert torch.isfinite(out.loss) and {"loss_attr", "acc"} <= set(out.logs)
    trainable = {n for n, p in task.named_parameters() if p.requires_grad}
    touched = {n for n, p in task.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert trainable == touched
    assert "backbone.encoder.features.0.0.weight" in touched and "backbone.encoder.features.10.block.0.0.weight" in touched
    assert "head.centres" in touched and "backbone.projection.net.weight" in touched
    # the AudioSet classifier and the layers after embed_layer never reach the embedding: frozen
    frozen = {n for n, p in task.named_parameters() if not p.requires_grad}
    assert frozen and all(n.startswith(("backbone.encoder.classifier.", "backbone.encoder.features.1")) for n in frozen)
    assert "backbone.encoder.features.11.block.0.0.weight" in frozen
    assert not any(n.startswith("backbone.encoder.features.10.") for n in frozen)


def test_every_head_trains_on_a_mel_batch():
    for head in ("adacos", "sc-adacos"):
        task = _task(embed_layer=6, head=head, sub_clusters=2)
        mel = task.backbone.front_end(_batch()["waveform"])
        out = task({"mel": mel, "target": _batch()["target"]}, generator=torch.Generator().manual_seed(0))
        out.loss.backward()
        assert torch.isfinite(out.loss)
        assert all(p.grad is not None for p in task.parameters() if p.requires_grad)


def test_layer_wise_learning_rates():
    task = _task(embed_layer=10, layer_decay=0.5)
    scales = {n: g["lr_scale"] for g in task.optimizer_groups(weight_decay=0.0) for n in g["names"]}
    assert scales["head.centres"] == 1.0 and scales["backbone.projection.net.weight"] == 1.0
    assert scales["backbone.encoder.features.10.block.0.0.weight"] == pytest.approx(0.5)
    assert scales["backbone.encoder.features.0.0.weight"] == pytest.approx(0.5**11)
    assert not any(n.startswith("backbone.encoder.classifier") for n in scales)
    flat = _task(embed_layer=10, layer_decay=1.0)
    assert {g["lr_scale"] for g in flat.optimizer_groups(weight_decay=0.0)} == {1.0}


def test_random_crops_are_slices_of_each_clip():
    mel = torch.arange(2 * 3 * 10, dtype=torch.float32).view(2, 1, 3, 10)
    crops = _random_crops(mel, 4, torch.Generator().manual_seed(0))
    assert crops.shape == (2, 1, 3, 4)
    for i in range(2):
        start = int(crops[i, 0, 0, 0] - mel[i, 0, 0, 0])
        assert torch.equal(crops[i], mel[i, :, :, start: start + 4])
    assert _random_crops(mel, 12, torch.Generator()) is mel  # shorter than the crop: whole clips
    with pytest.raises(ConfigError, match="crop_frames must be at least 32"):
        _task(crop_frames=8)


def test_mel_clips_compute_each_mel_once():
    backbone = make_mobilenet_backbone(embed_layer=6, projection_dim=None, seed=0)
    clips = [{"waveform": w, "target": torch.tensor(i)} for i, w in enumerate(_batch(2)["waveform"])]
    data = MelClips(clips, backbone.front_end)
    first = data[1]
    assert set(first) == {"mel", "target"} and first["mel"].shape == (1, 128, 1 + (2 * SAMPLES - 1) // 320)
    torch.testing.assert_close(first["mel"], backbone.front_end(clips[1]["waveform"][None])[0])
    assert data[1]["mel"] is first["mel"] and len(data) == 2


def test_not_a_mobilenet_is_refused():
    from asdlab.encoders.backbone import build_backbone

    with pytest.raises(ConfigError, match="fine-tunes MobileNet presets only"):
        make_mobilenet_backbone("two-branch-cnn-small", pooling=None)
    with pytest.raises(ConfigError, match="MobileNetAttributeTask fine-tunes MobileNet backbones"):
        MobileNetAttributeTask(build_backbone("logmel-stats"), 2)


def test_pretrained_start_loads_strictly(shared_dir: Path):
    path = shared_dir / "models" / "efficientat-mn04" / MN04_FILENAME
    if not path.is_file():
        pytest.skip(f"{path} is missing from ../shared")
    backbone = make_mobilenet_backbone(weights=str(path), embed_layer=10, projection_dim=256, seed=0)
    reference = load_mn04_weights(path).state_dict()
    ours = backbone.encoder.state_dict()
    assert ours.keys() == reference.keys()
    assert all(torch.equal(ours[k], v) for k, v in reference.items())
    assert backbone.embed_dim == 256 and backbone.pooled_dim == 256
