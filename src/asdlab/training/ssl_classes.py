"""Label bookkeeping of the self-supervised tasks of the two-branch CNN recipe (Wilkinghoff,
"Self-supervised learning for anomalous sound detection", arXiv:2312.09578; code wilkinghoff/ssl4asd):
mixup, StatEx and FeatEx, each applied per sample with probability 0.5. `exchange_targets` documents the
class layout they create, `featex_num_classes` how the recipe chains them into 9 C classes.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from asdlab.features.augment import Pairing, mixup, random_partners, statex

__all__ = [
    "statex_num_classes",
    "featex_num_classes",
    "exchange_targets",
    "apply_mixup",
    "apply_statex",
    "apply_featex",
]


def statex_num_classes(num_classes: int) -> int:
    """Output classes of the StatEx head for targets over `num_classes` classes: 3 C."""
    return 3 * num_classes


def featex_num_classes(num_classes: int) -> int:
    """Output classes of the FeatEx head for targets over `num_classes` classes: 3 C.

    The recipe chains the tasks as the reference does: mixup on the waveform keeps the C labelled
    classes; StatEx on the STFT spectrogram gives 3C; FeatEx on the branch embeddings with the StatEx
    targets gives `featex_num_classes(statex_num_classes(C))` = 9C, class index
    featex_block * 3C + statex_block * C + c (blocks as in `exchange_targets`). Its losses: sub-cluster
    AdaCos with C classes and fixed centres on [e_fft, e_stft] (e_stft from the StatEx output, as in the
    reference) with the mixup targets, plus sub-cluster
    AdaCos with 9C classes and trainable centres on the FeatEx output, weighted equally (the reference's
    3C StatEx head has loss weight 0 and can be left out).
    """
    return 3 * num_classes


def _check_targets(targets: Tensor, batch: int) -> None:
    if targets.ndim != 2 or targets.shape[0] != batch or not targets.is_floating_point():
        raise ValueError(f"targets must be float (B, C) with B = {batch}, got {targets.dtype} {tuple(targets.shape)}")


def exchange_targets(targets: Tensor, pairing: Pairing) -> Tensor:
    """Targets (B, C) -> (B, 3C): the class layout of an exchange task (StatEx, FeatEx).

    block 0, [0, C):    sample not exchanged: t_i.
    block 1, [C, 2C):   exchanged: 0.5 t_i, the clip that kept its part (StatEx: the normalised
                        content; FeatEx: the fft-branch embedding).
    block 2, [2C, 3C):  exchanged: 0.5 t_j, the partner that gave its part (StatEx: the statistics;
                        FeatEx: the stft-branch embedding).

    Args:
        targets: float weights (B, C).
        pairing: who was exchanged with whom.

    Returns:
        (B, 3C); each row sums to what the row of `targets` summed to.
    """
    _check_targets(targets, pairing.partner.shape[0])
    zeros = torch.zeros_like(targets)
    kept = torch.cat([targets, zeros, zeros], dim=1)
    swapped = torch.cat([zeros, 0.5 * targets, 0.5 * targets[pairing.partner]], dim=1)
    return torch.where(pairing.applied[:, None], swapped, kept)


def apply_mixup(
    x: Tensor, targets: Tensor, *, generator: torch.Generator | None = None, p: float = 0.5, alpha: float = 1.0
) -> tuple[Tensor, Tensor]:
    """Mixup as SSL task (reference: waveforms, p = 0.5, weights uniform); the classes stay C.

    Args:
        x: (B, ...) waveforms (or spectrograms, embeddings).
        targets: float weights (B, C).
        generator: RNG.
        p: probability that a sample is mixed.
        alpha: Beta(alpha, alpha) mixing weights.

    Returns:
        (mixed x, mixed targets (B, C)).
    """
    return mixup(x, targets, generator=generator, alpha=alpha, p=p)


def apply_statex(
    spec: Tensor,
    targets: Tensor,
    *,
    generator: torch.Generator | None = None,
    p: float = 0.5,
    reduce_over: Literal["frequency", "time"] = "frequency",
) -> tuple[Tensor, Tensor]:
    """StatEx on spectrograms with its labels (see `asdlab.features.augment.statex`).

    Args:
        spec: (B, T, F) or (B, 1, T, F), the STFT-branch input before its mean normalisation.
        targets: float weights (B, C) (in the recipe, the mixup targets).
        generator: RNG.
        p: probability that a sample is exchanged.
        reduce_over: axis of the exchanged statistics ("frequency": the reference's temporal variant).

    Returns:
        (spectrogram, targets (B, 3C)).
    """
    _check_targets(targets, spec.shape[0])
    out, pairing = statex(spec, generator=generator, p=p, reduce_over=reduce_over)
    return out, exchange_targets(targets, pairing)


def apply_featex(
    e_fft: Tensor,
    e_stft: Tensor,
    targets: Tensor,
    *,
    generator: torch.Generator | None = None,
    p: float = 0.5,
    per_sample: bool = True,
) -> tuple[Tensor, Tensor]:
    """FeatEx: give an exchanged sample the stft-branch embedding of its partner.

    Exchanged sample i becomes [e_fft_i, e_stft_j] with targets [0, 0.5 t_i, 0.5 t_j] (block 1 = the
    clip of the fft embedding, block 2 = the clip of the stft embedding); others stay [e_fft_i, e_stft_i]
    with [t_i, 0, 0]. Gradients flow into both branches of both clips.

    Args:
        e_fft: (B, Da) fft-branch embeddings.
        e_stft: (B, Db) stft-branch embeddings.
        targets: float weights (B, C) (in the recipe, the 3C StatEx targets).
        generator: RNG of partners and decisions.
        p: probability of exchanging.
        per_sample: decide per sample (reference) or once for the whole batch.

    Returns:
        (embeddings (B, Da + Db), targets (B, 3C)) for a head with `featex_num_classes(C)` classes.
    """
    B = e_fft.shape[0]
    if e_stft.ndim != 2 or e_fft.ndim != 2 or e_stft.shape[0] != B:
        shapes = f"{tuple(e_fft.shape)}, {tuple(e_stft.shape)}"
        raise ValueError(f"e_fft and e_stft must be (B, Da) and (B, Db), got {shapes}")
    _check_targets(targets, B)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"probability p must be in [0, 1], got {p}")
    partner = random_partners(B, generator=generator, device=e_fft.device)
    draws = torch.rand(B if per_sample else 1, generator=generator).expand(B)
    pairing = Pairing(partner=partner, applied=(draws < p).to(e_fft.device))
    stft = torch.where(pairing.applied[:, None], e_stft[partner], e_stft)
    return torch.cat([e_fft, stft], dim=1), exchange_targets(targets, pairing)
