"""BEATs (Chen et al., ICML 2023; microsoft/unilm `beats/`) in plain PyTorch, for its released checkpoints.

Input: `asdlab.features.normalize.BEATsFrontEnd`. 16 x 16 patches (Conv2d without bias) -> LayerNorm ->
Linear to D; a convolutional position embedding (weight-normalised grouped Conv1d over the time-major
token sequence, GELU); LayerNorm; post-LN blocks with DeepNorm residual scaling and a T5-style bucketed
relative position bias, computed once and gated per block and head by the query. No CLS token: clips are
the mean of the patch tokens. Left out, all training-time only: dropout (0 in the released configs),
layerdrop (0.05 in iter3's; `drop_path` stands in), the layer-wise gradient multiplier (0.6; use the
fine-tuning layer decay), and upstream's in-place masking in `extract_features`, which broke fine-tuning
(here every op is out of place).
Checkpoint import: `asdlab.encoders.beats_checkpoint`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from asdlab.encoders.eat import EATDecoder
from asdlab.encoders.layers import MLP, DropPath
from asdlab.encoders.registry import register_encoder

__all__ = [
    "BEATsPreset",
    "BEATS_PRESETS",
    "BEATsFeatures",
    "BEATsEncoder",
    "relative_position_bucket",
    "create_beats_decoder",
    "beats_tiny",
    "beats_base",
]


@dataclass(frozen=True)
class BEATsPreset:
    """Sizes of one BEATs variant (heads 64 wide in base, as released)."""

    embed_dim: int
    depth: int
    num_heads: int
    patch_dim: int  # width of the patch embedding before the projection to embed_dim
    conv_pos: int = 128  # taps of the convolutional position embedding
    conv_pos_groups: int = 16
    num_buckets: int = 320
    max_distance: int = 800
    decoder_layers: int = 6  # the CNN decoder of continued pre-training (not part of BEATs)


BEATS_PRESETS: dict[str, BEATsPreset] = {
    # Test and CI size (~2 M): BEATs' structure (position conv, gated bias, DeepNorm) at EAT-tiny widths.
    "beats-tiny": BEATsPreset(embed_dim=192, depth=4, num_heads=3, patch_dim=128, decoder_layers=2),
    # BEATs_iter3 / iter3+ `cfg`: 768 wide, 12 layers, 12 heads, FFN 3072, patch embedding 512, conv_pos
    # 128 / 16 groups, 320 buckets, max_distance 800, deep_norm and gru_rel_pos on (~90 M).
    "beats-base": BEATsPreset(embed_dim=768, depth=12, num_heads=12, patch_dim=512),
}


@dataclass(frozen=True)
class BEATsFeatures:
    """Output of `BEATsEncoder.forward_features`; the same type in train and eval mode.

    Attributes:
        patches: final patch tokens (B, K, D), K = N or the kept count under a patch mask, in ascending
            time-major grid order (index t * 8 + f).
        padding_mask: (B, K) bool, True for patches made only of padded frames; None when nothing is padded.
        layer_mlp_outputs: when requested, one (B, K, D) tensor per block: the MLP output before the
            residual add and the block's second LayerNorm (teacher targets of continued pre-training).
        cls: always None (BEATs has no CLS token; kept so training code can test for one).
    """

    patches: Tensor
    padding_mask: Tensor | None = None
    layer_mlp_outputs: tuple[Tensor, ...] | None = None
    cls: None = None


def relative_position_bucket(relative: Tensor, *, num_buckets: int, max_distance: int) -> Tensor:
    """Bucket of each key-minus-query offset (T5 / BEATs, bidirectional).

    Half the buckets per direction (positive offsets in the upper half); within one, offsets below a
    quarter of `num_buckets` get their own bucket, larger ones log-spaced buckets up to `max_distance`,
    beyond it the last one.

    Args:
        relative: integer offsets j - i, any shape.
        num_buckets: total buckets (BEATs: 320).
        max_distance: offset where the log range ends (BEATs iter3: 800).

    Returns:
        long tensor of bucket ids in [0, num_buckets), same shape.
    """
    half = num_buckets // 2
    exact = half // 2
    distance = relative.abs()
    # float32 in upstream's order of operations, so rounding puts offsets in the same buckets
    scaled = torch.log(distance.clamp_min(1).float() / exact) / math.log(max_distance / exact) * (half - exact)
    far = (exact + scaled.to(torch.long)).clamp_max(half - 1)
    return (relative > 0).to(torch.long) * half + torch.where(distance < exact, distance, far)


class _ConvPositionEmbedding(nn.Module):
    """Weight-normalised grouped Conv1d over the token sequence, trimmed to its length, then GELU.

    The weight is `weight_g * weight_v / ||weight_v||`, the norm taken per tap over the other two axes
    (torch `weight_norm(dim=2)`, the layout of the released `weight_g` (1, 1, K) / `weight_v` keys).
    """

    def __init__(self, dim: int, *, kernel_size: int, groups: int) -> None:
        super().__init__()
        if dim % groups:
            raise ValueError(f"width {dim} is not divisible by {groups} position-conv groups")
        self.kernel_size, self.groups = kernel_size, groups
        self.weight_g = nn.Parameter(torch.empty(1, 1, kernel_size))
        self.weight_v = nn.Parameter(torch.empty(dim, dim // groups, kernel_size))
        self.bias = nn.Parameter(torch.empty(dim))

    def reset_parameters(self) -> None:
        """BEATs: v ~ N(0, 4 / (K D)), zero bias, g = ||v|| (so the first weight equals v)."""
        dim = self.weight_v.shape[0]
        nn.init.normal_(self.weight_v, mean=0.0, std=math.sqrt(4.0 / (self.kernel_size * dim)))
        nn.init.zeros_(self.bias)
        with torch.no_grad():
            self.weight_g.copy_(self.weight_v.norm(dim=(0, 1), keepdim=True))

    def forward(self, x: Tensor) -> Tensor:
        """x (B, N, D) -> (B, N, D)."""
        weight = self.weight_v * (self.weight_g / self.weight_v.norm(dim=(0, 1), keepdim=True))
        y = F.conv1d(x.transpose(1, 2), weight, self.bias, padding=self.kernel_size // 2, groups=self.groups)
        if self.kernel_size % 2 == 0:  # an even kernel with K/2 padding gives one extra step (upstream SamePad)
            y = y[..., :-1]
        return F.gelu(y).transpose(1, 2)  # (B, D, N) -> (B, N, D)


class _GatedRelPosAttention(nn.Module):
    """Self-attention with BEATs' gated relative position bias; q, k, v fused in one projection.

    logits = q k^T / sqrt(d) + g(q_i) * bias_ij, with the per-query, per-head gate
    g = a (b * gate_scale - 1) + 2, (a, b) = sigmoid of the two sums of 4 outputs of `gate(q_i)`.
    Upstream additionally scales q by 1/32 and subtracts the row max before multiplying back by 32:
    the same softmax, kept stable in fp16; here `scaled_dot_product_attention` does that.
    """

    def __init__(self, dim: int, *, num_heads: int) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"width {dim} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.gate = nn.Linear(dim // num_heads, 8)
        self.gate_scale = nn.Parameter(torch.ones(1, num_heads, 1, 1))

    def forward(self, x: Tensor, position_bias: Tensor, *, key_padding_mask: Tensor | None = None) -> Tensor:
        """Attend over the tokens of each sequence.

        Args:
            x: tokens (B, N, D).
            position_bias: ungated bias (H, N, N) shared by the batch, or (B, H, N, N).
            key_padding_mask: (B, N) bool, True for tokens that must not be attended to.

        Returns:
            (B, N, D).
        """
        B, N, D = x.shape
        H = self.num_heads
        q, k, v = self.qkv(x).view(B, N, 3, H, D // H).permute(2, 0, 3, 1, 4).unbind(0)  # 3 x (B, H, N, D/H)
        a, b = torch.sigmoid(self.gate(q).view(B, H, N, 2, 4).sum(dim=-1)).unbind(-1)  # 2 x (B, H, N)
        gate = a * (b * self.gate_scale[..., 0] - 1.0) + 2.0  # (B, H, N)
        # (B, H, N, N): row i scaled by query i's gate; bias first, so the loop runs along its rows (2-3x faster)
        bias = position_bias * gate[..., None]
        if key_padding_mask is not None:
            bias = bias.masked_fill(key_padding_mask[:, None, None, :], float("-inf"))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype))  # (B, H, N, D/H)
        return self.proj(out.transpose(1, 2).reshape(B, N, D))  # (B, N, H, D/H) -> (B, N, D)


class _BEATsBlock(nn.Module):
    """Post-LN block with DeepNorm: x = LN1(alpha x + Attn(x)); h = MLP(x); x = LN2(alpha x + h)."""

    def __init__(self, dim: int, *, num_heads: int, mlp_ratio: float, residual_scale: float,
                 drop_path: float) -> None:
        super().__init__()
        self.residual_scale = residual_scale
        self.attn = _GatedRelPosAttention(dim, num_heads=num_heads)
        self.norm1 = nn.LayerNorm(dim)
        self.mlp = MLP(dim, hidden_dim=int(dim * mlp_ratio))
        self.norm2 = nn.LayerNorm(dim)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: Tensor, position_bias: Tensor, *, key_padding_mask: Tensor | None) -> tuple[Tensor, Tensor]:
        """(B, N, D) -> (block output, MLP output before the residual), both (B, N, D)."""
        attended = self.attn(x, position_bias, key_padding_mask=key_padding_mask)
        x = self.norm1(torch.add(self.drop_path(attended), x, alpha=self.residual_scale))  # alpha x + Attn(x)
        h = self.mlp(x)
        return self.norm2(torch.add(self.drop_path(h), x, alpha=self.residual_scale)), h


class BEATsEncoder(nn.Module):
    """BEATs encoder: patches -> LN -> projection, conv positions, LN, gated-relative-bias post-LN blocks.

    Input is `BEATsFrontEnd` output (B, 1, T, F): time is the height axis, F = 128 mel bins the width;
    16 x 16 patches give a (T/16) x 8 grid read time-major (trailing frames short of 16 are dropped, as
    by upstream's stride-16 convolution). Any length works: positions are relative.

    Args:
        embed_dim: token width D.
        depth: number of blocks.
        num_heads: attention heads.
        patch_dim: patch-embedding width before the projection to D (base: 512).
        mlp_ratio: MLP width over D.
        num_mel_bins: F, a multiple of 16.
        conv_pos: taps of the position convolution; conv_pos_groups: its groups.
        num_buckets / max_distance: relative position buckets.
        deep_norm: scale residuals by (2 depth)^(1/4) (BEATs iter3: on).
        drop_path: stochastic depth of the last block, rising linearly from 0 at the first.
    """

    patch_size = 16
    poolings = ("mean",)

    def __init__(
        self,
        *,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        patch_dim: int = 512,
        mlp_ratio: float = 4.0,
        num_mel_bins: int = 128,
        conv_pos: int = 128,
        conv_pos_groups: int = 16,
        num_buckets: int = 320,
        max_distance: int = 800,
        deep_norm: bool = True,
        drop_path: float = 0.0,
    ):
        super().__init__()
        if num_mel_bins % self.patch_size:
            raise ValueError(f"num_mel_bins must be a multiple of {self.patch_size}, got {num_mel_bins}")
        self.num_mel_bins = num_mel_bins
        self.freq_patches = num_mel_bins // self.patch_size
        self.num_buckets, self.max_distance = num_buckets, max_distance
        self.deep_norm = deep_norm
        self.patch_embed = nn.Conv2d(1, patch_dim, kernel_size=self.patch_size, stride=self.patch_size, bias=False)
        self.patch_norm = nn.LayerNorm(patch_dim)
        self.patch_proj = nn.Linear(patch_dim, embed_dim)
        self.pos_conv = _ConvPositionEmbedding(embed_dim, kernel_size=conv_pos, groups=conv_pos_groups)
        self.pre_norm = nn.LayerNorm(embed_dim)
        self.rel_pos_bias = nn.Embedding(num_buckets, num_heads)  # one table for all blocks, as upstream
        residual_scale = (2.0 * depth) ** 0.25 if deep_norm else 1.0
        rates = [drop_path * i / max(depth - 1, 1) for i in range(depth)]
        self.blocks = nn.ModuleList(
            _BEATsBlock(embed_dim, num_heads=num_heads, mlp_ratio=mlp_ratio, residual_scale=residual_scale,
                        drop_path=rate)
            for rate in rates
        )
        self.reset_parameters()

    @property
    def embed_dim(self) -> int:
        """Token width D (also the size of the "mean" embedding)."""
        return self.patch_proj.out_features

    def reset_parameters(self) -> None:
        """BEATs' initialisation: Linear and Embedding N(0, 0.02) with zero bias (fairseq `init_bert_params`);
        with DeepNorm, q / k Xavier-normal (gain 1) and v, output, fc1, fc2 Xavier-normal with gain
        (8 depth)^(-1/4); position conv as `_ConvPositionEmbedding`; patch conv PyTorch's default."""
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, mean=0.0, std=0.02)
                if getattr(module, "bias", None) is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        self.patch_embed.reset_parameters()
        self.pos_conv.reset_parameters()
        if self.deep_norm:
            beta = (8.0 * len(self.blocks)) ** -0.25
            D = self.embed_dim
            with torch.no_grad():
                for block in self.blocks:
                    qkv = block.attn.qkv.weight  # rows: q, k, v
                    for rows, gain in ((slice(0, D), 1.0), (slice(D, 2 * D), 1.0), (slice(2 * D, 3 * D), beta)):
                        nn.init.xavier_normal_(qkv[rows], gain=gain)
                    for layer in (block.attn.proj, block.mlp.fc1, block.mlp.fc2):
                        nn.init.xavier_normal_(layer.weight, gain=beta)
        for block in self.blocks:
            nn.init.ones_(block.attn.gate_scale)

    def example_input(
        self, batch: int = 2, *, num_frames: int = 64, generator: torch.Generator | None = None
    ) -> Tensor:
        """A random spectrogram (batch, 1, num_frames, F) for tests and shape checks."""
        device = self.patch_proj.weight.device
        return torch.randn(batch, 1, num_frames, self.num_mel_bins, generator=generator, device=device)

    def position_bias(self, positions: Tensor) -> Tensor:
        """Ungated relative bias between token positions.

        Args:
            positions: (N,) or (B, K) grid indices of the tokens attended over.

        Returns:
            (H, N, N) or (B, H, K, K).
        """
        relative = positions[..., None, :] - positions[..., :, None]  # (..., query, key): key - query
        buckets = relative_position_bucket(relative, num_buckets=self.num_buckets, max_distance=self.max_distance)
        return self.rel_pos_bias(buckets).movedim(-1, -3)  # (..., N, N, H) -> (..., H, N, N)

    def forward_features(
        self,
        x: Tensor,
        *,
        padding_mask: Tensor | None = None,
        patch_mask: Tensor | None = None,
        return_layer_outputs: bool = False,
        clones: int = 1,
        kept_per_row: int | None = None,
    ) -> BEATsFeatures:
        """Encode a spectrogram into patch tokens.

        Args:
            x: (B, 1, T, F), T >= 16.
            padding_mask: (B, T) bool over frames, True for padding; patches made only of padding are
                zeroed before the position convolution (as upstream) and not attended to.
            patch_mask: (B x clones, N) bool, **True for patches kept**: the others are zeroed before the
                position convolution and dropped before the blocks (a masked student); every row keeps the
                same count, and kept tokens keep their grid positions for the relative bias.
            return_layer_outputs: also return each block's MLP output.
            clones: views per input, as `EATEncoder.forward_features`: row r of `patch_mask` masks input
                r // clones, and the clones share one patch embedding.
            kept_per_row: the patches each mask row keeps, when the caller knows it: checked on the device
                (no host sync), as for EAT.

        Returns:
            `BEATsFeatures` with B x clones rows.

        Raises:
            ValueError: on a wrong input shape or unequal kept counts.
        """
        if x.ndim != 4 or x.shape[1] != 1 or x.shape[3] != self.num_mel_bins:
            raise ValueError(f"expected input (B, 1, T, {self.num_mel_bins}), got {tuple(x.shape)}")
        B, _, T, _ = x.shape
        time_patches = T // self.patch_size
        if time_patches == 0:
            raise ValueError(f"T = {T} frames is shorter than one {self.patch_size}-frame patch")
        N = time_patches * self.freq_patches

        tokens = self.patch_embed(x)  # (B, P, T/16, 8), trailing frames dropped by the stride
        tokens = tokens.flatten(2).transpose(1, 2)  # (B, N, P), index t * 8 + f
        tokens = self.patch_proj(self.patch_norm(tokens))  # (B, N, D)
        if clones < 1 or (clones > 1 and patch_mask is None):
            raise ValueError(f"clones = {clones} needs a patch_mask with a row per clone")
        if clones > 1:
            tokens = tokens.repeat_interleave(clones, dim=0)  # (B * C, N, D): clone c of clip b at b * C + c

        patch_padding = None
        if padding_mask is not None:
            if padding_mask.shape != (B, T):
                raise ValueError(f"padding_mask must be (B, T) = {(B, T)}, got {tuple(padding_mask.shape)}")
            rows = padding_mask.bool()[:, : time_patches * self.patch_size]
            rows = rows.reshape(B, time_patches, self.patch_size).all(dim=2)  # (B, T/16)
            patch_padding = rows.repeat_interleave(self.freq_patches, dim=1)  # (B, N), time-major
            if not bool(patch_padding.any()):
                patch_padding = None
            else:
                patch_padding = patch_padding.repeat_interleave(clones, dim=0)  # (B * C, N)
        absent = patch_padding
        if patch_mask is not None:
            if patch_mask.shape != (B * clones, N):
                raise ValueError(f"patch_mask must be (B x clones, N) = {(B * clones, N)}, "
                                 f"got {tuple(patch_mask.shape)}")
            patch_mask = patch_mask.bool()
            absent = ~patch_mask if absent is None else absent | ~patch_mask
        if absent is not None:
            # out of place: upstream's in-place write here broke fine-tuning's backward pass
            tokens = tokens.masked_fill(absent[:, :, None], 0.0)
        x = self.pre_norm(tokens + self.pos_conv(tokens))

        positions = torch.arange(N, device=x.device)
        if patch_mask is not None:
            kept = patch_mask.sum(dim=1)
            if kept_per_row is None:
                K = int(kept[0])
                if not bool((kept == K).all()):
                    raise ValueError(f"patch_mask keeps {kept.tolist()} patches per row; every row must keep the same")
            else:
                K = kept_per_row
                torch._assert_async((kept == K).all(), f"patch_mask rows must each keep {K} patches")
            keep_ids = torch.argsort((~patch_mask).to(torch.uint8), dim=1, stable=True)[:, :K]  # (B, K) ascending
            x = x.gather(1, keep_ids[:, :, None].expand(-1, -1, x.shape[-1]))  # (B, K, D)
            positions = keep_ids
            if patch_padding is not None:
                patch_padding = patch_padding.gather(1, keep_ids)  # (B, K)
        bias = self.position_bias(positions)  # (H, N, N) or (B, H, K, K)

        mlp_outputs = []
        for block in self.blocks:
            x, h = block(x, bias, key_padding_mask=patch_padding)
            if return_layer_outputs:
                mlp_outputs.append(h)
        return BEATsFeatures(
            patches=x,
            padding_mask=patch_padding,
            layer_mlp_outputs=tuple(mlp_outputs) if return_layer_outputs else None,
        )

    def pool(self, features: BEATsFeatures, how: Literal["mean"] = "mean") -> Tensor:
        """Clip embedding (B, D): the mean of the non-padding patch tokens (BEATs has no CLS)."""
        if how != "mean":
            raise ValueError(f"BEATs has no CLS token: pooling must be 'mean', got {how!r}")
        if features.padding_mask is None:
            return features.patches.mean(dim=1)
        weights = (~features.padding_mask).to(features.patches.dtype)[:, :, None]  # (B, K, 1)
        return (features.patches * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)

    def forward(self, x: Tensor, *, padding_mask: Tensor | None = None) -> Tensor:
        """Mean embedding (B, D) of spectrograms (B, 1, T, F); see `forward_features` and `pool`."""
        return self.pool(self.forward_features(x, padding_mask=padding_mask))


def _build_encoder(name: str, overrides: dict) -> BEATsEncoder:
    p = BEATS_PRESETS[name]
    kwargs = dict(embed_dim=p.embed_dim, depth=p.depth, num_heads=p.num_heads, patch_dim=p.patch_dim,
                  conv_pos=p.conv_pos, conv_pos_groups=p.conv_pos_groups, num_buckets=p.num_buckets,
                  max_distance=p.max_distance)
    return BEATsEncoder(**{**kwargs, **overrides})


def create_beats_decoder(name: str, **overrides) -> EATDecoder:
    """The CNN decoder (data2vec 2.0 / EAT, kernel 3) that continued pre-training puts on the BEATs preset `name`."""
    preset = BEATS_PRESETS[name]
    return EATDecoder(**{"embed_dim": preset.embed_dim, "num_layers": preset.decoder_layers, **overrides})


@register_encoder("beats-tiny")
def beats_tiny(**overrides) -> BEATsEncoder:
    """BEATs-tiny: 192 wide, 4 blocks, 3 heads (tests, CPU-scale recipes)."""
    return _build_encoder("beats-tiny", overrides)


@register_encoder("beats-base")
def beats_base(**overrides) -> BEATsEncoder:
    """BEATs-base: 768 wide, 12 blocks, 12 heads (the released iter1-3 / iter3+ checkpoints)."""
    return _build_encoder("beats-base", overrides)
