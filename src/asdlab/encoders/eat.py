"""EAT, the Efficient Audio Transformer (Chen et al., IJCAI 2024), in plain PyTorch.

Implements `EAT.md` ("Encoder" and the CNN decoder of "Self-supervised pre-training") so the
released fairseq / Hugging Face weights load without fairseq (see `checkpoints.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from asdlab.encoders.layers import PostNormBlock, sincos_2d_table
from asdlab.encoders.registry import register_encoder

__all__ = [
    "EATPreset",
    "EAT_PRESETS",
    "EATFeatures",
    "EATEncoder",
    "EATDecoder",
    "create_eat_decoder",
    "eat_tiny",
    "eat_small",
    "eat_base",
    "eat_large",
    "sslam_base",
]

PoolMode = Literal["cls", "mean", "both"]


@dataclass(frozen=True)
class EATPreset:
    """Sizes of one EAT variant; heads are 64 wide as in the released models."""

    embed_dim: int
    depth: int
    num_heads: int
    decoder_layers: int
    decoder_kernel: int


EAT_PRESETS: dict[str, EATPreset] = {
    # Test and CI size (~1.9 M): 4 blocks are enough to exercise depth-dependent code paths
    # (layer averaging of the teacher targets, drop-path schedules) at toy cost on CPU.
    "eat-tiny": EATPreset(embed_dim=192, depth=4, num_heads=3, decoder_layers=2, decoder_kernel=3),
    # ViT-S/DeiT-S geometry (~22 M, ~1/4 of base's FLOPs): a known-good width/depth for training
    # from scratch, and fast enough for laptop-scale DAP on CPU.
    "eat-small": EATPreset(embed_dim=384, depth=12, num_heads=6, decoder_layers=6, decoder_kernel=3),
    # EAT.md: 768 wide, 12 blocks, 12 heads; decoder 6 layers, kernel 3 (≈88 M with the decoder).
    "eat-base": EATPreset(embed_dim=768, depth=12, num_heads=12, decoder_layers=6, decoder_kernel=3),
    # EAT.md: 1024 wide, 24 blocks, 16 heads; decoder 3 layers, kernel 5 (≈309 M with the decoder).
    "eat-large": EATPreset(embed_dim=1024, depth=24, num_heads=16, decoder_layers=3, decoder_kernel=5),
    # SSLAM (Alex et al., ICLR 2025) is EAT-base further pre-trained on audio mixtures: ta012/SSLAM's
    # `Data2VecMultiModel`, image modality and stage-2 config (6-layer kernel-3 decoder, `_ema` teacher)
    # are EAT's, so its released files load through the EAT import under this name.
    "sslam-base": EATPreset(embed_dim=768, depth=12, num_heads=12, decoder_layers=6, decoder_kernel=3),
}


@dataclass(frozen=True)
class EATFeatures:
    """Output of `EATEncoder.forward_features`; the same type in train and eval mode.

    Attributes:
        cls: final CLS token (B, D).
        patches: final patch tokens (B, K, D), K = N or the kept count under a patch mask, in
            ascending time-major grid order (index t * 8 + f).
        padding_mask: (B, K) bool, True for patches that cover only padded frames; None when
            nothing is padded.
        layer_mlp_outputs: when requested, one (B, K + 1, D) tensor per block (CLS first): the
            MLP output h before the residual add and LN2.
    """

    cls: Tensor
    patches: Tensor
    padding_mask: Tensor | None = None
    layer_mlp_outputs: tuple[Tensor, ...] | None = None


class EATEncoder(nn.Module):
    """EAT encoder: patch embedding, fixed 2-D sin-cos positions, CLS, pre-norm, post-LN blocks.

    Input is a normalised log-mel spectrogram (B, 1, T, F): time is the height axis, F = 128 mel
    bins the width. 16 x 16 patches give a (T/16) x 8 grid read time-major; positions come from a
    fixed table for 768 x 8 patches, so T may vary up to 12288 frames (any multiple of 16).

    Args:
        embed_dim: token width D.
        depth: number of post-LN blocks.
        num_heads: attention heads.
        mlp_ratio: MLP width over D.
        num_mel_bins: F; must be 16 x the table's frequency patches.
        max_time_patches: rows of the position table (EAT: 768).
        norm_eps: LayerNorm epsilon of the pre-norm and the blocks.
        drop_path: stochastic depth of the last block, rising linearly from 0 at the first
            (EAT fine-tuning: 0.1; pre-training: 0).
    """

    patch_size = 16
    poolings = ("cls", "mean", "both")  # what `pool` accepts; the first is the default

    def __init__(
        self,
        *,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        num_mel_bins: int = 128,
        max_time_patches: int = 768,
        norm_eps: float = 1e-6,
        drop_path: float = 0.0,
    ):
        super().__init__()
        if num_mel_bins % self.patch_size:
            raise ValueError(f"num_mel_bins must be a multiple of {self.patch_size}, got {num_mel_bins}")
        self.num_mel_bins = num_mel_bins
        self.freq_patches = num_mel_bins // self.patch_size
        self.max_time_patches = max_time_patches
        self.patch_embed = nn.Conv2d(1, embed_dim, kernel_size=self.patch_size, stride=self.patch_size)
        self.cls_token = nn.Parameter(torch.empty(1, 1, embed_dim))
        self.pre_norm = nn.LayerNorm(embed_dim, eps=norm_eps)
        rates = [drop_path * i / max(depth - 1, 1) for i in range(depth)]  # np.linspace(0, drop_path, depth)
        self.blocks = nn.ModuleList(
            PostNormBlock(embed_dim, num_heads=num_heads, mlp_ratio=mlp_ratio, norm_eps=norm_eps, drop_path=rate)
            for rate in rates
        )
        table = sincos_2d_table(embed_dim, max_time_patches, self.freq_patches)  # (768 * 8, D)
        self.register_buffer("pos_table", table, persistent=False)
        self.reset_parameters()

    @property
    def embed_dim(self) -> int:
        """Token width D (also the size of the "cls" and "mean" embeddings)."""
        return self.cls_token.shape[-1]

    def reset_parameters(self) -> None:
        """EAT's initialisation (fairseq `init_bert_params`): Linear N(0, 0.02) (plain, not
        truncated) with zero bias; LayerNorm 1 / 0; CLS N(0, 1); patch conv xavier-uniform on its
        (D, 256) view with PyTorch's default bias."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, mean=0.0, std=0.02)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        self.patch_embed.reset_parameters()
        weight = self.patch_embed.weight
        nn.init.xavier_uniform_(weight.view(weight.shape[0], -1))  # (D, 1, 16, 16) viewed as (D, 256)
        nn.init.normal_(self.cls_token, mean=0.0, std=1.0)

    def example_input(
        self, batch: int = 2, *, num_frames: int = 64, generator: torch.Generator | None = None
    ) -> Tensor:
        """A random spectrogram (batch, 1, num_frames, F) for tests and shape checks."""
        device = self.cls_token.device
        return torch.randn(batch, 1, num_frames, self.num_mel_bins, generator=generator, device=device)

    def _patch_padding(self, padding_mask: Tensor, time_patches: int) -> Tensor:
        """Frame padding (B, T) -> patch padding (B, N): a patch is padding when all its frames are."""
        B = padding_mask.shape[0]
        rows = padding_mask.reshape(B, time_patches, self.patch_size).all(dim=2)  # (B, T/16)
        return rows.repeat_interleave(self.freq_patches, dim=1)  # (B, T/16 * 8), time-major

    def forward_features(
        self,
        x: Tensor,
        *,
        padding_mask: Tensor | None = None,
        patch_mask: Tensor | None = None,
        return_layer_outputs: bool = False,
        clones: int = 1,
        kept_per_row: int | None = None,
    ) -> EATFeatures:
        """Encode a spectrogram into CLS and patch tokens.

        Args:
            x: (B, 1, T, F), T a multiple of 16 and at most 16 x `max_time_patches`.
            padding_mask: (B, T) bool over frames, True for padding (clips shorter than the
                batch). Patches made only of padding are excluded from attention and from "mean".
            patch_mask: (B x clones, N) bool over the N = (T/16) * 8 patches, **True for patches
                kept** (visible to the encoder); the others are dropped before the blocks, as for
                EAT's student. Every row must keep the same number of patches.
            return_layer_outputs: also return each block's MLP output (teacher targets).
            clones: views per input: row r of `patch_mask` masks input r // clones (EAT's 16
                clones share one patch embedding instead of embedding 16 copies of the input).
            kept_per_row: the patches each mask row keeps, when the caller knows it (DAP masks
                keep a fixed count): the count is then checked on the device, without waiting
                for it on the host (no host sync, no graph break under `torch.compile`).

        Returns:
            `EATFeatures` with B x clones rows.

        Raises:
            ValueError: on a wrong input shape or unequal kept counts.
        """
        if x.ndim != 4 or x.shape[1] != 1 or x.shape[3] != self.num_mel_bins:
            raise ValueError(f"expected input (B, 1, T, {self.num_mel_bins}), got {tuple(x.shape)}")
        B, _, T, _ = x.shape
        if T % self.patch_size or not 0 < T // self.patch_size <= self.max_time_patches:
            raise ValueError(
                f"T = {T} frames must be a positive multiple of {self.patch_size}, "
                f"at most {self.patch_size * self.max_time_patches}"
            )
        time_patches = T // self.patch_size
        N = time_patches * self.freq_patches

        tokens = self.patch_embed(x)  # (B, D, T/16, 8)
        tokens = tokens.flatten(2).transpose(1, 2)  # (B, N, D), index t * 8 + f
        # Time-major rows: the first N rows of the 768 x 8 table are the first T/16 time rows.
        tokens = tokens + self.pos_table[:N]

        patch_padding = None
        if padding_mask is not None:
            if padding_mask.shape != (B, T):
                raise ValueError(f"padding_mask must be (B, T) = {(B, T)}, got {tuple(padding_mask.shape)}")
            patch_padding = self._patch_padding(padding_mask.bool(), time_patches)

        if clones < 1 or (clones > 1 and patch_mask is None):
            raise ValueError(f"clones = {clones} needs a patch_mask with a row per clone")
        if patch_mask is not None:
            rows = B * clones
            if patch_mask.shape != (rows, N):
                raise ValueError(f"patch_mask must be (B x clones, N) = {(rows, N)}, got {tuple(patch_mask.shape)}")
            patch_mask = patch_mask.bool()
            kept = patch_mask.sum(dim=1)
            if kept_per_row is None:
                K = int(kept[0])
                if not bool((kept == K).all()):
                    raise ValueError(f"patch_mask keeps {kept.tolist()} patches per row; every row must keep the same")
            else:
                K = kept_per_row
                torch._assert_async((kept == K).all(), f"patch_mask rows must each keep {K} patches")
            # Kept positions in ascending grid order: stable sort puts True (0 after ~) first.
            keep_ids = torch.argsort((~patch_mask).to(torch.uint8), dim=1, stable=True)[:, :K]  # (rows, K)
            # Row r takes its tokens from input r // clones: index the (B * N, D) token table.
            source = torch.arange(rows, device=x.device) // clones  # (rows,)
            flat_ids = (source[:, None] * N + keep_ids).reshape(-1)  # (rows * K,)
            tokens = tokens.reshape(B * N, -1).index_select(0, flat_ids).view(rows, K, -1)  # (rows, K, D)
            if patch_padding is not None:
                patch_padding = patch_padding.reshape(B * N).index_select(0, flat_ids).view(rows, K)
            B = rows

        if patch_padding is not None and not bool(patch_padding.any()):
            patch_padding = None
        key_padding = None
        if patch_padding is not None:
            key_padding = F.pad(patch_padding, (1, 0), value=False)  # CLS is never padding

        x = torch.cat([self.cls_token.expand(B, -1, -1), tokens], dim=1)  # (B, K + 1, D)
        x = self.pre_norm(x)
        mlp_outputs = []
        for block in self.blocks:
            x, h = block(x, key_padding_mask=key_padding)
            if return_layer_outputs:
                mlp_outputs.append(h)
        return EATFeatures(
            cls=x[:, 0],
            patches=x[:, 1:],
            padding_mask=patch_padding,
            layer_mlp_outputs=tuple(mlp_outputs) if return_layer_outputs else None,
        )

    def pool(self, features: EATFeatures, how: PoolMode = "cls") -> Tensor:
        """Clip embedding from `forward_features` output.

        Args:
            features: output of `forward_features`.
            how: "cls" (B, D), "mean" of the non-padding patch tokens (B, D), or "both" (B, 2 D)
                = [cls, mean].
        """
        if how == "cls":
            return features.cls
        if how == "mean":
            if features.padding_mask is None:
                return features.patches.mean(dim=1)
            weights = (~features.padding_mask).to(features.patches.dtype)[:, :, None]  # (B, K, 1)
            return (features.patches * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)
        if how == "both":
            return torch.cat([features.cls, self.pool(features, "mean")], dim=1)
        raise ValueError(f"how must be 'cls', 'mean' or 'both', got {how!r}")

    def forward(self, x: Tensor, *, padding_mask: Tensor | None = None) -> Tensor:
        """CLS embedding (B, D) of spectrograms (B, 1, T, F); see `forward_features` and `pool`."""
        return self.forward_features(x, padding_mask=padding_mask).cls


class _ChannelLayerNorm(nn.Module):
    """LayerNorm without affine over the channel axis of (B, C, H, W) maps."""

    def __init__(self, num_channels: int, *, eps: float):
        super().__init__()
        self.num_channels = num_channels
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        x = x.permute(0, 2, 3, 1)  # (B, C, H, W) -> (B, H, W, C)
        x = F.layer_norm(x, (self.num_channels,), eps=self.eps)
        return x.permute(0, 3, 1, 2)  # (B, H, W, C) -> (B, C, H, W)


def _autocast_input(x: Tensor) -> Tensor:
    """`x` in the autocast dtype when autocast is on: the patches for the matmul are built at that width."""
    if torch.is_autocast_enabled(x.device.type):
        return x.to(torch.get_autocast_dtype(x.device.type))
    return x


def grouped_conv_matmul(x: Tensor, weight: Tensor, bias: Tensor | None, *, groups: int) -> Tensor:
    """A grouped 'same' Conv2d (odd kernel, stride 1) on channels-last maps as im2col + one batched matmul.

    Equals `F.conv2d` of the NCHW view with `padding=k // 2, groups=groups`; cuDNN's bf16 backward of
    EAT's 16-group 3 x 3 convolution is slow on recent GPUs (issue 18 profile), a (G, B*H*W, k*k*C/G)
    x (G, k*k*C/G, C/G) matmul is not.

    Args:
        x: (B, H, W, C).
        weight: (C, C / groups, k, k), as `nn.Conv2d` stores it.
        bias: (C,) or None.
        groups: G.

    Returns:
        (B, H, W, C).
    """
    B, H, W, C = x.shape
    k = weight.shape[-1]
    G, Cg = groups, C // groups
    p = k // 2
    x = _autocast_input(x)
    padded = F.pad(x, (0, 0, p, p, p, p))  # (B, H + 2p, W + 2p, C)
    by_group = padded.view(B, H + 2 * p, W + 2 * p, G, Cg).permute(3, 0, 1, 2, 4)  # (G, B, H + 2p, W + 2p, Cg)
    shifted = [by_group[:, :, i : i + H, j : j + W] for i in range(k) for j in range(k)]
    cols = torch.stack(shifted, dim=4).view(G, B * H * W, k * k * Cg)  # (G, B, H, W, k*k, Cg) -> (G, BHW, k*k*Cg)
    # (C_out, Cg, k, k) -> (G, C_out/G, Cg, k, k) -> (G, k, k, Cg, C_out/G): rows in the order of `cols`.
    w = weight.view(G, C // G, Cg, k, k).permute(0, 3, 4, 2, 1).reshape(G, k * k * Cg, C // G)
    if bias is None:
        out = torch.bmm(cols, w.to(cols.dtype))  # (G, BHW, C/G)
    else:
        out = torch.baddbmm(bias.view(G, 1, C // G).to(cols.dtype), cols, w.to(cols.dtype))
    return out.permute(1, 0, 2).reshape(B, H, W, C)  # (G, BHW, C/G) -> (BHW, G, C/G) -> (B, H, W, C)


DecoderConv = Literal["conv", "conv-nhwc", "matmul"]
DECODER_CONVS: tuple[str, ...] = ("conv", "conv-nhwc", "matmul")


class EATDecoder(nn.Module):
    """EAT's lightweight CNN decoder of the student (data2vec 2.0 `Decoder2d`).

    Kept student tokens and N(0, 0.01^2) mask tokens are put back on the (T/16) x 8 grid; then
    `num_layers` x [grouped Conv2d -> channel LayerNorm (no affine, eps 1e-5) -> GELU], each with
    a residual add, and a per-position Linear. No positions are added.

    Three computations of the same layers, chosen by `conv` (settable; weights and keys are the
    same): "conv" runs `nn.Conv2d` on (B, D, H, W) maps as the reference does; "conv-nhwc" keeps
    the maps channels-last (B, H, W, D), so the LayerNorm needs no permutes and cuDNN gets NHWC
    input; "matmul" also computes the grouped convolution as `grouped_conv_matmul`.

    Args:
        embed_dim: D of the encoder.
        num_layers: conv layers (base 6, large 3).
        kernel_size: conv kernel (base 3, large 5).
        groups: conv groups (16).
        freq_patches: grid width (8 for 128 mel bins).
        mask_noise_std: standard deviation of the mask tokens (0.01).
        conv: "conv" (default), "conv-nhwc" or "matmul".
    """

    def __init__(
        self,
        *,
        embed_dim: int = 768,
        num_layers: int = 6,
        kernel_size: int = 3,
        groups: int = 16,
        freq_patches: int = 8,
        mask_noise_std: float = 0.01,
        conv: DecoderConv = "conv",
    ):
        super().__init__()
        if conv not in DECODER_CONVS:
            raise ValueError(f"conv must be one of {', '.join(DECODER_CONVS)}, got {conv!r}")
        self.freq_patches = freq_patches
        self.mask_noise_std = mask_noise_std
        self.groups = groups
        self.conv = conv
        # nn.Sequential keeps the released key names `blocks.{i}.0.{weight,bias}`.
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(embed_dim, embed_dim, kernel_size, padding=kernel_size // 2, groups=groups),
                _ChannelLayerNorm(embed_dim, eps=1e-5),  # fairseq LayerNorm default eps
                nn.GELU(),
            )
            for _ in range(num_layers)
        )
        self.proj = nn.Linear(embed_dim, embed_dim)

    def mask_noise(
        self, rows: int, num_patches: int, *, generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> Tensor:
        """The mask tokens' noise (rows, N, D) in float32, as `forward` draws it from `generator`."""
        D = self.proj.in_features
        noise = torch.randn(rows, num_patches, D, generator=generator, device=device)
        return noise * self.mask_noise_std

    def _channels_last_layers(self, x: Tensor) -> Tensor:
        """The conv layers on (B, H, W, D) maps -> (B, H, W, D)."""
        for block in self.blocks:
            conv, norm = block[0], block[1]
            if self.conv == "matmul":
                y = grouped_conv_matmul(x, conv.weight, conv.bias, groups=self.groups)
            else:  # an NCHW view with channels-last strides: cuDNN / oneDNN run NHWC, no copy
                y = conv(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)  # (B, D, H, W) view <-> (B, H, W, D)
            x = x + F.gelu(F.layer_norm(y, y.shape[-1:], eps=norm.eps))
        return x

    def forward(
        self, patches: Tensor, patch_mask: Tensor, *, generator: torch.Generator | None = None,
        noise: Tensor | None = None,
    ) -> Tensor:
        """Predict every grid position from the kept tokens.

        Args:
            patches: student patch tokens without CLS (B, K, D), in ascending grid order as
                returned by `EATEncoder.forward_features(..., patch_mask=patch_mask)`.
            patch_mask: (B, N) bool, True for kept patches (K per row).
            generator: source of the mask-token noise.
            noise: the mask tokens (B, N, D) from `mask_noise`, instead of drawing them here
                (keeps random draws out of a compiled graph).

        Returns:
            (B, N, D) predictions in grid order.
        """
        B, N = patch_mask.shape
        D = patches.shape[-1]
        if N % self.freq_patches:
            raise ValueError(f"{N} patches do not fill rows of {self.freq_patches}")
        if noise is None:
            noise = self.mask_noise(B, N, generator=generator, device=patches.device)
        grid = noise.to(patches.dtype)
        # masked_scatter fills True positions in row-major order, i.e. ascending grid index per row.
        grid = grid.masked_scatter(patch_mask.bool()[:, :, None], patches)  # (B, N, D)
        H, W = N // self.freq_patches, self.freq_patches
        if self.conv == "conv":
            x = grid.view(B, H, W, D).permute(0, 3, 1, 2)  # (B, D, T/16, 8)
            for block in self.blocks:
                x = x + block(x)
            x = x.permute(0, 2, 3, 1).reshape(B, N, D)  # (B, D, T/16, 8) -> (B, N, D)
        else:
            x = self._channels_last_layers(grid.view(B, H, W, D)).reshape(B, N, D)  # (B, T/16, 8, D) -> (B, N, D)
        return self.proj(x)


def _build_encoder(name: str, overrides: dict) -> EATEncoder:
    preset = EAT_PRESETS[name]
    kwargs = dict(embed_dim=preset.embed_dim, depth=preset.depth, num_heads=preset.num_heads)
    return EATEncoder(**{**kwargs, **overrides})


def create_eat_decoder(name: str, **overrides) -> EATDecoder:
    """The decoder that goes with the encoder preset `name` (e.g. "eat-base")."""
    preset = EAT_PRESETS[name]
    kwargs = dict(embed_dim=preset.embed_dim, num_layers=preset.decoder_layers, kernel_size=preset.decoder_kernel)
    return EATDecoder(**{**kwargs, **overrides})


@register_encoder("eat-tiny")
def eat_tiny(**overrides) -> EATEncoder:
    """EAT-tiny: 192 wide, 4 blocks, 3 heads (tests, CI)."""
    return _build_encoder("eat-tiny", overrides)


@register_encoder("eat-small")
def eat_small(**overrides) -> EATEncoder:
    """EAT-small: 384 wide, 12 blocks, 6 heads (CPU-scale training)."""
    return _build_encoder("eat-small", overrides)


@register_encoder("eat-base")
def eat_base(**overrides) -> EATEncoder:
    """EAT-base: 768 wide, 12 blocks, 12 heads (the released EAT-base checkpoints)."""
    return _build_encoder("eat-base", overrides)


@register_encoder("eat-large")
def eat_large(**overrides) -> EATEncoder:
    """EAT-large: 1024 wide, 24 blocks, 16 heads (the released EAT-large checkpoint)."""
    return _build_encoder("eat-large", overrides)


@register_encoder("sslam-base")
def sslam_base(**overrides) -> EATEncoder:
    """SSLAM: the EAT-base architecture, for the released SSLAM pre-trained / AS2M fine-tuned files."""
    return _build_encoder("sslam-base", overrides)
