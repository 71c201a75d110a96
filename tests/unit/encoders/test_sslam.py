"""SSLAM is a preset of the EAT import: its released files (ta012/SSLAM: EAT's `Data2VecMultiModel`, image
modality, `_ema` teacher and 6-layer decoder) load strictly as `sslam-base`."""

from __future__ import annotations

import pytest
import torch

from asdlab.encoders import build_backbone
from asdlab.encoders.checkpoints import check_converted, convert_fairseq_state, fairseq_key_shapes, hf_key_shapes
from asdlab.encoders.eat import EAT_PRESETS, EATEncoder
from asdlab.errors import CheckpointError


def _meta(shapes: dict) -> dict[str, torch.Tensor]:
    return {key: torch.empty(shape, device="meta") for key, shape in shapes.items()}


def test_sslam_is_eat_base_sized():
    assert EAT_PRESETS["sslam-base"] == EAT_PRESETS["eat-base"]
    assert fairseq_key_shapes("sslam-base") == fairseq_key_shapes("eat-base")
    assert hf_key_shapes("sslam-base") == hf_key_shapes("eat-base")
    backbone = build_backbone("sslam-base", device="meta")
    assert isinstance(backbone.encoder, EATEncoder) and backbone.embed_dim == 768


@pytest.mark.parametrize("which", ["student", "teacher"])
def test_pretrained_layout_with_teacher_and_decoder_fits(which):
    student = _meta(fairseq_key_shapes("sslam-base"))
    teacher = _meta(fairseq_key_shapes("sslam-base", which="teacher"))
    converted = convert_fairseq_state({**student, "_ema": teacher}, which=which)
    assert check_converted(converted, "sslam-base") is None  # meta tensors: shapes checked, no table values
    assert (converted.decoder is not None) == (which == "student")


def test_fine_tuned_layout_fits_and_a_wrong_shape_is_named():
    state = _meta(fairseq_key_shapes("sslam-base", finetuned=True))
    state["fc_norm.weight"] = torch.empty(768, device="meta")
    state["head.weight"] = torch.empty(527, 768, device="meta")  # AS2M classifier, ignored
    converted = convert_fairseq_state(state)
    check_converted(converted, "sslam-base")
    assert converted.ignored == ("fc_norm.weight", "head.weight")
    state["model.blocks.7.attn.qkv.weight"] = torch.empty(768, 768, device="meta")
    with pytest.raises(CheckpointError, match=r"model\.blocks\.7\.attn\.qkv\.weight: file \[768, 768\], model \[2304, 768\]"):
        check_converted(convert_fairseq_state(state), "sslam-base")
