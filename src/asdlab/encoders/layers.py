"""Transformer building blocks shared by the encoders (EAT.md, "Encoder").

Fused-qkv self-attention on `torch.nn.functional.scaled_dot_product_attention`, the two-layer
GELU MLP, the post-LN block of data2vec 2.0 / EAT, stochastic depth, and the MAE 2-D sin-cos
position table.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["DropPath", "Attention", "MLP", "PostNormBlock", "sincos_2d_table"]


class DropPath(nn.Module):
    """Stochastic depth: drop a whole residual branch per sample while training.

    Args:
        p: probability of dropping the branch; kept branches are scaled by 1 / (1 - p).
    """

    def __init__(self, p: float = 0.0):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"drop-path probability must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        """x (B, ...) -> same shape."""
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        shape = (x.shape[0],) + (1,) * (x.ndim - 1)  # one draw per sample
        mask = x.new_empty(shape).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Attention(nn.Module):
    """Multi-head self-attention with one fused qkv projection.

    Args:
        dim: token width D.
        num_heads: number of heads; D must be divisible by it.
        qkv_bias: bias on the qkv projection (EAT: True).
    """

    def __init__(self, dim: int, *, num_heads: int, qkv_bias: bool = True):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"width {dim} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, *, key_padding_mask: Tensor | None = None) -> Tensor:
        """Attend over the tokens of each sequence.

        Args:
            x: tokens (B, N, D).
            key_padding_mask: (B, N) bool, True where a token is padding and must not be attended to.

        Returns:
            (B, N, D).
        """
        B, N, D = x.shape
        qkv = self.qkv(x).view(B, N, 3, self.num_heads, D // self.num_heads)  # (B, N, 3, H, D/H)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # 3 x (B, H, N, D/H), views
        attn_mask = None
        if key_padding_mask is not None:
            attn_mask = ~key_padding_mask[:, None, None, :]  # (B, 1, 1, N), True = may attend
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)  # (B, H, N, D/H)
        out = out.transpose(1, 2).reshape(B, N, D)  # (B, N, H, D/H) -> (B, N, D)
        return self.proj(out)


class MLP(nn.Module):
    """Linear -> GELU (exact) -> Linear.

    Args:
        dim: input and output width D.
        hidden_dim: inner width (EAT: 4 D).
    """

    def __init__(self, dim: int, *, hidden_dim: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        """x (..., D) -> (..., D)."""
        return self.fc2(self.act(self.fc1(x)))


class PostNormBlock(nn.Module):
    """Post-LN transformer block of data2vec 2.0 / EAT (`AltBlock` with `layer_norm_first=False`).

    x = LN1(x + DropPath(Attn(x))); h = MLP(x); x = LN2(x + DropPath(h)).

    Args:
        dim: token width D.
        num_heads: attention heads.
        mlp_ratio: MLP inner width over D (EAT: 4).
        norm_eps: LayerNorm epsilon (EAT: 1e-6).
        drop_path: stochastic-depth probability of both residual branches.
    """

    def __init__(
        self,
        dim: int,
        *,
        num_heads: int,
        mlp_ratio: float = 4.0,
        norm_eps: float = 1e-6,
        drop_path: float = 0.0,
    ):
        super().__init__()
        self.attn = Attention(dim, num_heads=num_heads, qkv_bias=True)
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = MLP(dim, hidden_dim=int(dim * mlp_ratio))
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: Tensor, *, key_padding_mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Run the block.

        Args:
            x: tokens (B, N, D).
            key_padding_mask: (B, N) bool, True for padding tokens.

        Returns:
            (x, h): the block output (B, N, D) and the MLP output h (B, N, D) before the residual
            and LN2 (the teacher targets of EAT's utterance-frame objective).
        """
        x = self.norm1(x + self.drop_path(self.attn(x, key_padding_mask=key_padding_mask)))
        h = self.mlp(x)
        return self.norm2(x + self.drop_path(h)), h


def sincos_2d_table(embed_dim: int, height: int, width: int) -> Tensor:
    """Fixed 2-D sin-cos position table in the MAE convention, rows in row-major (height, width) order.

    Row `r = i * width + j` encodes grid cell (i, j). As in MAE's `get_2d_sincos_pos_embed` (whose
    `np.meshgrid(grid_w, grid_h)` puts the width index first), the first D/2 channels encode the
    width index j and the next D/2 the height index i; each half is [sin(p w_k), cos(p w_k)] with
    w_k = 10000^(-k / (D/4)), k = 0 .. D/4 - 1. For EAT the height is time and the width frequency.

    Args:
        embed_dim: D, a multiple of 4.
        height: grid rows (EAT: 768 time patches).
        width: grid columns (EAT: 8 frequency patches).

    Returns:
        (height * width, D) float32.
    """
    if embed_dim % 4:
        raise ValueError(f"embed_dim must be a multiple of 4, got {embed_dim}")
    quarter = embed_dim // 4
    omega = 1.0 / 10000.0 ** (torch.arange(quarter, dtype=torch.float64) / quarter)  # (D/4,)

    def encode(positions: Tensor) -> Tensor:
        angles = positions[:, None] * omega[None, :]  # (M, D/4)
        return torch.cat([angles.sin(), angles.cos()], dim=1)  # (M, D/2)

    rows = torch.arange(height, dtype=torch.float64).repeat_interleave(width)  # i of each cell
    cols = torch.arange(width, dtype=torch.float64).repeat(height)  # j of each cell
    return torch.cat([encode(cols), encode(rows)], dim=1).float()  # (H*W, D)
