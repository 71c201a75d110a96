"""Checkpoint import (fairseq / Hugging Face layouts, restricted unpickling) and asdlab's own format."""

from __future__ import annotations

import os
import pickle
import sys
import types
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from asdlab.encoders import create_encoder
from asdlab.encoders.checkpoints import (
    StubObject,
    check_converted,
    convert_fairseq_state,
    fairseq_key_shapes,
    hf_key_shapes,
    infer_eat_preset,
    load_eat_checkpoint,
    load_encoder,
    read_encoder_metadata,
    read_pickle_checkpoint,
    save_encoder,
)
from asdlab.encoders.eat import create_eat_decoder
from asdlab.encoders.layers import sincos_2d_table
from asdlab.errors import CheckpointError

PRESET, DIM = "eat-tiny", 192


def _random_state(shapes: dict[str, tuple[int, ...]], seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    state = {key: torch.randn(shape, generator=g) for key, shape in shapes.items()}
    for key in state:
        if key.endswith("positions"):
            state[key] = sincos_2d_table(DIM, 768, 8)[None]  # (1, 6144, D), what EAT stores
    return state


def _fake_fairseq_config():
    """An object of a class living in a fake `fairseq.dataclass.configs` module."""
    module = types.ModuleType("fairseq.dataclass.configs")

    class FairseqConfig:
        def __init__(self):
            self.model = {"_name": "data2vec_multi", "embed_dim": DIM}

    FairseqConfig.__module__ = module.__name__
    FairseqConfig.__qualname__ = "FairseqConfig"
    module.FairseqConfig = FairseqConfig
    return module, FairseqConfig()


def _save_with_fake_fairseq(obj_factory, path: Path) -> None:
    """torch.save a checkpoint whose cfg references fairseq, then forget the fake module."""
    names = ("fairseq", "fairseq.dataclass", "fairseq.dataclass.configs")
    module, config = _fake_fairseq_config()
    sys.modules.update({name: types.ModuleType(name) for name in names[:2]})
    sys.modules[names[2]] = module
    try:
        torch.save(obj_factory(config), path)
    finally:
        for name in names:
            sys.modules.pop(name, None)


@pytest.fixture(scope="module")
def fairseq_file(tmp_path_factory) -> tuple[Path, dict, dict]:
    student = _random_state(fairseq_key_shapes(PRESET), seed=1)
    teacher = _random_state(fairseq_key_shapes(PRESET, which="teacher"), seed=2)
    path = tmp_path_factory.mktemp("fairseq") / "EAT-tiny_pt.pt"
    _save_with_fake_fairseq(
        lambda cfg: {"cfg": cfg, "model": {**student, "_ema": teacher}, "extra_state": {"epoch": 3}}, path
    )
    return path, student, teacher


def test_fake_fairseq_module_is_really_gone(fairseq_file):
    assert "fairseq" not in sys.modules
    with pytest.raises(ModuleNotFoundError, match="fairseq"):  # a plain unpickler needs fairseq
        torch.load(fairseq_file[0], weights_only=False)


def test_restricted_reader_stubs_the_fairseq_config(fairseq_file):
    content = read_pickle_checkpoint(fairseq_file[0])
    assert isinstance(content["cfg"], StubObject)
    assert content["cfg"].stub_module == "fairseq.dataclass.configs"
    assert "fairseq" not in sys.modules
    assert content["extra_state"] == {"epoch": 3}


def test_plain_weights_only_load_refuses_fairseq_files(fairseq_file):
    with pytest.raises(pickle.UnpicklingError):
        torch.load(fairseq_file[0], weights_only=True)


def test_fairseq_student_loads_with_inferred_preset(fairseq_file):
    path, student, _ = fairseq_file
    encoder, report = load_eat_checkpoint(path)
    assert (report.preset, report.source, report.which) == (PRESET, "fairseq-pretrained", "student")
    assert report.position_rows == 6144 and report.position_max_abs_diff < 1e-6
    ours = encoder.state_dict()
    assert torch.equal(ours["patch_embed.weight"], student["modality_encoders.IMAGE.local_encoder.proj.weight"])
    assert torch.equal(ours["cls_token"], student["modality_encoders.IMAGE.extra_tokens"])
    assert torch.equal(ours["pre_norm.bias"], student["modality_encoders.IMAGE.context_encoder.norm.bias"])
    assert torch.equal(ours["blocks.3.mlp.fc2.weight"], student["blocks.3.mlp.fc2.weight"])
    decoder = create_eat_decoder(PRESET)
    decoder.load_state_dict(report.decoder_state, strict=True)
    assert torch.equal(decoder.blocks[1][0].weight, student["modality_encoders.IMAGE.decoder.blocks.1.0.weight"])
    assert not encoder.training


def test_fairseq_teacher_comes_from_ema(fairseq_file):
    path, _, teacher = fairseq_file
    encoder, report = load_eat_checkpoint(path, which="teacher", preset=PRESET)
    assert report.which == "teacher" and report.decoder_state is None
    assert torch.equal(encoder.state_dict()["blocks.0.attn.qkv.weight"], teacher["blocks.0.attn.qkv.weight"])


def test_fairseq_finetuned_layout(tmp_path):
    shapes = fairseq_key_shapes(PRESET, finetuned=True)
    state = _random_state(shapes, seed=3)
    state.update(
        {
            "fc_norm.weight": torch.ones(DIM),
            "fc_norm.bias": torch.zeros(DIM),
            "head.weight": torch.zeros(527, DIM),
            "head.bias": torch.zeros(527),
        }
    )
    state["model.blocks.0.norm1.weight"] = state["model.blocks.0.norm1.weight"].half()  # fp16 weights
    path = tmp_path / "finetuned.pt"
    torch.save({"cfg": None, "model": state}, path)
    encoder, report = load_eat_checkpoint(path)
    assert report.source == "fairseq-finetuned"
    assert set(report.ignored_keys) == {"fc_norm.weight", "fc_norm.bias", "head.weight", "head.bias"}
    assert encoder.blocks[0].norm1.weight.dtype == torch.float32
    torch.testing.assert_close(encoder.blocks[0].norm1.weight, state["model.blocks.0.norm1.weight"].float())
    with pytest.raises(CheckpointError, match="no teacher"):
        load_eat_checkpoint(path, which="teacher")


@pytest.mark.parametrize("file_name", ["model.safetensors", "pytorch_model.bin"])
def test_hugging_face_layouts(tmp_path, file_name):
    state = _random_state(hf_key_shapes(PRESET), seed=4)
    state["model.fc_norm.weight"] = torch.ones(DIM)
    state["model.head.weight"] = torch.zeros(10, DIM)
    path = tmp_path / file_name
    if file_name.endswith(".safetensors"):
        save_file(state, str(path))
    else:
        torch.save(state, path)
    encoder, report = load_eat_checkpoint(tmp_path)  # the snapshot folder
    assert report.source == "hf" and report.preset == PRESET
    assert report.ignored_keys == ("model.fc_norm.weight", "model.head.weight")
    assert torch.equal(encoder.pre_norm.weight, state["model.pre_norm.weight"])
    assert torch.equal(encoder.blocks[2].attn.proj.bias, state["model.blocks.2.attn.proj.bias"])


def _save_fairseq(tmp_path: Path, state: dict) -> Path:
    path = tmp_path / "broken.pt"
    torch.save({"model": state}, path)
    return path


def test_missing_key_is_named(tmp_path):
    state = _random_state(fairseq_key_shapes(PRESET), seed=5)
    del state["blocks.2.attn.qkv.bias"]
    with pytest.raises(CheckpointError, match=r"missing \(1\):\n    blocks\.2\.attn\.qkv\.bias \[576\]"):
        load_eat_checkpoint(_save_fairseq(tmp_path, state))


def test_misshaped_and_unexpected_keys_are_named(tmp_path):
    state = _random_state(fairseq_key_shapes(PRESET), seed=6)
    state["blocks.1.mlp.fc1.weight"] = torch.zeros(700, DIM)
    state["modality_encoders.IMAGE.alibi_scale"] = torch.zeros(1)
    with pytest.raises(CheckpointError) as error:
        load_eat_checkpoint(_save_fairseq(tmp_path, state))
    message = str(error.value)
    assert "blocks.1.mlp.fc1.weight: file [700, 192], model [768, 192]" in message
    assert "unexpected (1):\n    modality_encoders.IMAGE.alibi_scale" in message
    assert "missing" not in message


def test_unknown_size_asks_for_a_preset(tmp_path):
    state = _random_state(fairseq_key_shapes(PRESET), seed=7)
    state = {k: v for k, v in state.items() if not k.startswith("blocks.3.")}
    with pytest.raises(CheckpointError, match="no EAT preset has width 192 and 3 blocks"):
        load_eat_checkpoint(_save_fairseq(tmp_path, state))
    with pytest.raises(CheckpointError, match=r"missing \(12\)"):
        load_eat_checkpoint(_save_fairseq(tmp_path, state), preset=PRESET)


def test_older_512_row_table_and_a_differing_table_are_reported(tmp_path):
    state = _random_state(fairseq_key_shapes(PRESET), seed=8)
    key = "modality_encoders.IMAGE.fixed_positional_encoder.positions"
    state[key] = sincos_2d_table(DIM, 64, 8)[None] + 0.5  # (1, 512, D), shifted
    _, report = load_eat_checkpoint(_save_fairseq(tmp_path, state))
    assert report.position_rows == 512
    assert report.position_max_abs_diff == pytest.approx(0.5, abs=1e-5)


def test_eat_base_key_scheme_on_meta_tensors():
    shapes = fairseq_key_shapes("eat-base")
    state = {key: torch.empty(shape, device="meta") for key, shape in shapes.items()}
    converted = convert_fairseq_state(state)
    assert infer_eat_preset(converted) == "eat-base"
    check_converted(converted, "eat-base")
    state["modality_encoders.IMAGE.decoder.blocks.4.0.weight"] = torch.empty(768, 768, 3, 3, device="meta")
    expected = r"decoder\.blocks\.4\.0\.weight: file \[768, 768, 3, 3\], model \[768, 48, 3, 3\]"
    with pytest.raises(CheckpointError, match=expected):
        check_converted(convert_fairseq_state(state), "eat-base")


class _Exploit:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class _EvalExploit:
    def __reduce__(self):
        return eval, ("__import__('os').getcwd()",)


@pytest.mark.parametrize("make", [lambda m: _Exploit(m), lambda m: _EvalExploit()])
def test_malicious_pickle_is_refused(tmp_path, make):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"model": {}, "cfg": make(marker)}, path)
    with pytest.raises(CheckpointError, match="refusing to unpickle"):
        load_eat_checkpoint(path)
    assert not marker.exists()


def test_unknown_function_is_stubbed_not_imported(tmp_path):
    module = types.ModuleType("asdlab_test_evil_module")

    def run(arg):  # would run on a plain unpickler
        raise AssertionError("executed")

    run.__module__, run.__qualname__ = module.__name__, "run"
    module.run = run

    class Payload:
        def __reduce__(self):
            return run, ("rm -rf /",)

    sys.modules[module.__name__] = module
    try:
        torch.save({"x": Payload()}, tmp_path / "stub.pt")
    finally:
        del sys.modules[module.__name__]
    loaded = read_pickle_checkpoint(tmp_path / "stub.pt")
    assert isinstance(loaded["x"], StubObject) and loaded["x"].stub_args == ("rm -rf /",)
    assert module.__name__ not in sys.modules


def test_not_an_eat_file(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"weight": torch.zeros(3)}, path)
    with pytest.raises(CheckpointError, match="not an EAT checkpoint"):
        load_eat_checkpoint(path)
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_eat_checkpoint(tmp_path / "absent.pt")


def test_save_and_load_round_trip(tmp_path):
    torch.manual_seed(9)
    encoder = create_encoder(PRESET).eval()
    path = tmp_path / "enc" / "tiny.safetensors"
    save_encoder(encoder, path, preset=PRESET, source="unit-test")
    assert sorted(p.name for p in path.parent.iterdir()) == ["tiny.safetensors"]  # no temp file left
    expected = {"format": "asdlab-encoder", "version": 1, "preset": PRESET, "source": "unit-test"}
    assert read_encoder_metadata(path) == expected
    loaded = load_encoder(path)
    x = encoder.example_input(2)
    assert torch.equal(loaded(x), encoder(x)) and not loaded.training


def test_load_encoder_rejects_foreign_or_mismatched_files(tmp_path):
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(CheckpointError, match="not an asdlab encoder file"):
        load_encoder(foreign)
    mismatched = tmp_path / "mismatched.safetensors"
    save_encoder(create_encoder(PRESET), mismatched, preset="eat-small")
    with pytest.raises(CheckpointError, match=r"do not fit preset eat-small:(.|\n)*mis-shaped"):
        load_encoder(mismatched)
