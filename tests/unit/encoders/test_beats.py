"""BEATsEncoder against the upstream computation (written out naively from the official-layout keys), its
relative-position buckets by hand, masks and padding, size, gradients, and the BEATs front end."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from asdlab.encoders import create_encoder
from asdlab.encoders.beats import BEATS_PRESETS, BEATsEncoder, relative_position_bucket
from asdlab.encoders.beats_checkpoint import beats_key_shapes, convert_beats_state
from asdlab.errors import DataError
from asdlab.features import KaldiFbank
from asdlab.features.normalize import BEATS_FBANK_MEAN, BEATS_FBANK_STD, BEATsFrontEnd, beats_input


@pytest.fixture(scope="module")
def tiny() -> BEATsEncoder:
    torch.manual_seed(0)
    return create_encoder("beats-tiny").eval()


def test_buckets_by_hand():
    # 320 buckets, max distance 800: 160 per direction, offsets < 80 exact, 80..800 log-spaced over 80 more.
    offsets = torch.tensor([0, 1, -1, 79, -79, 80, 800, 5000, -5000, 253])
    got = relative_position_bucket(offsets, num_buckets=320, max_distance=800).tolist()
    # 253: 80 + floor(ln(253 / 80) / ln(10) * 80) = 80 + floor(39.99...) = 119, + 160 for a positive offset
    assert got == [0, 161, 1, 239, 79, 240, 319, 319, 159, 160 + 80 + math.floor(math.log(253 / 80) / math.log(10) * 80)]


def test_token_grid_drops_trailing_frames(tiny):
    x = tiny.example_input(2, num_frames=70, generator=torch.Generator().manual_seed(1))  # 4 patches + 6 frames
    with torch.no_grad():
        features = tiny.forward_features(x, return_layer_outputs=True)
        cropped = tiny.forward_features(x[:, :, :64])
    assert features.patches.shape == (2, 4 * 8, 192) and features.cls is None
    assert len(features.layer_mlp_outputs) == BEATS_PRESETS["beats-tiny"].depth
    torch.testing.assert_close(features.patches, cropped.patches, rtol=0, atol=0)


def _reference_forward(state: dict[str, torch.Tensor], cfg: dict, x: torch.Tensor) -> torch.Tensor:
    """BEATs' forward pass as upstream computes it, on the file's own keys (separate q / k / v, the
    1/32 query trick with the row max, the bias repeated per batch and head, the gate), naively."""
    B = x.shape[0]
    feats = F.conv2d(x, state["patch_embedding.weight"], stride=16)  # (B, P, T/16, 8)
    feats = feats.reshape(B, feats.shape[1], -1).transpose(1, 2)
    feats = F.layer_norm(feats, feats.shape[-1:], state["layer_norm.weight"], state["layer_norm.bias"])
    h = F.linear(feats, state["post_extract_proj.weight"], state["post_extract_proj.bias"])
    g, v = state["encoder.pos_conv.0.weight_g"], state["encoder.pos_conv.0.weight_v"]
    weight = g * v / torch.sqrt((v**2).sum(dim=(0, 1), keepdim=True))
    conv = F.conv1d(h.transpose(1, 2), weight, state["encoder.pos_conv.0.bias"], padding=cfg["conv_pos"] // 2,
                    groups=cfg["conv_pos_groups"])[..., :-1]
    h = h + F.gelu(conv).transpose(1, 2)
    h = F.layer_norm(h, h.shape[-1:], state["encoder.layer_norm.weight"], state["encoder.layer_norm.bias"])
    N, D = h.shape[1], h.shape[2]
    H = cfg["encoder_attention_heads"]
    d = D // H
    alpha_deep = (2 * cfg["encoder_layers"]) ** 0.25
    rel = torch.arange(N)[None, :] - torch.arange(N)[:, None]
    buckets = relative_position_bucket(rel, num_buckets=cfg["num_buckets"], max_distance=cfg["max_distance"])
    bias = state["encoder.layers.0.self_attn.relative_attention_bias.weight"][buckets].permute(2, 0, 1)  # (H, N, N)
    bias = bias[None].repeat(B, 1, 1, 1).reshape(B * H, N, N)
    for i in range(cfg["encoder_layers"]):
        p = f"encoder.layers.{i}."
        lin = lambda name, t: F.linear(t, state[p + name + ".weight"], state[p + name + ".bias"])  # noqa: E731
        q = lin("self_attn.q_proj", h) * d**-0.5 / 32
        k, vv = lin("self_attn.k_proj", h), lin("self_attn.v_proj", h)
        q, k, vv = (t.reshape(B, N, H, d).transpose(1, 2).reshape(B * H, N, d) for t in (q, k, vv))
        logits = q @ k.transpose(1, 2)
        logits = (logits - logits.max(dim=-1, keepdim=True).values) * 32
        query = q.reshape(B, H, N, d) * 32 / d**-0.5
        gates = torch.sigmoid(lin("self_attn.grep_linear", query).reshape(B, H, N, 2, 4).sum(-1))
        gate_a, gate_b = gates[..., :1], gates[..., 1:]
        scale = gate_a * (gate_b * state[p + "self_attn.grep_a"] - 1.0) + 2.0
        logits = logits + scale.reshape(B * H, N, 1) * bias
        attended = (torch.softmax(logits, dim=-1) @ vv).reshape(B, H, N, d).transpose(1, 2).reshape(B, N, D)
        h = F.layer_norm(h * alpha_deep + lin("self_attn.out_proj", attended), (D,),
                         state[p + "self_attn_layer_norm.weight"], state[p + "self_attn_layer_norm.bias"])
        mlp = lin("fc2", F.gelu(lin("fc1", h)))
        h = F.layer_norm(h * alpha_deep + mlp, (D,), state[p + "final_layer_norm.weight"], state[p + "final_layer_norm.bias"])
    return h


def _official_state(preset: str, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    state = {k: 0.2 * torch.randn(s, generator=g) for k, s in beats_key_shapes(preset).items()}
    shared = state["encoder.layers.0.self_attn.relative_attention_bias.weight"]
    for key in state:
        if key.endswith("relative_attention_bias.weight"):
            state[key] = shared  # one module upstream, stored once per layer
        elif key.endswith(("norm.weight", "layer_norm.weight", "grep_a")):
            state[key] = 1.0 + 0.1 * torch.randn(state[key].shape, generator=g)
    return state


def test_encoder_equals_the_upstream_computation_on_converted_weights():
    p = BEATS_PRESETS["beats-tiny"]
    cfg = {"conv_pos": p.conv_pos, "conv_pos_groups": p.conv_pos_groups, "encoder_attention_heads": p.num_heads,
           "encoder_layers": p.depth, "num_buckets": p.num_buckets, "max_distance": p.max_distance}
    state = _official_state("beats-tiny", seed=3)
    ours, ignored = convert_beats_state(state, "beats-tiny")
    encoder = create_encoder("beats-tiny").eval()
    encoder.load_state_dict(ours, strict=True)
    x = torch.randn(2, 1, 160, 128, generator=torch.Generator().manual_seed(4))  # 80 tokens: offsets past 40 (log buckets)
    with torch.no_grad():
        expected = _reference_forward(state, cfg, x)
        got = encoder.forward_features(x).patches
    assert ignored == ()
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_kept_patches_keep_their_positions(tiny):
    x = tiny.example_input(2, num_frames=64, generator=torch.Generator().manual_seed(5))
    keep_all = torch.ones(2, 32, dtype=torch.bool)
    keep = torch.zeros(2, 32, dtype=torch.bool)
    keep[0, [1, 5, 9, 30]] = True
    keep[1, [0, 2, 3, 31]] = True
    with torch.no_grad():
        full = tiny.forward_features(x).patches
        torch.testing.assert_close(tiny.forward_features(x, patch_mask=keep_all).patches, full, rtol=0, atol=0)
        masked = tiny.forward_features(x, patch_mask=keep).patches
        # the same kept tokens in another clip: a lone row, computed alone, must equal its batched self
        alone = tiny.forward_features(x[1:], patch_mask=keep[1:]).patches
    assert masked.shape == (2, 4, 192)
    torch.testing.assert_close(masked[1:], alone, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="every row must keep the same"):
        bad = keep.clone()
        bad[0, 0] = True
        tiny.forward_features(x, patch_mask=bad)


def test_padded_frames_change_nothing(tiny):
    x = tiny.example_input(2, num_frames=64, generator=torch.Generator().manual_seed(6))
    padded = torch.cat([x, torch.randn(2, 1, 32, 128)], dim=2)  # two padding patch rows of noise
    mask = torch.zeros(2, 96, dtype=torch.bool)
    mask[:, 64:] = True
    with torch.no_grad():
        features = tiny.forward_features(padded, padding_mask=mask)
        torch.testing.assert_close(features.patches[:, :32], tiny.forward_features(x).patches, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(tiny.pool(features), tiny(x), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="no CLS"):
        tiny.pool(features, "cls")


def test_every_parameter_trains_with_padding_and_masks():
    """Upstream's in-place write into the padded tokens broke backward; here the padded, masked path trains."""
    torch.manual_seed(0)
    encoder = create_encoder("beats-tiny", drop_path=0.1).train()
    x = encoder.example_input(2, num_frames=96, generator=torch.Generator().manual_seed(7))
    padding = torch.zeros(2, 96, dtype=torch.bool)
    padding[1, 64:] = True
    keep = torch.ones(2, 48, dtype=torch.bool)
    keep[:, ::3] = False
    features = encoder.forward_features(x, padding_mask=padding, patch_mask=keep, return_layer_outputs=True)
    (encoder.pool(features).square().sum() + sum(h.square().mean() for h in features.layer_mlp_outputs)).backward()
    assert [n for n, p in encoder.named_parameters() if p.grad is None or not bool(p.grad.abs().sum() > 0)] == []


def test_base_size_is_the_published_90_million():
    with torch.device("meta"):
        base = create_encoder("beats-base")
    ours = sum(p.numel() for p in base.parameters())
    assert ours == 90_311_792
    assert abs(ours - 90e6) / 90e6 < 0.005  # BEATs paper: 90 M
    # the released files store the shared relative-bias table once per layer: 11 extra copies of 320 x 12
    in_file = sum(math.prod(s) for s in beats_key_shapes("beats-base").values())
    assert in_file == ours + 11 * 320 * 12


def test_front_end_is_the_scaled_povey_fbank_cut_to_patches():
    wave = torch.randn(2, 16000, generator=torch.Generator().manual_seed(8)) * 0.1  # 98 frames -> 96
    x = BEATsFrontEnd()(wave)
    reference = KaldiFbank(num_mel_bins=128, window_type="povey")(wave * 32768.0)[:, :96]
    assert x.shape == (2, 1, 96, 128)
    torch.testing.assert_close(x[:, 0], (reference - BEATS_FBANK_MEAN) / (2 * BEATS_FBANK_STD))
    # no clip-mean removal (Kaldi removes each frame's DC offset): a constant offset barely changes anything
    torch.testing.assert_close(beats_input(wave + 0.01), x, rtol=0, atol=2e-3)
    assert BEATsFrontEnd(target_frames=32)(wave).shape == (2, 1, 32, 128)
    with pytest.raises(DataError, match="at least 16 fbank frames"):
        beats_input(torch.randn(1, 2000))
