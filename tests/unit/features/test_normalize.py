"""EAT input pipeline: constants, pad/crop in the log domain, multiples of 16, the (B, 1, T, F) tensor."""

from __future__ import annotations

import pytest
import torch

from asdlab.errors import ConfigError, DataError
from asdlab.features import (
    EAT_FBANK_MEAN,
    EAT_FBANK_STD,
    EATFrontEnd,
    KaldiFbank,
    eat_input,
    fbank,
    normalize_eat,
    pad_or_crop,
    pad_to_multiple,
)


def _noise(*shape: int, seed: int = 0) -> torch.Tensor:
    return 0.1 * torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_normalisation_constants_are_eats_audioset_statistics():
    assert (EAT_FBANK_MEAN, EAT_FBANK_STD) == (-4.268, 4.569)
    values = torch.tensor([-4.268, 0.0, 2 * 4.569 - 4.268], dtype=torch.float64)
    torch.testing.assert_close(normalize_eat(values), torch.tensor([0.0, 4.268 / 9.138, 1.0], dtype=torch.float64))


def test_pad_or_crop_pads_the_end_with_zeros_and_crops_keeping_the_start():
    x = torch.randn(2, 998, 4)
    padded = pad_or_crop(x, 1024)
    assert padded.shape == (2, 1024, 4)
    torch.testing.assert_close(padded[:, :998], x)
    assert (padded[:, 998:] == 0).all()
    cropped = pad_or_crop(x, 500)
    torch.testing.assert_close(cropped, x[:, :500])
    assert torch.equal(pad_or_crop(x, 998), x)
    assert (pad_or_crop(x, 1000, value=-1.0)[:, 998:] == -1).all()
    with pytest.raises(ConfigError, match="target_frames"):
        pad_or_crop(x, 0)


@pytest.mark.parametrize(("frames", "expected"), [(998, 1008), (1024, 1024), (1, 16), (1198, 1200)])
def test_pad_to_multiple_of_16(frames, expected):
    x = torch.randn(frames, 3)
    out = pad_to_multiple(x)
    assert out.shape == (expected, 3)
    torch.testing.assert_close(out[:frames], x)
    assert (out[frames:] == 0).all()
    assert pad_to_multiple(x, 32).shape[0] % 32 == 0
    with pytest.raises(ConfigError, match="multiple"):
        pad_to_multiple(x, 0)


def test_eat_input_is_mean_removal_fbank_pad_then_normalise():
    x = _noise(2, 160_000) + 0.3  # a clip mean the pipeline must remove
    out = eat_input(x)
    assert out.shape == (2, 1, 1024, 128)
    manual = normalize_eat(pad_or_crop(fbank(x - x.mean(dim=-1, keepdim=True)), 1024)).unsqueeze(1)
    torch.testing.assert_close(out, manual)
    # EAT pads the log fbank with 0 before normalising: padded frames read 4.268 / 9.138.
    torch.testing.assert_close(out[:, :, 998:], torch.full_like(out[:, :, 998:], 4.268 / 9.138))


def test_eat_input_variants():
    x = _noise(160_000)
    assert eat_input(x).shape == (1, 1, 1024, 128)
    assert eat_input(x, target_frames=None).shape == (1, 1, 1008, 128)
    assert eat_input(_noise(192_000), target_frames=None).shape == (1, 1, 1200, 128)  # 12 s -> 1198 -> 1200
    module = EATFrontEnd()
    torch.testing.assert_close(module(x[None]), eat_input(x[None]))
    reused = eat_input(x, front_end=KaldiFbank(num_mel_bins=64))
    assert reused.shape == (1, 1, 1024, 64)
    with pytest.raises(DataError, match=r"\(S,\) or \(B, S\)"):
        eat_input(torch.zeros(1, 1, 16_000))
