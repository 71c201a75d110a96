import pytest
import torch

from asdlab.heads import AttentiveStatsPooling


def test_output_is_weighted_mean_and_std():
    pool = AttentiveStatsPooling(4, hidden=8)
    g = torch.Generator().manual_seed(0)
    tokens = torch.randn(2, 5, 4, generator=g)
    out = pool(tokens)
    assert out.shape == (2, 8)
    w = torch.softmax(pool.attention(tokens).squeeze(2), dim=1)[:, :, None]
    mean = (w * tokens).sum(1)
    std = ((w * (tokens - mean[:, None]) ** 2).sum(1)).sqrt()
    torch.testing.assert_close(out, torch.cat([mean, std], dim=1), rtol=1e-4, atol=1e-5)


def test_padded_tokens_are_ignored():
    pool = AttentiveStatsPooling(4, hidden=8)
    g = torch.Generator().manual_seed(1)
    real = torch.randn(1, 3, 4, generator=g)
    padded = torch.cat([real, 1e3 * torch.randn(1, 2, 4, generator=g)], dim=1)
    mask = torch.tensor([[False, False, False, True, True]])
    torch.testing.assert_close(pool(padded, mask), pool(real))
    with pytest.raises(ValueError, match="every token"):
        pool(padded, torch.ones(1, 5, dtype=torch.bool))
