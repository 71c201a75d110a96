"""BEATs checkpoint import on files built with the official key names and shapes (microsoft/unilm `beats/`):
iter3 and iter3+ layouts load strictly, wrong files fail naming the key, code-executing pickles are refused."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from asdlab.encoders import build_backbone, create_encoder, load_beats_checkpoint
from asdlab.encoders.beats_checkpoint import beats_key_shapes, check_beats_cfg, convert_beats_state
from asdlab.encoders.checkpoints import load_encoder_weights
from asdlab.errors import CheckpointError

# The `cfg` stored in BEATs_iter3.pt / BEATs_iter3_plus_*.pt (the released BEATsConfig values).
ITER3_CFG = {
    "encoder_layers": 12, "encoder_embed_dim": 768, "encoder_ffn_embed_dim": 3072, "encoder_attention_heads": 12,
    "activation_fn": "gelu", "dropout": 0.0, "attention_dropout": 0.0, "activation_dropout": 0.0,
    "encoder_layerdrop": 0.05, "dropout_input": 0.0, "layer_norm_first": False, "conv_bias": False,
    "conv_pos": 128, "conv_pos_groups": 16, "relative_position_embedding": True, "num_buckets": 320,
    "max_distance": 800, "gru_rel_pos": True, "deep_norm": True, "input_patch_size": 16,
    "layer_wise_gradient_decay_ratio": 0.6, "embed_dim": 512,
}
# beats-tiny: the same architecture at tiny widths (what the synthetic files below are built for)
TINY_CFG = {**ITER3_CFG, "encoder_layers": 4, "encoder_embed_dim": 192, "encoder_ffn_embed_dim": 768,
            "encoder_attention_heads": 3, "embed_dim": 128}


def _state(preset: str, *, seed: int, finetuned: bool = False) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    state = {k: torch.randn(s, generator=g) for k, s in beats_key_shapes(preset, finetuned=finetuned).items()}
    shared = state["encoder.layers.0.self_attn.relative_attention_bias.weight"]
    for key in state:
        if key.endswith("relative_attention_bias.weight"):
            state[key] = shared.clone()  # equal copies, as a tied module saves them
    return state


@pytest.fixture(scope="module")
def releases(tmp_path_factory) -> dict[str, tuple[Path, dict]]:
    """Tiny stand-ins for BEATs_iter3.pt, BEATs_iter3_plus_AS2M.pt and the AS2M fine-tuned iter3+ file."""
    folder = tmp_path_factory.mktemp("beats")
    files = {}
    for name, seed, finetuned in (("iter3", 1, False), ("iter3_plus_AS2M", 2, False),
                                  ("iter3_plus_AS2M_finetuned_on_AS2M_cpt2", 3, True)):
        state = _state("beats-tiny", seed=seed, finetuned=finetuned)
        content = {"cfg": {**TINY_CFG, "finetuned_model": finetuned}, "model": state}
        if finetuned:
            content["label_dict"] = {i: f"/m/{i:04d}" for i in range(527)}
        path = folder / f"BEATs_{name}.pt"
        torch.save(content, path)
        files[name] = (path, state)
    return files


@pytest.mark.parametrize("name", ["iter3", "iter3_plus_AS2M", "iter3_plus_AS2M_finetuned_on_AS2M_cpt2"])
def test_official_layouts_load_strictly(releases, name):
    path, state = releases[name]
    encoder, report = load_beats_checkpoint(path)
    assert report.preset == "beats-tiny" and not encoder.training
    assert report.finetuned == name.endswith("cpt2")
    assert report.ignored_keys == (("predictor.weight", "predictor.bias") if report.finetuned else ())
    ours = encoder.state_dict()
    assert torch.equal(ours["patch_embed.weight"], state["patch_embedding.weight"])
    assert torch.equal(ours["patch_norm.bias"], state["layer_norm.bias"])
    assert torch.equal(ours["pre_norm.weight"], state["encoder.layer_norm.weight"])
    assert torch.equal(ours["pos_conv.weight_v"], state["encoder.pos_conv.0.weight_v"])
    assert torch.equal(ours["rel_pos_bias.weight"], state["encoder.layers.3.self_attn.relative_attention_bias.weight"])
    qkv = ours["blocks.2.attn.qkv.weight"]
    assert torch.equal(qkv[192:384], state["encoder.layers.2.self_attn.k_proj.weight"])
    assert torch.equal(ours["blocks.2.attn.gate_scale"], state["encoder.layers.2.self_attn.grep_a"])
    assert torch.equal(ours["blocks.1.mlp.fc2.bias"], state["encoder.layers.1.fc2.bias"])
    assert torch.equal(ours["blocks.0.norm2.weight"], state["encoder.layers.0.final_layer_norm.weight"])


def test_base_layout_maps_onto_beats_base():
    meta = {k: torch.empty(s, device="meta") for k, s in beats_key_shapes("beats-base").items()}
    ours, _ = convert_beats_state(meta, "beats-base")
    with torch.device("meta"):
        model = create_encoder("beats-base")
    assert {k: tuple(v.shape) for k, v in ours.items()} == {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert check_beats_cfg(ITER3_CFG, "beats-base") == []


def test_every_released_front_door_reads_it(releases):
    path, _ = releases["iter3"]
    encoder, source = load_encoder_weights(path, "beats-tiny", drop_path=0.1)
    assert source == "beats" and encoder.blocks[-1].drop_path.p == pytest.approx(0.1)
    backbone = build_backbone("beats-tiny", weights=path)
    assert backbone.kind == "transformer" and backbone.pooling == "mean"
    with torch.no_grad():
        assert backbone(torch.randn(2, 8000)).shape == (2, 192)


def _save(path: Path, state: dict, cfg: dict | None = None) -> Path:
    torch.save({"cfg": cfg if cfg is not None else dict(TINY_CFG), "model": state}, path)
    return path


def test_wrong_shape_missing_and_unexpected_keys_are_named(tmp_path):
    state = _state("beats-tiny", seed=4)
    state["encoder.layers.1.fc1.weight"] = torch.zeros(700, 192)
    del state["encoder.layers.3.self_attn.grep_a"]
    state["encoder.extra_token"] = torch.zeros(3)
    with pytest.raises(CheckpointError) as caught:
        load_beats_checkpoint(_save(tmp_path / "bad.pt", state), preset="beats-tiny")
    message = str(caught.value)
    assert "BEATs weights do not fit beats-tiny" in message
    assert "encoder.layers.1.fc1.weight: file [700, 192], model [768, 192]" in message
    assert "missing (1):\n    encoder.layers.3.self_attn.grep_a [1, 3, 1, 1]" in message
    assert "unexpected (1):\n    encoder.extra_token [3]" in message


def test_another_architecture_in_cfg_is_refused(tmp_path):
    path = _save(tmp_path / "iter1.pt", _state("beats-tiny", seed=5), {**TINY_CFG, "deep_norm": False})
    with pytest.raises(CheckpointError, match=r"architecture is not beats-tiny:\n  cfg deep_norm: file False"):
        load_beats_checkpoint(path)
    cfg = {k: v for k, v in TINY_CFG.items() if k != "max_distance"}  # absent: upstream's default, 1280
    with pytest.raises(CheckpointError, match=r"cfg max_distance: file 1280 \(absent: upstream default\)"):
        load_beats_checkpoint(_save(tmp_path / "nodist.pt", _state("beats-tiny", seed=5), cfg))
    other = {"post_extract_proj.weight": torch.zeros(256, 128), "encoder.layers.5.fc1.weight": torch.zeros(1)}
    with pytest.raises(CheckpointError, match="no BEATs preset has width 256 and 6 layers"):
        load_beats_checkpoint(_save(tmp_path / "wide.pt", other, {}))


def test_unequal_relative_bias_copies_are_refused(tmp_path):
    state = _state("beats-tiny", seed=6)
    state["encoder.layers.2.self_attn.relative_attention_bias.weight"] += 1.0
    with pytest.raises(CheckpointError, match=r"layers\.2\.self_attn\.relative_attention_bias\.weight differs"):
        load_beats_checkpoint(_save(tmp_path / "untied.pt", state))


def test_parametrized_weight_norm_names_are_read(tmp_path):
    state = _state("beats-tiny", seed=7)
    g = state.pop("encoder.pos_conv.0.weight_g")
    v = state.pop("encoder.pos_conv.0.weight_v")
    state["encoder.pos_conv.0.parametrizations.weight.original0"] = g
    state["encoder.pos_conv.0.parametrizations.weight.original1"] = v
    encoder, _ = load_beats_checkpoint(_save(tmp_path / "modern.pt", state))
    assert torch.equal(encoder.pos_conv.weight_g, g) and torch.equal(encoder.pos_conv.weight_v, v)


class _Exploit:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_code_executing_pickle_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "BEATs_evil.pt"
    torch.save({"cfg": dict(TINY_CFG), "model": _state("beats-tiny", seed=8), "label_dict": _Exploit(marker)}, path)
    with pytest.raises(CheckpointError, match="refusing to unpickle posix.system|refusing to unpickle os.system"):
        load_beats_checkpoint(path)
    assert not marker.exists()
