"""The fast paths of EAT's student agree with the reference computation: every decoder convolution
("conv-nhwc", "matmul") with nn.Conv2d on NCHW maps (forward and every gradient), the clones sharing
one patch embedding with repeated inputs, and a known kept count with the host-checked one."""

import pytest
import torch
import torch.nn.functional as F

from asdlab.encoders.eat import DECODER_CONVS, EATDecoder, eat_tiny, grouped_conv_matmul


def _keep(rows: int, patches: int, kept: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    keep = torch.zeros(rows, patches, dtype=torch.bool)
    for r in range(rows):
        keep[r, torch.randperm(patches, generator=generator)[:kept]] = True
    return keep


@pytest.mark.parametrize("kernel", [3, 5])
@pytest.mark.parametrize("bias", [True, False])
def test_grouped_conv_matmul_equals_conv2d(kernel, bias):
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(2, 5, 8, 32, generator=generator)  # (B, H, W, C)
    weight = torch.randn(32, 2, kernel, kernel, generator=generator)  # 16 groups of 2 channels
    b = torch.randn(32, generator=generator) if bias else None
    expected = F.conv2d(x.permute(0, 3, 1, 2), weight, b, padding=kernel // 2, groups=16).permute(0, 2, 3, 1)
    torch.testing.assert_close(grouped_conv_matmul(x, weight, b, groups=16), expected, rtol=1e-5, atol=1e-5)


def _run(decoder: EATDecoder, conv: str, patches: torch.Tensor, keep: torch.Tensor):
    decoder.conv = conv
    decoder.zero_grad(set_to_none=True)
    patches = patches.detach().clone().requires_grad_(True)
    out = decoder(patches, keep, generator=torch.Generator().manual_seed(7))
    weights = torch.linspace(-1, 1, out.numel()).view_as(out)  # a loss that weighs every output differently
    (out * weights).sum().backward()
    grads = {name: p.grad.clone() for name, p in decoder.named_parameters()}
    return out.detach(), patches.grad, grads


@pytest.mark.parametrize("conv", [c for c in DECODER_CONVS if c != "conv"])
@pytest.mark.parametrize("kernel, layers", [(3, 2), (5, 1)])
def test_every_decoder_conv_matches_the_reference_forward_and_gradients(conv, kernel, layers):
    torch.manual_seed(3)
    decoder = EATDecoder(embed_dim=64, num_layers=layers, kernel_size=kernel, groups=16)
    keep = _keep(3, 32, 6)  # 4 x 8 grid
    patches = torch.randn(3, 6, 64)
    out_ref, grad_ref, params_ref = _run(decoder, "conv", patches, keep)
    out, grad, params = _run(decoder, conv, patches, keep)
    torch.testing.assert_close(out, out_ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grad, grad_ref, rtol=1e-5, atol=1e-5)
    assert params.keys() == params_ref.keys()
    for name in params:
        torch.testing.assert_close(params[name], params_ref[name], rtol=1e-4, atol=1e-4, msg=name)


@pytest.mark.parametrize("conv", DECODER_CONVS)
def test_decoder_convs_agree_under_bf16_autocast(conv):
    torch.manual_seed(3)
    decoder = EATDecoder(embed_dim=64, num_layers=2, groups=16)
    keep = _keep(2, 24, 5)
    patches = torch.randn(2, 5, 64)
    reference = decoder(patches, keep, generator=torch.Generator().manual_seed(7))
    decoder.conv = conv
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = decoder(patches, keep, generator=torch.Generator().manual_seed(7))
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), reference, rtol=0.05, atol=0.05)


def test_decoder_conv_keeps_the_released_keys_and_checks_its_name():
    reference = EATDecoder(embed_dim=32, num_layers=2, groups=16)
    fast = EATDecoder(embed_dim=32, num_layers=2, groups=16, conv="matmul")
    fast.load_state_dict(reference.state_dict(), strict=True)  # same names and shapes
    assert list(fast.state_dict()) == list(reference.state_dict())
    with pytest.raises(ValueError, match="conv must be one of"):
        EATDecoder(embed_dim=32, conv="winograd")


def test_given_mask_noise_equals_noise_drawn_inside():
    decoder = EATDecoder(embed_dim=32, num_layers=1, groups=16)
    keep = _keep(2, 16, 3)
    patches = torch.randn(2, 3, 32)
    drawn = decoder(patches, keep, generator=torch.Generator().manual_seed(5))
    noise = decoder.mask_noise(2, 16, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(decoder(patches, keep, noise=noise), drawn, rtol=0, atol=0)


def test_clones_share_one_patch_embedding_like_repeated_inputs():
    torch.manual_seed(0)
    encoder = eat_tiny()
    x = torch.randn(2, 1, 48, 128)
    keep = _keep(6, 24, 5, seed=2)  # 2 clips x 3 clones
    shared = encoder.forward_features(x, patch_mask=keep, clones=3)
    grads_shared = torch.autograd.grad(shared.patches.square().sum() + shared.cls.sum(), list(encoder.parameters()))
    repeated = encoder.forward_features(x.repeat_interleave(3, dim=0), patch_mask=keep)
    grads_repeated = torch.autograd.grad(repeated.patches.square().sum() + repeated.cls.sum(), list(encoder.parameters()))
    torch.testing.assert_close(shared.patches, repeated.patches, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(shared.cls, repeated.cls, rtol=1e-5, atol=1e-5)
    for a, b in zip(grads_shared, grads_repeated, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_a_known_kept_count_gives_the_same_tokens_and_is_still_checked():
    torch.manual_seed(0)
    encoder = eat_tiny().eval()
    x = torch.randn(2, 1, 48, 128)
    keep = _keep(2, 24, 5)
    checked = encoder.forward_features(x, patch_mask=keep)
    trusted = encoder.forward_features(x, patch_mask=keep, kept_per_row=5)
    torch.testing.assert_close(trusted.patches, checked.patches, rtol=0, atol=0)
    with pytest.raises(RuntimeError, match="keep 4 patches"):
        encoder.forward_features(x, patch_mask=keep, kept_per_row=4)
    with pytest.raises(ValueError, match="clones"):
        encoder.forward_features(x, clones=2)
    with pytest.raises(ValueError, match="B x clones"):
        encoder.forward_features(x, patch_mask=keep, clones=2)
