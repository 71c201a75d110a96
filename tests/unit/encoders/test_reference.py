import math

import torch

from asdlab.encoders.registry import create_encoder


def _noisy_tone(seconds: float = 1.0, sample_rate: int = 16000) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    t = torch.arange(int(seconds * sample_rate)) / sample_rate
    return 0.3 * torch.sin(2 * math.pi * 440 * t) + 0.05 * torch.randn(len(t), generator=g)


def test_logmel_stats_is_gain_invariant():
    encoder = create_encoder("logmel-stats")
    wave = _noisy_tone()[None]  # (1, S)
    base, louder, quieter = (encoder(wave * gain) for gain in (1.0, 2.0, 0.5))
    assert base.shape == (1, encoder.embed_dim)
    torch.testing.assert_close(louder, base, atol=1e-4, rtol=0)
    torch.testing.assert_close(quieter, base, atol=1e-4, rtol=0)


def test_logmel_stats_sees_spectral_change():
    encoder = create_encoder("logmel-stats")
    t = torch.arange(16000) / 16000
    low = encoder(torch.sin(2 * math.pi * 300 * t)[None] + 0.01 * _noisy_tone()[None])
    high = encoder(torch.sin(2 * math.pi * 3000 * t)[None] + 0.01 * _noisy_tone()[None])
    assert (low - high).abs().max() > 1.0


def test_clip_level_is_power_in_db():
    encoder = create_encoder("clip-level")
    wave = torch.full((2, 100), 0.1)
    wave[1] *= 10
    torch.testing.assert_close(encoder(wave), torch.tensor([[-20.0], [0.0]]))
