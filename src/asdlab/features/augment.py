"""Training-time augmentations as pure tensor transforms with explicit generators: SpecAugment masking
(Park et al., Interspeech 2019), mixup (Zhang et al., ICLR 2018) and statistics exchange (StatEx,
Chen et al. 2023, as used on the temporal axis in arXiv:2312.09578 / wilkinghoff/ssl4asd).
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import numpy as np
import torch
from torch import Tensor

__all__ = ["Pairing", "random_partners", "spec_augment", "mixup", "statex"]

# Added to the standard deviation before dividing: a constant frame or bin would otherwise give 0 / 0.
_STD_EPS = 1e-8


class Pairing(NamedTuple):
    """Which clip each sample was combined with.

    Attributes:
        partner: LongTensor (B,), the index of the other clip of sample i.
        applied: BoolTensor (B,), True where the transform was applied (elsewhere the sample is unchanged).
    """

    partner: Tensor
    applied: Tensor


def random_partners(
    batch: int, *, generator: torch.Generator | None = None, device: torch.device | str = "cpu"
) -> Tensor:
    """A random partner for every sample, never itself when batch >= 2.

    The samples are put in random order and each is paired with the next one (cyclically), so every
    clip is used exactly once as a partner. (The reference pairs i with B - 1 - i, which pairs the
    middle clip of an odd batch with itself.)

    Returns:
        LongTensor (batch,).
    """
    order = torch.randperm(batch, generator=generator)
    partner = torch.empty(batch, dtype=torch.long)
    partner[order] = order.roll(-1)
    return partner.to(device)


def _applied(batch: int, p: float, generator: torch.Generator | None, device: torch.device) -> Tensor:
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"probability p must be in [0, 1], got {p}")
    return (torch.rand(batch, generator=generator) < p).to(device)


def _check_partner(
    partner: Tensor | None, batch: int, generator: torch.Generator | None, device: torch.device
) -> Tensor:
    if partner is None:
        return random_partners(batch, generator=generator, device=device)
    if partner.shape != (batch,):
        raise ValueError(f"partner must be ({batch},), got {tuple(partner.shape)}")
    return partner.to(device=device, dtype=torch.long)


def _widths(width: int | tuple[int, int], name: str) -> tuple[int, int]:
    low, high = (0, width) if isinstance(width, int) else width
    if not 0 <= low <= high:
        raise ValueError(f"{name} must be an int >= 0 or a (min, max) pair with 0 <= min <= max, got {width}")
    return low, high


def _band_mask(
    batch: int, size: int, count: int, width: int | tuple[int, int], name: str, generator: torch.Generator | None
) -> Tensor:
    """(batch, size) bool: `count` bands per row, widths uniform in [min, max], starts uniform."""
    low, high = _widths(width, name)
    mask = torch.zeros(batch, size, dtype=torch.bool)
    if count == 0 or high == 0 or size == 0:
        return mask
    high = min(high, size)
    low = min(low, high)
    w = torch.randint(low, high + 1, (batch, count), generator=generator)  # (B, M)
    start = (torch.rand(batch, count, generator=generator) * (size - w + 1)).long()  # in [0, size - w]
    pos = torch.arange(size)[None, None, :]  # (1, 1, size)
    bands = (pos >= start[:, :, None]) & (pos < (start + w)[:, :, None])  # (B, M, size)
    return bands.any(dim=1)


def spec_augment(
    spec: Tensor,
    *,
    time_masks: int,
    time_width: int | tuple[int, int],
    freq_masks: int,
    freq_width: int | tuple[int, int],
    generator: torch.Generator | None = None,
    fill: float = 0.0,
) -> Tensor:
    """SpecAugment time and frequency masking, independently per sample (no time warping).

    Args:
        spec: (B, 1, T, F) or (B, T, F).
        time_masks: number of time bands per sample.
        time_width: the widest time band in frames (widths uniform in [0, W]), or (min, max).
        freq_masks: number of frequency bands per sample.
        freq_width: the widest frequency band in bins, or (min, max).
        generator: RNG of band widths and positions (drawn on the CPU).
        fill: value of masked cells (0 = the mean of a normalised spectrogram).

    Returns:
        A new tensor, same shape as `spec`; bands may overlap.
    """
    if spec.ndim not in (3, 4) or (spec.ndim == 4 and spec.shape[1] != 1):
        raise ValueError(f"spec must be (B, 1, T, F) or (B, T, F), got {tuple(spec.shape)}")
    B, T, Fb = spec.shape[0], spec.shape[-2], spec.shape[-1]
    time = _band_mask(B, T, time_masks, time_width, "time_width", generator)  # (B, T)
    freq = _band_mask(B, Fb, freq_masks, freq_width, "freq_width", generator)  # (B, F)
    mask = (time[:, :, None] | freq[:, None, :]).to(spec.device)  # (B, T, F)
    if spec.ndim == 4:
        mask = mask[:, None]  # (B, 1, T, F)
    return spec.masked_fill(mask, fill)


def _beta(alpha: float, size: int, generator: torch.Generator | None) -> Tensor:
    if alpha <= 0:
        raise ValueError(f"mixup alpha must be positive, got {alpha}")
    if alpha == 1.0:  # Beta(1, 1) is uniform, what the reference draws
        return torch.rand(size, generator=generator)
    # torch's Beta sampler takes no generator: seed NumPy's from the torch generator instead.
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    return torch.from_numpy(np.random.default_rng(seed).beta(alpha, alpha, size)).float()


def mixup(
    x: Tensor,
    targets: Tensor,
    *,
    generator: torch.Generator | None = None,
    alpha: float = 1.0,
    p: float = 1.0,
    partner: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Mix each sample with a partner: x' = l x_i + (1 - l) x_j, t' = l t_i + (1 - l) t_j.

    Args:
        x: (B, ...) waveforms, spectrograms or embeddings.
        targets: float weights (B, C).
        generator: RNG of partners, weights and which samples are mixed.
        alpha: l ~ Beta(alpha, alpha), one per sample (reference: 1, i.e. uniform).
        p: probability that a sample is mixed (reference: 0.5); the others keep x and t.
        partner: LongTensor (B,) to use instead of `random_partners`.

    Returns:
        (mixed x, mixed targets), same shapes and dtypes as the inputs.
    """
    B = x.shape[0]
    if targets.ndim != 2 or targets.shape[0] != B or not targets.is_floating_point():
        raise ValueError(f"targets must be float (B, C) with B = {B}, got {targets.dtype} {tuple(targets.shape)}")
    partner = _check_partner(partner, B, generator, x.device)
    lam = _beta(alpha, B, generator).to(x.device)
    lam = torch.where(_applied(B, p, generator, x.device), lam, torch.ones_like(lam))  # l = 1 keeps the sample
    lx = lam.to(x.dtype).view((B,) + (1,) * (x.ndim - 1))  # (B, 1, ...)
    lt = lam.to(targets.dtype)[:, None]  # (B, 1)
    return lx * x + (1 - lx) * x[partner], lt * targets + (1 - lt) * targets[partner]


def statex(
    spec: Tensor,
    *,
    generator: torch.Generator | None = None,
    p: float = 1.0,
    reduce_over: Literal["frequency", "time"] = "frequency",
    partner: Tensor | None = None,
) -> tuple[Tensor, Pairing]:
    """Statistics exchange: normalise a clip's spectrogram and give it its partner's statistics,
    x'_i = (x_i - mu(x_i)) / sigma(x_i) * sigma(x_j) + mu(x_j).

    With `reduce_over="frequency"` (default, the reference's temporal variant "X_tex", the only one it
    uses) mu and sigma are taken over frequency for every frame, so the partner's temporal statistics
    (one mean and standard deviation per frame) are imposed. `reduce_over="time"` takes them over time
    for every frequency bin (per-frequency statistics; the frequency variant).

    Args:
        spec: (B, T, F) or (B, 1, T, F), e.g. a magnitude spectrogram before temporal mean normalisation.
        generator: RNG of partners and which samples are exchanged.
        p: probability that a sample is exchanged (reference: 0.5).
        reduce_over: the axis the exchanged statistics are computed over.
        partner: LongTensor (B,) to use instead of `random_partners`.

    Returns:
        (new spectrogram, `Pairing`); unexchanged samples are returned unchanged.
    """
    if spec.ndim not in (3, 4) or (spec.ndim == 4 and spec.shape[1] != 1):
        raise ValueError(f"spec must be (B, T, F) or (B, 1, T, F), got {tuple(spec.shape)}")
    if reduce_over not in ("frequency", "time"):
        raise ValueError(f"reduce_over must be 'frequency' or 'time', got {reduce_over!r}")
    B = spec.shape[0]
    partner = _check_partner(partner, B, generator, spec.device)
    applied = _applied(B, p, generator, spec.device)
    dim = -1 if reduce_over == "frequency" else -2
    mean = spec.mean(dim=dim, keepdim=True)
    std = spec.std(dim=dim, keepdim=True, unbiased=False)  # population std, as tf.math.reduce_std
    exchanged = (spec - mean) / (std + _STD_EPS) * std[partner] + mean[partner]
    keep = applied.view((B,) + (1,) * (spec.ndim - 1))
    return torch.where(keep, exchanged, spec), Pairing(partner=partner, applied=applied)
