"""Attentive statistics pooling (Okabe et al., Interspeech 2018): tokens (B, N, D) -> attention-weighted
mean and standard deviation (B, 2 D); the pooling of the fine-tuning strategies in
`ensemble-domain-generalization-report.txt` (section 2).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["AttentiveStatsPooling"]

# Floor of the weighted variance, keeping the sqrt differentiable for constant tokens.
_VAR_EPS = 1e-6


class AttentiveStatsPooling(nn.Module):
    """Score each token with v^T tanh(W h + b) + k, softmax over the non-padding tokens, and return
    [sum_n a_n h_n, sqrt(sum_n a_n h_n^2 - mean^2)].

    Args:
        dim: token width D.
        hidden: width of the attention MLP.
    """

    def __init__(self, dim: int, *, hidden: int = 128):
        super().__init__()
        self.dim = dim
        self.attention = nn.Sequential(nn.Linear(dim, hidden), nn.Tanh(), nn.Linear(hidden, 1))

    @property
    def out_dim(self) -> int:
        """2 D."""
        return 2 * self.dim

    def forward(self, tokens: Tensor, padding_mask: Tensor | None = None) -> Tensor:
        """Pool tokens.

        Args:
            tokens: (B, N, D).
            padding_mask: (B, N) bool, True for padding tokens, which get zero weight. Every row
                needs at least one real token.

        Returns:
            (B, 2 D) = [weighted mean, weighted standard deviation].

        Raises:
            ValueError: wrong shapes, or a row that is all padding.
        """
        if tokens.ndim != 3 or tokens.shape[2] != self.dim:
            raise ValueError(f"tokens must be (B, N, {self.dim}), got {tuple(tokens.shape)}")
        scores = self.attention(tokens).squeeze(2)  # (B, N)
        if padding_mask is not None:
            if padding_mask.shape != scores.shape:
                raise ValueError(f"padding_mask must be {tuple(scores.shape)}, got {tuple(padding_mask.shape)}")
            if bool(padding_mask.all(dim=1).any()):
                raise ValueError("padding_mask marks every token of a row as padding")
            scores = scores.masked_fill(padding_mask.bool(), float("-inf"))
        weights = torch.softmax(scores, dim=1)[:, :, None]  # (B, N, 1)
        mean = (weights * tokens).sum(dim=1)
        var = (weights * tokens.square()).sum(dim=1) - mean.square()
        return torch.cat([mean, var.clamp_min(_VAR_EPS).sqrt()], dim=1)
