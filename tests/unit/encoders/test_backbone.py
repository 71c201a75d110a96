"""Backbone = front end + encoder + pooling, built by preset name: shapes, pooling, EAT padding, weights, errors."""

from __future__ import annotations

import pytest
import torch

from asdlab.encoders.backbone import Backbone, build_backbone, list_backbones
from asdlab.encoders.checkpoints import save_encoder
from asdlab.encoders.mobilenet import EfficientATTagger
from asdlab.errors import CheckpointError, ConfigError
from asdlab.features.normalize import eat_input

BIG = {"eat-base": 768, "eat-large": 1024, "sslam-base": 768, "beats-base": 768}  # built on the meta device only
SAMPLES = 9600  # 0.6 s at 16 kHz: 58 fbank frames


def _waves(batch: int = 2, samples: int = SAMPLES, seed: int = 0) -> torch.Tensor:
    return 0.1 * torch.randn(batch, samples, generator=torch.Generator().manual_seed(seed))


def test_the_issue_presets_are_registered():
    names = set(list_backbones())
    expected = {"eat-tiny", "eat-small", "eat-base", "eat-large", "two-branch-cnn", "mobilenet-mn04",
                "logmel-stats", "clip-level"}
    assert expected <= names


@pytest.mark.parametrize("name", list_backbones())
def test_every_preset_maps_waveforms_to_embeddings(name):
    if name in BIG:
        both = name != "beats-base"  # BEATs has no CLS: "mean" only
        backbone = build_backbone(name, device="meta", pooling="both" if both else "mean")
        assert backbone.embed_dim == (2 if both else 1) * BIG[name] and backbone.sample_rate == 16000
        return
    options = {"target_frames": None} if name.startswith(("eat-", "beats-")) else {}  # few tokens on CPU
    backbone = build_backbone(name, seed=0, **options).eval()
    assert isinstance(backbone, Backbone) and backbone.sample_rate == 16000
    x = _waves()
    with torch.no_grad():
        out = backbone(x)
        single = backbone(x[:1])
    assert out.shape == (2, backbone.embed_dim) and out.dtype == torch.float32
    assert torch.isfinite(out).all()
    torch.testing.assert_close(single, out[:1], rtol=1e-4, atol=1e-4)  # rows do not mix
    backbone.train()
    assert backbone(x).shape == out.shape  # same type and shape in train mode


@pytest.fixture(scope="module")
def tiny() -> Backbone:
    return build_backbone("eat-tiny", seed=0, target_frames=None).eval()


@torch.no_grad()
def test_eat_pooling_variants(tiny):
    x = _waves()
    features = tiny.encoder.forward_features(eat_input(x, target_frames=None))
    embeddings = {}
    for pooling in ("cls", "mean", "both"):
        backbone = Backbone(tiny.encoder, front_end=tiny.front_end, pooling=pooling)
        embeddings[pooling] = backbone(x)
        assert embeddings[pooling].shape == (2, backbone.embed_dim)
    assert tiny.pooling == "cls" and tiny.embed_dim == 192
    torch.testing.assert_close(embeddings["cls"], features.cls, rtol=0, atol=0)
    torch.testing.assert_close(embeddings["mean"], features.patches.mean(dim=1), rtol=1e-6, atol=1e-6)
    assert torch.equal(embeddings["both"], torch.cat([embeddings["cls"], embeddings["mean"]], dim=1))


def test_pooling_the_encoder_lacks_is_refused():
    with pytest.raises(ConfigError, match=r"mobilenet-mn04: pooling='cls' is not available; choose mean"):
        build_backbone("mobilenet-mn04", pooling="cls")
    with pytest.raises(ConfigError, match=r"logmel-stats: pooling='mean'.*its output is the embedding"):
        build_backbone("logmel-stats", pooling="mean")
    with pytest.raises(ConfigError, match="choose cls, mean, both"):
        build_backbone("eat-tiny", pooling="max")


@torch.no_grad()
def test_eat_pads_to_target_frames_and_masks_padding_on_request(tiny):
    x = _waves()
    encoder = tiny.encoder
    padded = build_backbone("eat-tiny", seed=0, pooling="mean").eval()  # default 1024 frames
    masked = build_backbone("eat-tiny", seed=0, pooling="mean", mask_padding=True).eval()
    cropped = build_backbone("eat-tiny", seed=0, target_frames=32).eval()
    assert torch.equal(padded.encoder.cls_token, encoder.cls_token)  # same seed, same model
    assert padded.front_end(x).shape == (2, 1, 1024, 128) and padded.target_frames == 1024
    assert tiny.front_end(x).shape == (2, 1, 64, 128)  # 58 frames -> next multiple of 16
    assert cropped.front_end(x).shape == (2, 1, 32, 128)

    unpadded = Backbone(encoder, front_end=tiny.front_end, pooling="mean")(x)
    # With the mask, the 60 all-padding time rows are invisible: same as padding only to 64 frames.
    torch.testing.assert_close(masked(x), unpadded, rtol=1e-5, atol=1e-5)
    # EAT's own behaviour (no mask) lets the padding change the embedding.
    assert (padded(x) - unpadded).abs().max() > 1e-2
    # The CLS path agrees with the manual front end + encoder at 1024 frames.
    cls_backbone = Backbone(padded.encoder, front_end=padded.front_end)
    torch.testing.assert_close(cls_backbone(x), encoder(eat_input(x)), rtol=0, atol=0)


def test_eat_only_options_are_refused_elsewhere():
    with pytest.raises(ConfigError, match="logmel-stats: target_frames applies to EAT and BEATs backbones only"):
        build_backbone("logmel-stats", target_frames=None)
    with pytest.raises(ConfigError, match="beats-tiny: mask_padding applies to EAT backbones only"):
        build_backbone("beats-tiny", mask_padding=True)
    with pytest.raises(ConfigError, match="eat-tiny: sample_rate=32000; EAT and BEATs take 16000 Hz"):
        build_backbone("eat-tiny", sample_rate=32000)
    with pytest.raises(ConfigError, match=r"beats-tiny: pooling='cls' is not available; choose mean"):
        build_backbone("beats-tiny", pooling="cls")
    with pytest.raises(ConfigError, match=r"eat-tiny: bad encoder option\(s\) \['widht'\]"):
        build_backbone("eat-tiny", widht=3)


@torch.no_grad()
def test_mobilenet_backbone_is_the_tagger_embedding():
    backbone = build_backbone("mobilenet-mn04", seed=0).eval()
    assert backbone.embed_dim == 384 and backbone.pooling == "mean"
    x = _waves(samples=16000)
    tagger = EfficientATTagger(backbone.encoder, sample_rate=16000).eval()
    torch.testing.assert_close(backbone(x), tagger.embed(x), rtol=0, atol=0)
    assert build_backbone("mobilenet-mn04", sample_rate=8000).front_end.factor == 4


def test_sample_rate_reaches_encoders_that_have_one():
    backbone = build_backbone("logmel-stats", sample_rate=8000)
    assert backbone.sample_rate == 8000 and backbone.encoder.sample_rate == 8000
    assert build_backbone("clip-level", sample_rate=22050).sample_rate == 22050


def test_seed_gives_the_same_model_and_leaves_the_global_rng_alone():
    state = torch.random.get_rng_state()
    a = build_backbone("eat-tiny", seed=5).state_dict()
    b = build_backbone("eat-tiny", seed=5).state_dict()
    c = build_backbone("eat-tiny", seed=6).state_dict()
    assert torch.equal(torch.random.get_rng_state(), state)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["encoder.cls_token"], c["encoder.cls_token"])


@torch.no_grad()
def test_weights_round_trip_through_our_export(tmp_path):
    original = build_backbone("eat-tiny", seed=1, pooling="both", target_frames=None).eval()
    path = tmp_path / "tiny.safetensors"
    save_encoder(original.encoder, path, preset="eat-tiny")
    loaded = build_backbone("eat-tiny", weights=path, pooling="both", target_frames=None)
    assert not loaded.training
    x = _waves()
    torch.testing.assert_close(loaded(x), original(x), rtol=0, atol=0)
    with pytest.raises(CheckpointError, match=r"tiny\.safetensors: holds a 'eat-tiny' encoder, not 'eat-small'"):
        build_backbone("eat-small", weights=path)


@torch.no_grad()
def test_mn04_state_dict_loads_and_foreign_files_are_refused(tmp_path):
    original = build_backbone("mobilenet-mn04", seed=2).eval()
    path = tmp_path / "mn04.pt"
    torch.save(original.encoder.state_dict(), path)
    loaded = build_backbone("mobilenet-mn04", weights=path)
    x = _waves(samples=16000)
    torch.testing.assert_close(loaded(x), original(x), rtol=0, atol=0)
    with pytest.raises(CheckpointError, match=r"mn04\.pt: 'two-branch-cnn' loads only asdlab encoder files"):
        build_backbone("two-branch-cnn", weights=path)


def test_unknown_name_lists_the_choices():
    with pytest.raises(ConfigError, match=r"unknown backbone 'eat-huge'; choose one of .*eat-tiny.*mobilenet-mn04"):
        build_backbone("eat-huge")
