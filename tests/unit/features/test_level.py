"""Level normalisation makes waveforms gain-invariant."""

import pytest
import torch

from asdlab.features.level import RMSNormalize, normalize_rms


@pytest.mark.parametrize("gain", [0.5, 2.0, 1e-3])
def test_gain_is_removed(gain):
    x = torch.randn(3, 1600, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(normalize_rms(gain * x), normalize_rms(x), rtol=1e-5, atol=1e-7)


def test_target_rms_and_shapes():
    x = torch.randn(2, 800, generator=torch.Generator().manual_seed(1))
    y = RMSNormalize(0.1)(x)
    torch.testing.assert_close(y.pow(2).mean(dim=1).sqrt(), torch.full((2,), 0.1))
    assert normalize_rms(x[0]).shape == (800,)
    assert torch.isfinite(normalize_rms(torch.zeros(1, 10))).all()
