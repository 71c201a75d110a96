"""A released BEATs file through every command an EAT file goes through: `asdlab embed --weights`, `pretrain
--init` (continued teacher-student pre-training), `finetune --init` (LoRA here) and `embed --model`."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from asdlab.cli import main as cli_main
from asdlab.data.synth import generate_dataset
from asdlab.embeddings.table import EmbeddingTable
from asdlab.encoders.beats_checkpoint import beats_key_shapes
from asdlab.encoders.checkpoints import read_encoder_metadata

TINY_CFG = {"encoder_layers": 4, "encoder_embed_dim": 192, "encoder_ffn_embed_dim": 768,
            "encoder_attention_heads": 3, "embed_dim": 128, "input_patch_size": 16, "conv_pos": 128,
            "conv_pos_groups": 16, "relative_position_embedding": True, "num_buckets": 320, "max_distance": 800,
            "gru_rel_pos": True, "deep_norm": True, "layer_norm_first": False, "conv_bias": False}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    generate_dataset(root, machines=2, train_source=4, train_target=2, test_per_group=1, duration_s=1.0, seed=2,
                     overwrite=True)
    return root


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """A tiny BEATs release in the official layout (`cfg` + `model`, the bias table stored per layer)."""
    g = torch.Generator().manual_seed(0)
    state = {k: 0.05 * torch.randn(s, generator=g) for k, s in beats_key_shapes("beats-tiny").items()}
    for key in state:
        if key.endswith("relative_attention_bias.weight"):
            state[key] = state["encoder.layers.0.self_attn.relative_attention_bias.weight"]
        elif key.endswith(("norm.weight", "grep_a")):
            state[key] = torch.ones_like(state[key])
    path = tmp_path_factory.mktemp("release") / "BEATs_tiny.pt"
    torch.save({"cfg": TINY_CFG, "model": state}, path)
    return path


def test_release_through_embed_pretrain_finetune_embed(dataset, release, tmp_path):
    pytest.importorskip("peft")
    general = tmp_path / "general.npz"
    assert cli_main.main(["embed", str(dataset), "--backbone", "beats-tiny", "--weights", str(release),
                          "--target-frames", "all", "--out", str(general)]) == 0
    table = EmbeddingTable.load(general)
    assert table.embeddings.shape[1] == 192 and np.isfinite(table.embeddings).all()

    tats = tmp_path / "tats"
    assert cli_main.main(["pretrain", str(dataset), "--out", str(tats), "--preset", "beats-tiny", "--init", str(release),
                          "--steps", "2", "--batch-size", "4", "--clones", "2", "--warmup", "1",
                          "--accelerator", "cpu"]) == 0
    assert read_encoder_metadata(tats / "encoder.safetensors")["preset"] == "beats-tiny"

    model = tmp_path / "ft"
    assert cli_main.main(["finetune", str(dataset), "--out", str(model), "--recipe", "eat", "--preset", "beats-tiny",
                          "--init", str(tats / "encoder.safetensors"), "--mode", "lora", "--pooling", "asp",
                          "--steps", "2", "--batch-size", "4", "--warmup", "1", "--accelerator", "cpu"]) == 0
    adapted = tmp_path / "adapted.npz"
    assert cli_main.main(["embed", str(dataset), "--model", str(model), "--out", str(adapted)]) == 0
    assert EmbeddingTable.load(adapted).embeddings.shape[1] == 256  # the projection
