"""EATEncoder / EATDecoder against EAT.md: shapes, masks, position table, attention, block order, sizes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from asdlab.encoders import create_encoder
from asdlab.encoders.eat import EAT_PRESETS, EATDecoder, EATEncoder, EATFeatures, create_eat_decoder
from asdlab.encoders.layers import Attention, PostNormBlock, sincos_2d_table


@pytest.fixture(scope="module")
def tiny() -> EATEncoder:
    torch.manual_seed(0)
    return create_encoder("eat-tiny").eval()


def _spec(batch: int, frames: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 1, frames, 128, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("frames", [16, 64, 96])
def test_shapes_for_variable_length(tiny, frames):
    features = tiny.forward_features(_spec(2, frames))
    n = frames // 16 * 8
    assert isinstance(features, EATFeatures)
    assert features.cls.shape == (2, 192)
    assert features.patches.shape == (2, n, 192)
    assert features.padding_mask is None and features.layer_mlp_outputs is None
    assert torch.isfinite(features.patches).all()
    assert tiny(_spec(2, frames)).shape == (2, 192)
    assert tiny.pool(features, "mean").shape == (2, 192)
    assert torch.equal(tiny.pool(features, "both"), torch.cat([features.cls, features.patches.mean(1)], dim=1))


def test_layer_mlp_outputs_count_and_shapes(tiny):
    features = tiny.forward_features(_spec(2, 32), return_layer_outputs=True)
    assert len(features.layer_mlp_outputs) == EAT_PRESETS["eat-tiny"].depth
    assert all(h.shape == (2, 2 * 8 + 1, 192) for h in features.layer_mlp_outputs)


def test_return_type_does_not_depend_on_mode():
    model = create_encoder("eat-tiny", drop_path=0.5)
    x = _spec(2, 32)
    train = model.train().forward_features(x)
    evaluated = model.eval().forward_features(x)
    assert type(train) is type(evaluated) and train.patches.shape == evaluated.patches.shape
    assert torch.equal(model(x), model(x))  # eval: drop-path off, deterministic
    model.train()
    assert not torch.equal(model(x), model(x))  # drop-path active while training


def test_drop_path_rises_linearly_over_blocks():
    model = create_encoder("eat-tiny", drop_path=0.3)
    assert [round(block.drop_path.p, 6) for block in model.blocks] == [0.0, 0.1, 0.2, 0.3]


def test_input_validation(tiny):
    with pytest.raises(ValueError, match="multiple of 16"):
        tiny(_spec(1, 40))
    with pytest.raises(ValueError, match="expected input"):
        tiny(torch.zeros(1, 1, 32, 64))
    with pytest.raises(ValueError, match="at most"):
        tiny(torch.zeros(1, 1, 16 * 769, 128))
    with pytest.raises(ValueError, match="'cls', 'mean' or 'both'"):
        tiny.pool(tiny.forward_features(_spec(1, 16)), "max")


def test_padding_mask_makes_padded_clip_equal_the_short_clip(tiny):
    short, long = 48, 96
    x_short = _spec(1, short, seed=1)
    x_pad = torch.zeros(1, 1, long, 128)
    x_pad[:, :, :short] = x_short
    padding = torch.zeros(1, long, dtype=torch.bool)
    padding[:, short:] = True
    alone = tiny.forward_features(x_short)
    padded = tiny.forward_features(x_pad, padding_mask=padding)
    n_short = short // 16 * 8
    assert padded.padding_mask.shape == (1, long // 16 * 8)
    assert not padded.padding_mask[0, :n_short].any() and padded.padding_mask[0, n_short:].all()
    torch.testing.assert_close(padded.cls, alone.cls, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(padded.patches[:, :n_short], alone.patches, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(tiny.pool(padded, "mean"), tiny.pool(alone, "mean"), rtol=1e-5, atol=1e-5)
    # Without the mask the padding changes the result.
    assert not torch.allclose(tiny.forward_features(x_pad).cls, alone.cls, atol=1e-3)


def test_partial_padding_rows_are_not_padding(tiny):
    padding = torch.zeros(1, 64, dtype=torch.bool)
    padding[:, 40:] = True  # row 2 (frames 32..47) is partly real
    features = tiny.forward_features(_spec(1, 64), padding_mask=padding)
    assert features.padding_mask[0].view(4, 8).all(dim=1).tolist() == [False, False, False, True]


def _random_keep_mask(batch: int, n: int, k: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    order = torch.stack([torch.randperm(n, generator=g) for _ in range(batch)])
    mask = torch.zeros(batch, n, dtype=torch.bool)
    mask.scatter_(1, order[:, :k], True)
    return mask


def test_patch_mask_keeps_exactly_k_tokens(tiny):
    mask = _random_keep_mask(3, 64, 13)
    features = tiny.forward_features(_spec(3, 128), patch_mask=mask, return_layer_outputs=True)
    assert features.patches.shape == (3, 13, 192)
    assert all(h.shape == (3, 14, 192) for h in features.layer_mlp_outputs)
    uneven = mask.clone()
    uneven[0, ~mask[0]] = True
    with pytest.raises(ValueError, match="same"):
        tiny.forward_features(_spec(3, 128), patch_mask=uneven)


def test_patch_mask_equals_encoding_the_gathered_tokens(tiny):
    x = _spec(2, 64)
    mask = _random_keep_mask(2, 32, 7, seed=3)
    features = tiny.forward_features(x, patch_mask=mask)

    # Manual path: embed, add the table rows, gather kept patches in grid order, then encode.
    tokens = tiny.patch_embed(x).flatten(2).transpose(1, 2) + tiny.pos_table[:32]  # (B, 32, D)
    kept = torch.stack([tokens[b, mask[b].nonzero().squeeze(1)] for b in range(2)])  # (B, 7, D)
    h = tiny.pre_norm(torch.cat([tiny.cls_token.expand(2, -1, -1), kept], dim=1))
    for block in tiny.blocks:
        h, _ = block(h)
    torch.testing.assert_close(features.cls, h[:, 0])
    torch.testing.assert_close(features.patches, h[:, 1:])


def test_patch_and_padding_masks_together(tiny):
    x = _spec(1, 64)
    padding = torch.zeros(1, 64, dtype=torch.bool)
    padding[:, 48:] = True
    keep = torch.zeros(1, 32, dtype=torch.bool)
    keep[0, [0, 5, 30, 31]] = True  # two real patches, two padding patches
    features = tiny.forward_features(x, padding_mask=padding, patch_mask=keep)
    assert features.padding_mask.tolist() == [[False, False, True, True]]


def test_position_table_matches_the_direct_formula_and_orientation():
    dim, height, width = 16, 5, 8
    table = sincos_2d_table(dim, height, width)
    assert table.shape == (height * width, dim)
    quarter = dim // 4
    for t in range(height):
        for f in range(width):
            row = table[t * width + f]
            for i in range(quarter):
                omega = 10000.0 ** (-i / quarter)
                # First half: frequency index f; second half: time index t.
                assert row[i].item() == pytest.approx(math.sin(f * omega), abs=1e-6)
                assert row[quarter + i].item() == pytest.approx(math.cos(f * omega), abs=1e-6)
                assert row[2 * quarter + i].item() == pytest.approx(math.sin(t * omega), abs=1e-6)
                assert row[3 * quarter + i].item() == pytest.approx(math.cos(t * omega), abs=1e-6)


def _mae_recipe(dim: int, height: int, width: int) -> np.ndarray:
    """MAE's get_2d_sincos_pos_embed as EAT runs it: float32 NumPy, meshgrid(width, height)."""

    def one_axis(d: int, pos: np.ndarray) -> np.ndarray:
        omega = 1.0 / 10000 ** (np.arange(d // 2, dtype=np.float32) / np.float32(d / 2.0))
        angles = np.einsum("m,d->md", pos.reshape(-1), omega)
        return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)

    grid = np.stack(np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32)))
    grid = grid.reshape(2, 1, height, width)  # grid[0]: width (frequency) index, grid[1]: height (time)
    return np.concatenate([one_axis(dim // 2, grid[0]), one_axis(dim // 2, grid[1])], axis=1)


def test_position_table_equals_the_mae_recipe_used_by_eat():
    mae = torch.from_numpy(_mae_recipe(192, 768, 8))
    # Differences are MAE's float32 rounding of p * omega for p up to 767.
    assert (mae - sincos_2d_table(192, 768, 8)).abs().max().item() < 2e-4


def test_encoder_table_covers_768_by_8_patches(tiny):
    assert tiny.pos_table.shape == (768 * 8, 192)
    torch.testing.assert_close(tiny.pos_table, sincos_2d_table(192, 768, 8))
    assert "pos_table" not in tiny.state_dict()  # fixed, rebuilt from the formula


def _manual_attention(attn: Attention, x: torch.Tensor, key_padding: torch.Tensor | None) -> torch.Tensor:
    B, N, D = x.shape
    H = attn.num_heads
    q, k, v = F.linear(x, attn.qkv.weight, attn.qkv.bias).split(D, dim=-1)
    q, k, v = (t.reshape(B, N, H, D // H).transpose(1, 2) for t in (q, k, v))  # (B, H, N, D/H)
    scores = q @ k.transpose(-1, -2) / math.sqrt(D // H)  # (B, H, N, N)
    if key_padding is not None:
        scores = scores.masked_fill(key_padding[:, None, None, :], float("-inf"))
    out = (scores.softmax(-1) @ v).transpose(1, 2).reshape(B, N, D)  # (B, N, D)
    return F.linear(out, attn.proj.weight, attn.proj.bias)


def test_fused_attention_equals_manual_softmax_attention():
    torch.manual_seed(1)
    attn = Attention(64, num_heads=4)
    for module in (attn.qkv, attn.proj):
        torch.nn.init.normal_(module.bias)
    x = torch.randn(3, 11, 64)
    torch.testing.assert_close(attn(x), _manual_attention(attn, x, None), rtol=1e-5, atol=1e-5)
    padding = torch.zeros(3, 11, dtype=torch.bool)
    padding[1, 6:] = True
    padding[2, 2:] = True
    torch.testing.assert_close(
        attn(x, key_padding_mask=padding), _manual_attention(attn, x, padding), rtol=1e-5, atol=1e-5
    )


def test_block_is_post_ln_in_eat_order():
    torch.manual_seed(2)
    block = PostNormBlock(64, num_heads=4).eval()
    for norm in (block.norm1, block.norm2):
        torch.nn.init.normal_(norm.weight)
        torch.nn.init.normal_(norm.bias)
    x = torch.randn(2, 9, 64)
    out, h = block(x)

    def ln(t, norm):
        return F.layer_norm(t, (64,), norm.weight, norm.bias, eps=1e-6)

    a = ln(x + _manual_attention(block.attn, x, None), block.norm1)
    fc1, fc2 = block.mlp.fc1, block.mlp.fc2
    expected_h = F.linear(F.gelu(F.linear(a, fc1.weight, fc1.bias)), fc2.weight, fc2.bias)
    torch.testing.assert_close(h, expected_h, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out, ln(a + expected_h, block.norm2), rtol=1e-5, atol=1e-5)


def test_initialisation_follows_eat():
    torch.manual_seed(3)
    model = create_encoder("eat-small")
    qkv = model.blocks[0].attn.qkv
    assert qkv.weight.std().item() == pytest.approx(0.02, rel=0.02)
    assert qkv.bias.abs().max().item() == 0.0
    assert model.cls_token.std().item() == pytest.approx(1.0, rel=0.2)
    bound = math.sqrt(6.0 / (256 + 384))  # xavier-uniform on the (D, 256) view
    weight = model.patch_embed.weight
    assert weight.abs().max().item() <= bound
    assert weight.std().item() == pytest.approx(bound / math.sqrt(3.0), rel=0.02)


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("name, encoder_m, total_m", [("eat-base", 85.25, 87.84), ("eat-large", 302.58, 308.54)])
def test_parameter_counts(name, encoder_m, total_m):
    with torch.device("meta"):
        encoder, decoder = create_encoder(name), create_eat_decoder(name)
    n_enc, n_total = _count(encoder), _count(encoder) + _count(decoder)
    print(f"{name}: encoder {n_enc / 1e6:.2f} M, with decoder {n_total / 1e6:.2f} M")
    assert n_enc / 1e6 == pytest.approx(encoder_m, abs=0.01)
    assert n_total / 1e6 == pytest.approx(total_m, abs=0.01)  # EAT.md: ≈88 M (base), ≈309 M (large)


def test_decoder_keys_and_shapes_match_the_release():
    with torch.device("meta"):
        decoder = create_eat_decoder("eat-base")
    shapes = {k: tuple(v.shape) for k, v in decoder.state_dict().items()}
    assert shapes["blocks.0.0.weight"] == (768, 48, 3, 3)
    expected = [f"blocks.{i}.0.{p}" for i in range(6) for p in ("weight", "bias")] + ["proj.weight", "proj.bias"]
    assert sorted(shapes) == sorted(expected)
    with torch.device("meta"):
        large = create_eat_decoder("eat-large")
    assert tuple(large.blocks[2][0].weight.shape) == (1024, 64, 5, 5) and len(large.blocks) == 3


def test_decoder_equals_hand_computation():
    torch.manual_seed(4)
    decoder = EATDecoder(embed_dim=32, num_layers=2, kernel_size=3, groups=16)
    keep = _random_keep_mask(2, 24, 5, seed=5)  # 3 x 8 grid
    patches = torch.randn(2, 5, 32)
    out = decoder(patches, keep, generator=torch.Generator().manual_seed(7))
    assert out.shape == (2, 24, 32)

    grid = 0.01 * torch.randn(2, 24, 32, generator=torch.Generator().manual_seed(7))
    for b in range(2):
        grid[b, keep[b]] = patches[b]
    x = grid.view(2, 3, 8, 32).permute(0, 3, 1, 2)  # (B, D, 3, 8)
    for block in decoder.blocks:
        conv = block[0]
        y = F.conv2d(x, conv.weight, conv.bias, padding=1, groups=16)
        y = F.layer_norm(y.permute(0, 2, 3, 1), (32,), eps=1e-5).permute(0, 3, 1, 2)
        x = x + F.gelu(y)
    expected = F.linear(x.permute(0, 2, 3, 1).reshape(2, 24, 32), decoder.proj.weight, decoder.proj.bias)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


def test_decoder_feeds_on_encoder_output(tiny):
    keep = _random_keep_mask(2, 32, 6)
    features = tiny.forward_features(_spec(2, 64), patch_mask=keep)
    decoder = create_eat_decoder("eat-tiny")
    assert decoder(features.patches, keep).shape == (2, 32, 192)
