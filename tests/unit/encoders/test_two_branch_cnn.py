"""Two-branch CNN (Wilkinghoff, ICASSP 2024): shapes at several clip lengths, seams, gradients, invariances."""

from __future__ import annotations

import pytest
import torch

from asdlab.encoders import create_encoder
from asdlab.encoders.two_branch_cnn import TwoBranchCNN, two_branch_cnn, two_branch_cnn_small

SAMPLE_RATE = 16000


@pytest.fixture(scope="module")
def small() -> TwoBranchCNN:
    torch.manual_seed(0)
    return two_branch_cnn_small().eval()


def _waveforms(batch: int, duration_s: float, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, int(duration_s * SAMPLE_RATE), generator=generator)


@pytest.mark.parametrize("duration_s", [10.0, 12.0])
def test_published_sizes_at_dcase_clip_lengths(duration_s):
    torch.manual_seed(0)
    model = two_branch_cnn().eval()
    assert (model.embed_dim, model.branch_dim) == (256, 128)
    with torch.no_grad():
        e_fft, e_stft = model.forward_branches(_waveforms(1, duration_s))
    assert e_fft.shape == e_stft.shape == (1, 128)
    assert torch.isfinite(e_fft).all() and torch.isfinite(e_stft).all()


@pytest.mark.parametrize("duration_s", [1.0, 1.7])
def test_forward_is_the_concatenated_branches(small, duration_s):
    x = _waveforms(3, duration_s)
    with torch.no_grad():
        e_fft, e_stft = small.forward_branches(x)
        embedding = small(x)
    assert embedding.shape == (3, small.embed_dim) == (3, 2 * small.branch_dim)
    assert torch.equal(embedding, torch.cat([e_fft, e_stft], dim=-1))
    assert torch.isfinite(embedding).all()


def test_batched_equals_one_by_one_in_eval(small):
    x = _waveforms(3, 1.0)
    with torch.no_grad():
        batched = small(x)
        single = torch.cat([small(x[i : i + 1]) for i in range(3)])
    assert torch.allclose(batched, single, atol=1e-5)


def test_gradient_reaches_every_parameter():
    torch.manual_seed(1)
    model = two_branch_cnn_small().train()
    model(_waveforms(3, 1.0)).square().sum().backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


def test_temporal_mean_normalisation_ignores_a_constant_per_bin(small):
    spec = torch.rand(2, 20, small.n_fft // 2 + 1, generator=torch.Generator().manual_seed(2))
    offset = 5.0 * torch.rand(2, 1, small.n_fft // 2 + 1, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert torch.allclose(small.forward_stft(spec + offset), small.forward_stft(spec), atol=1e-4)
        assert not torch.allclose(small.forward_stft(spec * 2.0), small.forward_stft(spec), atol=1e-4)


def test_fft_branch_sees_only_the_magnitude_spectrum(small):
    # |FFT| is unchanged by a circular shift and by a polarity flip of the whole clip.
    x = _waveforms(2, 1.0)
    with torch.no_grad():
        e_fft, _ = small.forward_branches(x)
        shifted, _ = small.forward_branches(torch.roll(x, 1234, dims=-1))
        flipped = small(-x)
    assert torch.allclose(shifted, e_fft, atol=1e-4)
    assert torch.allclose(flipped, small(x), atol=1e-5)


def test_presets_and_state_dict_round_trip(small):
    assert create_encoder("two-branch-cnn-small", branch_dim=16).embed_dim == 32
    restored = two_branch_cnn_small()
    restored.load_state_dict(small.state_dict(), strict=True)
    x = _waveforms(2, 1.0)
    with torch.no_grad():
        assert torch.equal(restored.eval()(x), small(x))
