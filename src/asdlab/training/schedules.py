"""Learning-rate schedules and optimiser parameter groups shared by every training loop.

Cosine decay with linear warm-up (EAT.md "Optimiser"; the paper's fine-tuning recipe), weight decay
only on weight matrices (not biases, norms, tokens: EAT.md), and layer-wise learning-rate decay for
transformer fine-tuning (EAT.md "Fine-tuning": 0.65).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

from torch import nn

__all__ = ["cosine_with_warmup", "steps_for_epochs", "parameter_groups", "eat_layer_id"]

# Parameter names that never get weight decay even when they are not 1-D (EAT: CLS token (1, 1, D);
# BEATs: the per-head gate scale (1, H, 1, 1) and the position conv's weight-norm gain (1, 1, K), norm-like scales).
_NO_DECAY_NAMES = ("cls_token", "pos_table", "centres", "centers", "gate_scale", "weight_g")


def cosine_with_warmup(step: int, *, warmup_steps: int, total_steps: int, min_ratio: float = 0.0) -> float:
    """Learning-rate multiplier at optimiser step `step` (0-based).

    Linear warm-up from 1 / warmup_steps to 1 over `warmup_steps` steps, then half a cosine down to
    `min_ratio` at `total_steps`, constant afterwards.
    """
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    span = max(total_steps - warmup_steps, 1)
    progress = min(max(step - warmup_steps, 0) / span, 1.0)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def steps_for_epochs(max_steps: int, epochs: float | None, n_examples: int, batch_size: int) -> int:
    """Updates for `epochs` passes over `n_examples` in batches of min(batch_size, n_examples), rounded
    up and at most `max_steps`; `max_steps` when `epochs` is None (training time then grows with the data
    only through the cost of a step, and a small set is seen many more times than a large one)."""
    if epochs is None:
        return max_steps
    batch = max(1, min(batch_size, n_examples))
    return max(1, min(max_steps, math.ceil(epochs * n_examples / batch)))


def _decays(name: str, parameter: nn.Parameter) -> bool:
    leaf = name.rsplit(".", 1)[-1]
    return parameter.ndim > 1 and leaf not in _NO_DECAY_NAMES and not name.endswith(".bias")


def parameter_groups(
    named_parameters: Iterable[tuple[str, nn.Parameter]],
    *,
    weight_decay: float,
    lr_scale: Callable[[str], float] | None = None,
) -> list[dict]:
    """Split trainable parameters into optimiser groups by weight decay and learning-rate scale.

    Args:
        named_parameters: e.g. `module.named_parameters()`; frozen parameters are left out.
        weight_decay: applied to weight matrices and conv kernels only, never to biases, 1-D
            parameters (norms) or tokens (EAT.md: "not on biases and 1-D parameters").
        lr_scale: maps a parameter name to a multiplier of the base learning rate (layer-wise decay);
            None = 1 for all.

    Returns:
        groups with keys "params", "names", "weight_decay" and "lr_scale" (the training loop multiplies
        its learning rate by "lr_scale"); empty groups are dropped.
    """
    groups: dict[tuple[float, float], dict] = {}
    for name, parameter in named_parameters:
        if not parameter.requires_grad:
            continue
        decay = weight_decay if _decays(name, parameter) else 0.0
        scale = 1.0 if lr_scale is None else float(lr_scale(name))
        group = groups.setdefault((decay, scale), {"params": [], "names": [], "weight_decay": decay, "lr_scale": scale})
        group["params"].append(parameter)
        group["names"].append(name)
    return list(groups.values())


def eat_layer_id(name: str, depth: int, *, prefix: str = "") -> int:
    """Layer index of a transformer parameter (EAT, SSLAM, BEATs) for layer-wise lr decay (BEiT convention).

    Everything before the blocks is layer 0 (EAT: patch embedding, CLS token, pre-norm; BEATs also the
    patch norm and projection, position conv and the relative-bias table shared by all blocks),
    `blocks.{i}` is layer i + 1, everything else (heads, projections) is layer depth + 1. `prefix` is the
    encoder's name inside a larger module (e.g. "encoder."); names outside it count as heads.
    """
    if not name.startswith(prefix):
        return depth + 1
    local = name[len(prefix):]
    if local.startswith(("patch_embed", "cls_token", "pre_norm", "pos_table", "patch_norm", "patch_proj", "pos_conv",
                         "rel_pos_bias")):
        return 0
    if local.startswith("blocks."):
        return int(local.split(".")[1]) + 1
    return depth + 1
