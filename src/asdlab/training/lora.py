"""LoRA (Hu et al., ICLR 2022) on our encoders through peft's `inject_adapter_in_model`: adapters on the
attention (and optionally MLP) Linear layers of `EATEncoder` / `BEATsEncoder` blocks, everything else frozen;
adapter-only state dicts with stable keys; merging back to a plain encoder with the original key names.
peft is an optional extra (`pip install 'asdlab[lora]'`).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from torch import Tensor, nn

from asdlab.errors import CheckpointError, ConfigError

__all__ = ["apply_lora", "lora_parameters", "lora_state_dict", "load_lora_state", "merge_lora"]

logger = logging.getLogger(__name__)

_ADAPTER = "default"  # peft's adapter name; removed from the keys of `lora_state_dict`
_MLP_TARGETS = ("mlp.fc1", "mlp.fc2")


def _peft() -> Any:
    try:
        import peft
    except ImportError as error:
        raise ConfigError(
            f"LoRA needs the optional dependency peft, which cannot be imported ({error}): pip install 'asdlab[lora]'"
        ) from None
    return peft


def _is_lora_layer(module: nn.Module) -> bool:
    from peft.tuners.lora import LoraLayer

    return isinstance(module, LoraLayer)


def apply_lora(
    module: nn.Module,
    *,
    rank: int = 8,
    alpha: float = 16,
    dropout: float = 0.0,
    targets: Sequence[str] = ("attn.qkv", "attn.proj"),
    include_mlp: bool = False,
) -> nn.Module:
    """Add LoRA adapters in place and freeze every other parameter.

    Each targeted Linear W x + b becomes W x + b + (alpha / rank) B A dropout(x) with A (rank, in)
    Kaiming-uniform and B (out, rank) zero, so the output is unchanged until B is trained. The module
    keeps its class and methods (`forward_features`, `pool`); the targeted layers become peft
    `lora.Linear` wrappers, so state-dict keys gain `.base_layer` / `.lora_A.default` parts until
    `merge_lora`.

    Args:
        module: e.g. an `EATEncoder` or `BEATsEncoder` (Linear layers `blocks.{i}.attn.qkv`, `attn.proj`,
            `mlp.fc1`, `mlp.fc2`).
        rank: r.
        alpha: LoRA alpha (scaling alpha / r).
        dropout: dropout on the adapter input.
        targets: module-name suffixes to adapt; each must match at least one nn.Linear.
        include_mlp: also adapt `mlp.fc1` and `mlp.fc2`.

    Returns:
        `module` itself, adapted.

    Raises:
        ConfigError: peft missing, bad rank, a target matching no Linear layer, or a module that
            already has adapters.
    """
    peft = _peft()
    if rank < 1:
        raise ConfigError(f"LoRA rank must be >= 1, got {rank}")
    if any(_is_lora_layer(m) for m in module.modules()):
        raise ConfigError("module already has LoRA adapters; merge_lora it first")
    suffixes = tuple(targets) + (_MLP_TARGETS if include_mlp else ())
    names = []
    for suffix in suffixes:
        found = [n for n, m in module.named_modules() if (n == suffix or n.endswith("." + suffix))]
        linear = [n for n in found if isinstance(module.get_submodule(n), nn.Linear)]
        if not linear:
            raise ConfigError(f"LoRA target {suffix!r} matches no nn.Linear of {type(module).__name__}")
        names.extend(linear)
    config = peft.LoraConfig(
        r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=sorted(set(names)), bias="none"
    )
    peft.inject_adapter_in_model(config, module, adapter_name=_ADAPTER)
    for name, param in module.named_parameters():
        param.requires_grad = ".lora_" in name
    trainable = sum(p.numel() for p in lora_parameters(module))
    logger.debug("LoRA rank %d on %d layers: %d trainable parameters", rank, len(set(names)), trainable)
    return module


def lora_parameters(module: nn.Module) -> list[nn.Parameter]:
    """The adapter parameters of a module adapted by `apply_lora` (what the optimiser should get)."""
    return [p for n, p in module.named_parameters() if ".lora_" in n]


def _stable_key(key: str) -> str:
    return key.replace(f".{_ADAPTER}.", ".")


def lora_state_dict(module: nn.Module) -> dict[str, Tensor]:
    """Adapter weights only, keys like `blocks.0.attn.qkv.lora_A.weight` (no adapter name).

    Returns:
        Detached tensors, keyed by stable names, on the module's device.
    """
    return {_stable_key(k): v.detach() for k, v in module.state_dict().items() if ".lora_" in k}


def load_lora_state(module: nn.Module, state: Mapping[str, Tensor]) -> None:
    """Load `lora_state_dict` output into a module adapted by `apply_lora` with the same targets and rank.

    Raises:
        CheckpointError: missing, unexpected or mis-shaped adapter keys (all listed).
    """
    own = lora_state_dict(module)
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    misshaped = sorted(
        f"{k}: {tuple(state[k].shape)} != {tuple(own[k].shape)}"
        for k in set(own) & set(state)
        if tuple(state[k].shape) != tuple(own[k].shape)
    )
    if missing or unexpected or misshaped or not own:
        problems = [f"missing: {missing}"] * bool(missing) + [f"unexpected: {unexpected}"] * bool(unexpected)
        problems += [f"mis-shaped: {misshaped}"] * bool(misshaped)
        if not own:
            problems.append("the module has no LoRA adapters (call apply_lora first)")
        raise CheckpointError("LoRA state does not fit the module: " + "; ".join(problems))
    by_stable = {_stable_key(k): k for k in module.state_dict() if ".lora_" in k}
    full = {by_stable[k]: v for k, v in state.items()}
    result = module.load_state_dict(full, strict=False)
    assert not result.unexpected_keys, result.unexpected_keys


def merge_lora(module: nn.Module) -> nn.Module:
    """A plain copy of an adapted module: W + (alpha / r) B A folded into each Linear.

    Returns:
        A new module of the original class with the original state-dict keys (so `save_encoder` /
        `load_encoder` work) and every parameter trainable again; `module` is left unchanged.

    Raises:
        ConfigError: peft missing, or no adapters in `module`.
    """
    _peft()
    merged = copy.deepcopy(module)
    layers = [(n, m) for n, m in merged.named_modules() if _is_lora_layer(m)]
    if not layers:
        raise ConfigError(f"{type(module).__name__} has no LoRA adapters to merge")
    for name, layer in layers:
        layer.merge(safe_merge=True)  # raises on non-finite merged weights
        parent_name, _, child = name.rpartition(".")
        parent = merged.get_submodule(parent_name) if parent_name else merged
        setattr(parent, child, layer.get_base_layer())
    vars(merged).pop("peft_config", None)  # set by inject_adapter_in_model; a plain module has none
    for param in merged.parameters():
        param.requires_grad = True
    return merged
