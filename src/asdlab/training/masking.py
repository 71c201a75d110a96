"""EAT's inverse block masking of the (T/16) x 8 patch grid (EAT.md "Utterance-Frame Objective").

Keep 5 x 5 blocks around random centres, then add or remove single patches until exactly
round((1 - mask_ratio) * N) patches are kept, so every view keeps the same count and batches stack.
Follows data2vec 2.0's `compute_block_mask_2d(inverse_mask=True, require_same_masks=True)`, vectorised.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from asdlab.errors import ConfigError

__all__ = ["kept_count", "sample_centres", "block_keep_map", "fix_kept_count", "inverse_block_mask"]


def kept_count(num_patches: int, mask_ratio: float) -> int:
    """Patches each view keeps: round((1 - mask_ratio) * N), at least 1 (512 patches, 0.8 -> 102).

    data2vec 2.0 truncates (`int(L * 0.2)`); both give 102 for EAT's 512 patches, and rounding
    keeps short clips closer to the ratio (104 patches -> 21 instead of 20).
    """
    if not 0.0 <= mask_ratio < 1.0:
        raise ConfigError(f"mask_ratio must be in [0, 1), got {mask_ratio}")
    return max(1, min(num_patches, round((1.0 - mask_ratio) * num_patches)))


def sample_centres(
    num_masks: int,
    time_patches: int,
    freq_patches: int = 8,
    *,
    mask_ratio: float = 0.8,
    block_size: int = 5,
    centre_adjust: float = 0.07,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """Random block centres as a (M, H, W) bool map (H = time patches, W = frequency patches).

    data2vec 2.0 draws int(N * (keep + 0.07) / block_size^2) grid indices with replacement (0.07 =
    `mask_prob_adjust`, making up for overlapping blocks); at least one here, for very short clips.
    """
    num_patches = time_patches * freq_patches
    keep = 1.0 - mask_ratio
    per_mask = max(1, int(num_patches * (keep + centre_adjust) / block_size**2))
    ids = torch.randint(0, num_patches, (num_masks, per_mask), generator=generator, device=device)  # (M, c)
    centres = torch.zeros(num_masks, num_patches, dtype=torch.bool, device=device)
    centres.scatter_(1, ids, True)
    return centres.view(num_masks, time_patches, freq_patches)  # (M, N) -> (M, H, W)


def block_keep_map(centres: Tensor, block_size: int = 5) -> Tensor:
    """Union of the block_size x block_size blocks around each centre, cut at the grid edges.

    Args:
        centres: (M, H, W) bool.
        block_size: odd block side (EAT: 5).

    Returns:
        (M, H * W) bool, time-major (index t * W + f).
    """
    if block_size < 1 or block_size % 2 == 0:
        raise ConfigError(f"block_size must be odd and >= 1, got {block_size}")
    M, H, W = centres.shape
    # A max-pool of the centre map is a binary dilation; its implicit -inf padding cuts blocks at
    # the edges, the same set as data2vec's clamped indices.
    blocks = F.max_pool2d(centres[:, None].float(), block_size, stride=1, padding=block_size // 2)  # (M, 1, H, W)
    return blocks.view(M, H * W) > 0.5


def fix_kept_count(keep: Tensor, count: int, *, generator: torch.Generator | None = None) -> Tensor:
    """Remove random kept patches, or add random masked ones, until each row keeps exactly `count`.

    Patches to drop (or add) are uniform without replacement, as data2vec's `torch.multinomial`
    loop; here one top-k over "kept first, then a uniform random order" does every row at once.

    Args:
        keep: (M, N) bool, True = kept.
        count: kept patches per row (1 <= count <= N).

    Returns:
        (M, N) bool with `count` True per row: a subset of `keep` where a row kept more, a
        superset where it kept fewer.
    """
    M, N = keep.shape
    if not 1 <= count <= N:
        raise ConfigError(f"cannot keep {count} of {N} patches")
    order = torch.rand(M, N, generator=generator, device=keep.device)  # in [0, 1)
    priority = keep.to(order.dtype) * 2.0 + order  # every kept patch outranks every masked one
    chosen = priority.topk(count, dim=1).indices  # (M, count)
    fixed = torch.zeros_like(keep)
    return fixed.scatter_(1, chosen, True)


def inverse_block_mask(
    num_masks: int,
    time_patches: int,
    freq_patches: int = 8,
    *,
    mask_ratio: float = 0.8,
    block_size: int = 5,
    centre_adjust: float = 0.07,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """Independent inverse block masks, one per view (e.g. batch x 16 clones).

    Args:
        num_masks: M, the number of views.
        time_patches: H = T / 16 (any H >= 1).
        freq_patches: W = F / 16 (8 for 128 mel bins).
        mask_ratio: fraction masked (EAT: 0.8).
        block_size: side of the kept blocks (EAT: 5).
        centre_adjust: extra centre density for overlaps (data2vec 2.0 `mask_prob_adjust`: 0.07).
        generator: source of all randomness (on `device`); the same seed gives the same masks.
        device: where the masks are made.

    Returns:
        (M, H * W) bool, True = kept (visible to the student), exactly `kept_count(H * W,
        mask_ratio)` per row, time-major.
    """
    if num_masks < 1 or time_patches < 1 or freq_patches < 1:
        raise ConfigError(f"need at least one mask and patch, got {num_masks} x {time_patches} x {freq_patches}")
    count = kept_count(time_patches * freq_patches, mask_ratio)
    centres = sample_centres(
        num_masks, time_patches, freq_patches, mask_ratio=mask_ratio, block_size=block_size,
        centre_adjust=centre_adjust, generator=generator, device=device,
    )
    return fix_kept_count(block_keep_map(centres, block_size), count, generator=generator)
