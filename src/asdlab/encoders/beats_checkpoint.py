"""Released BEATs checkpoints (microsoft/unilm `beats/`) -> `BEATsEncoder`, without the BEATs source.

A release is a torch pickle {"cfg": dict, "model": state dict[, "label_dict": ...]} read by the restricted
unpickler. The `cfg`'s architecture fields must match the preset (missing ones take upstream
`BEATsConfig` defaults); every file key and shape is checked against the official layout before mapping,
and a mismatch raises `CheckpointError` listing missing, unexpected and mis-shaped keys as the file spells
them. The AudioSet classifier of fine-tuned files (`predictor.*`) is reported and ignored. Mapping:
q / k / v projections are fused into our `qkv`; the relative-bias table stored once per layer (one shared
module upstream) becomes one table, and its copies must be equal.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import Tensor

from asdlab.encoders._key_report import compare_shapes, problems_message
from asdlab.encoders._restricted_pickle import read_pickle_checkpoint
from asdlab.encoders.beats import BEATS_PRESETS, BEATsEncoder
from asdlab.encoders.registry import create_encoder
from asdlab.errors import CheckpointError

__all__ = [
    "BEATS_CFG_DEFAULTS",
    "beats_key_shapes",
    "check_beats_cfg",
    "infer_beats_preset",
    "convert_beats_state",
    "BEATsCheckpointReport",
    "load_beats_checkpoint",
]

logger = logging.getLogger(__name__)

# `BEATsConfig` defaults of the fields that change the computation: a cfg without a field means this value.
BEATS_CFG_DEFAULTS: dict[str, Any] = {
    "input_patch_size": -1, "embed_dim": 512, "conv_bias": False, "encoder_layers": 12,
    "encoder_embed_dim": 768, "encoder_ffn_embed_dim": 3072, "encoder_attention_heads": 12,
    "activation_fn": "gelu", "layer_norm_first": False, "deep_norm": False, "conv_pos": 128,
    "conv_pos_groups": 16, "relative_position_embedding": False, "num_buckets": 320, "max_distance": 1280,
    "gru_rel_pos": False,
}
_PREDICTOR = "predictor."  # AudioSet classifier of the fine-tuned files (527 classes)
_LAYER = re.compile(r"^encoder\.layers\.(\d+)\.(.+)$")


def _expected_cfg(preset: str) -> dict[str, Any]:
    p = BEATS_PRESETS[preset]
    return {
        "input_patch_size": BEATsEncoder.patch_size, "embed_dim": p.patch_dim, "conv_bias": False,
        "encoder_layers": p.depth, "encoder_embed_dim": p.embed_dim, "encoder_ffn_embed_dim": 4 * p.embed_dim,
        "encoder_attention_heads": p.num_heads, "activation_fn": "gelu", "layer_norm_first": False,
        "deep_norm": True, "conv_pos": p.conv_pos, "conv_pos_groups": p.conv_pos_groups,
        "relative_position_embedding": True, "num_buckets": p.num_buckets, "max_distance": p.max_distance,
        "gru_rel_pos": True,
    }


def beats_key_shapes(preset: str = "beats-base", *, finetuned: bool = False,
                     num_classes: int = 527) -> dict[str, tuple[int, ...]]:
    """The official file keys and shapes of a BEATs checkpoint for `preset` (fine-tuned: with `predictor`)."""
    p = BEATS_PRESETS[preset]
    D, P, H, K = p.embed_dim, p.patch_dim, p.num_heads, p.conv_pos
    keys: dict[str, tuple[int, ...]] = {
        "patch_embedding.weight": (P, 1, 16, 16),
        "layer_norm.weight": (P,), "layer_norm.bias": (P,),
        "post_extract_proj.weight": (D, P), "post_extract_proj.bias": (D,),
        "encoder.pos_conv.0.weight_g": (1, 1, K), "encoder.pos_conv.0.weight_v": (D, D // p.conv_pos_groups, K),
        "encoder.pos_conv.0.bias": (D,),
        "encoder.layer_norm.weight": (D,), "encoder.layer_norm.bias": (D,),
    }
    for i in range(p.depth):
        layer = f"encoder.layers.{i}."
        for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
            keys[f"{layer}self_attn.{name}.weight"] = (D, D)
            keys[f"{layer}self_attn.{name}.bias"] = (D,)
        keys[f"{layer}self_attn.relative_attention_bias.weight"] = (p.num_buckets, H)
        keys[f"{layer}self_attn.grep_linear.weight"] = (8, D // H)
        keys[f"{layer}self_attn.grep_linear.bias"] = (8,)
        keys[f"{layer}self_attn.grep_a"] = (1, H, 1, 1)
        keys[f"{layer}fc1.weight"], keys[f"{layer}fc1.bias"] = (4 * D, D), (4 * D,)
        keys[f"{layer}fc2.weight"], keys[f"{layer}fc2.bias"] = (D, 4 * D), (D,)
        for norm in ("self_attn_layer_norm", "final_layer_norm"):
            keys[f"{layer}{norm}.weight"], keys[f"{layer}{norm}.bias"] = (D,), (D,)
    if finetuned:
        keys[_PREDICTOR + "weight"], keys[_PREDICTOR + "bias"] = (num_classes, D), (num_classes,)
    return keys


def check_beats_cfg(cfg: Mapping[str, Any], preset: str) -> list[str]:
    """Lines naming each architecture field of a checkpoint's `cfg` that differs from `preset` (empty: fits)."""
    expected = _expected_cfg(preset)
    problems = []
    for key, want in expected.items():
        got = cfg.get(key, BEATS_CFG_DEFAULTS[key])
        if got != want:
            source = "" if key in cfg else " (absent: upstream default)"
            problems.append(f"cfg {key}: file {got!r}{source}, {preset} {want!r}")
    return problems


def infer_beats_preset(state: Mapping[str, Tensor], cfg: Mapping[str, Any] | None = None) -> str:
    """The BEATs preset with the checkpoint's width and depth.

    Raises:
        CheckpointError: no projection to read the width from, or no preset matches.
    """
    proj = state.get("post_extract_proj.weight")
    if proj is None:
        raise CheckpointError("cannot infer the BEATs preset: missing post_extract_proj.weight")
    width = int(proj.shape[0])
    depth = 1 + max((int(m.group(1)) for k in state if (m := _LAYER.match(k))), default=-1)
    for name, p in BEATS_PRESETS.items():
        if (p.embed_dim, p.depth) == (width, depth):
            return name
    known = ", ".join(f"{n} ({p.embed_dim}/{p.depth})" for n, p in BEATS_PRESETS.items())
    raise CheckpointError(f"no BEATs preset has width {width} and {depth} layers; known: {known}")


def _our_key(key: str) -> str | None:
    """Our name of a file key; None for keys merged elsewhere (q/k/v, relative bias)."""
    direct = {
        "patch_embedding.weight": "patch_embed.weight",
        "layer_norm.weight": "patch_norm.weight", "layer_norm.bias": "patch_norm.bias",
        "post_extract_proj.weight": "patch_proj.weight", "post_extract_proj.bias": "patch_proj.bias",
        "encoder.pos_conv.0.weight_g": "pos_conv.weight_g", "encoder.pos_conv.0.weight_v": "pos_conv.weight_v",
        "encoder.pos_conv.0.bias": "pos_conv.bias",
        "encoder.layer_norm.weight": "pre_norm.weight", "encoder.layer_norm.bias": "pre_norm.bias",
    }
    if key in direct:
        return direct[key]
    match = _LAYER.match(key)
    if match is None:
        return None
    i, rest = match.groups()
    renames = {"self_attn.out_proj.": "attn.proj.", "self_attn.grep_linear.": "attn.gate.",
               "self_attn.grep_a": "attn.gate_scale", "self_attn_layer_norm.": "norm1.", "fc1.": "mlp.fc1.",
               "fc2.": "mlp.fc2.", "final_layer_norm.": "norm2."}
    for source, ours in renames.items():
        if rest.startswith(source):
            return f"blocks.{i}.{ours}{rest[len(source):]}"
    return None


def _modern_weight_norm(state: Mapping[str, Any]) -> dict[str, Any]:
    """Files saved with torch's newer parametrized weight norm spell g / v `parametrizations.weight.original0/1`."""
    prefix = "encoder.pos_conv.0.parametrizations.weight."
    renamed = {"original0": "encoder.pos_conv.0.weight_g", "original1": "encoder.pos_conv.0.weight_v"}
    return {renamed.get(k[len(prefix):], k) if k.startswith(prefix) else k: v for k, v in state.items()}


def convert_beats_state(
    state: Mapping[str, Any], preset: str, *, path: str | os.PathLike = "checkpoint"
) -> tuple[dict[str, Tensor], tuple[str, ...]]:
    """Check a BEATs `model` state dict against the official layout of `preset` and map it to our keys.

    Returns:
        (our state dict, file keys deliberately ignored: the fine-tuned classifier).

    Raises:
        CheckpointError: missing, unexpected or mis-shaped keys (file names), or unequal copies of the
            shared relative-bias table.
    """
    state = _modern_weight_norm(state)
    tensors = {k: v for k, v in state.items() if isinstance(v, Tensor)}
    ignored = tuple(k for k in tensors if k.startswith(_PREDICTOR))
    expected = beats_key_shapes(preset)
    provided = {k: v for k, v in tensors.items() if not k.startswith(_PREDICTOR)}
    missing, unexpected, misshaped = compare_shapes(expected, provided, str)
    unexpected = [f"{k} ({type(v).__name__})" for k, v in state.items() if not isinstance(v, Tensor)] + unexpected
    if missing or unexpected or misshaped:
        raise CheckpointError(problems_message(f"{path}: BEATs weights do not fit {preset}:",
                                               missing, unexpected, misshaped))
    depth = BEATS_PRESETS[preset].depth
    table = provided["encoder.layers.0.self_attn.relative_attention_bias.weight"]
    for i in range(1, depth):
        key = f"encoder.layers.{i}.self_attn.relative_attention_bias.weight"
        if table.device.type != "meta" and not torch.equal(provided[key], table):
            raise CheckpointError(f"{path}: {key} differs from layer 0's; BEATs shares one relative-bias table")
    ours: dict[str, Tensor] = {"rel_pos_bias.weight": table}
    for key, value in provided.items():
        if (name := _our_key(key)) is not None:
            ours[name] = value
    for i in range(depth):
        attn = f"encoder.layers.{i}.self_attn."
        for part in ("weight", "bias"):  # (3 D, ...) rows q, k, v: the order our attention splits them in
            ours[f"blocks.{i}.attn.qkv.{part}"] = torch.cat([provided[f"{attn}{n}_proj.{part}"] for n in "qkv"])
    return ours, ignored


@dataclass(frozen=True, eq=False)
class BEATsCheckpointReport:
    """What `load_beats_checkpoint` found.

    Attributes:
        path: the file read.
        preset: the BEATs preset built.
        finetuned: the file carries the AudioSet classifier (ignored).
        dtype: dtype of the stored weights (converted to the model's float32).
        ignored_keys: file keys deliberately skipped.
        cfg: the file's `cfg` (empty when it has none).
    """

    path: str
    preset: str
    finetuned: bool
    dtype: str
    ignored_keys: tuple[str, ...]
    cfg: dict[str, Any] = field(default_factory=dict, repr=False)


def _read(path: Path) -> tuple[Mapping[str, Any], dict[str, Any]]:
    """(model state, cfg) of a release (or of a bare state dict / safetensors file, cfg empty)."""
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if path.suffix == ".safetensors":
        try:
            return load_file(path, device="cpu"), {}
        except Exception as error:  # safetensors raises its own error types
            raise CheckpointError(f"{path}: cannot read safetensors file: {error}") from error
    content = read_pickle_checkpoint(path)
    if not isinstance(content, Mapping):
        raise CheckpointError(f"{path}: expected a dict, found {type(content).__name__}")
    if "model" in content:
        state, cfg = content["model"], content.get("cfg") or {}
        if not isinstance(state, Mapping):
            raise CheckpointError(f"{path}: 'model' is a {type(state).__name__}, not a state dict")
        if not isinstance(cfg, Mapping):
            raise CheckpointError(f"{path}: 'cfg' is a {type(cfg).__name__}, not BEATs' plain dict")
        return state, dict(cfg)
    return content, {}


def load_beats_checkpoint(
    path: str | os.PathLike, *, preset: str | None = None
) -> tuple[BEATsEncoder, BEATsCheckpointReport]:
    """Build a `BEATsEncoder` from a released BEATs file (`BEATs_iter3.pt`, `BEATs_iter3_plus_AS2M.pt`, ...).

    Args:
        path: the checkpoint.
        preset: BEATs preset to build; inferred from the weights when None.

    Returns:
        (encoder in eval mode on the CPU, report).

    Raises:
        CheckpointError: unreadable file, a `cfg` with another architecture, or keys that do not fit.
    """
    path = Path(path)
    state, cfg = _read(path)
    if preset is None:
        try:
            preset = infer_beats_preset(state)
        except CheckpointError as error:
            raise CheckpointError(f"{path}: {error}") from None
    if preset not in BEATS_PRESETS:
        raise CheckpointError(f"{preset!r} is not a BEATs preset; choose one of {', '.join(BEATS_PRESETS)}")
    if cfg and (problems := check_beats_cfg(cfg, preset)):
        raise CheckpointError(f"{path}: the checkpoint's architecture is not {preset}:\n  " + "\n  ".join(problems))
    ours, ignored = convert_beats_state(state, preset, path=path)
    encoder = create_encoder(preset)
    encoder.load_state_dict(ours, strict=True)  # copy_ casts half-precision weights to float32
    report = BEATsCheckpointReport(
        path=str(path), preset=preset, finetuned=bool(ignored) or bool(cfg.get("finetuned_model", False)),
        dtype=str(ours["patch_embed.weight"].dtype).removeprefix("torch."), ignored_keys=ignored, cfg=cfg,
    )
    if ignored:
        logger.info("%s: ignored the AudioSet classifier (%s)", path, ", ".join(ignored))
    return encoder.eval(), report
