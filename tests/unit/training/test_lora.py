import pytest
import torch

pytest.importorskip("peft", reason="peft (asdlab[lora]) is not installed")

from asdlab.encoders.checkpoints import load_encoder, save_encoder  # noqa: E402
from asdlab.encoders.eat import EATEncoder, eat_tiny  # noqa: E402
from asdlab.errors import CheckpointError, ConfigError  # noqa: E402
from asdlab.training.lora import apply_lora, load_lora_state, lora_parameters, lora_state_dict, merge_lora  # noqa: E402

DEPTH = 4  # eat-tiny


def _encoder(seed=0):
    torch.manual_seed(seed)  # encoder init has no generator argument; tests may seed
    return eat_tiny()


def _adapted(**kwargs):
    encoder = apply_lora(_encoder(), **kwargs)
    with torch.no_grad():  # B starts at zero; make the adapters matter
        for name, p in encoder.named_parameters():
            if "lora_B" in name:
                p.normal_(0.0, 0.05, generator=torch.Generator().manual_seed(len(name)))
    return encoder


def test_only_adapters_require_grad():
    encoder = apply_lora(_encoder(), rank=4)
    trainable = [n for n, p in encoder.named_parameters() if p.requires_grad]
    assert trainable and all(".lora_A." in n or ".lora_B." in n for n in trainable)
    assert len(trainable) == DEPTH * 2 * 2  # qkv and proj, A and B
    trainable_ids = {id(p) for p in encoder.parameters() if p.requires_grad}
    assert {id(p) for p in lora_parameters(encoder)} == trainable_ids
    assert isinstance(encoder, EATEncoder)
    with_mlp = apply_lora(_encoder(), rank=4, include_mlp=True)
    assert len(lora_parameters(with_mlp)) == DEPTH * 4 * 2


def test_new_adapters_do_not_change_the_output():
    plain = _encoder()
    x = plain.example_input(2, num_frames=32, generator=torch.Generator().manual_seed(0))
    expected = plain.eval()(x)
    torch.testing.assert_close(apply_lora(_encoder()).eval()(x), expected)


def test_one_optimiser_step_changes_only_adapters():
    encoder = apply_lora(_encoder(), rank=4)
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    opt = torch.optim.SGD(encoder.parameters(), lr=0.1)
    x = encoder.example_input(2, num_frames=32, generator=torch.Generator().manual_seed(1))
    encoder.train()(x).square().mean().backward()
    opt.step()
    after = encoder.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(".lora_" in k for k in changed)
    assert any("lora_B" in k for k in changed)


def test_merge_gives_the_same_outputs_and_original_keys(tmp_path):
    encoder = _adapted(rank=4, include_mlp=True)
    x = encoder.example_input(2, num_frames=48, generator=torch.Generator().manual_seed(2))
    adapted_out = encoder.eval().forward_features(x)
    merged = merge_lora(encoder)
    assert type(merged) is EATEncoder
    assert list(merged.state_dict()) == list(_encoder().state_dict())
    merged_out = merged.eval().forward_features(x)
    torch.testing.assert_close(merged_out.cls, adapted_out.cls, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(merged_out.patches, adapted_out.patches, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(merged_out.cls, _encoder().eval()(x), atol=1e-3)  # the adapters mattered
    assert all(p.requires_grad for p in merged.parameters())
    assert lora_parameters(encoder)  # the adapted module is left as it was
    path = tmp_path / "merged.safetensors"
    save_encoder(merged, path, preset="eat-tiny", source="lora-test")
    torch.testing.assert_close(load_encoder(path)(x), adapted_out.cls, atol=1e-5, rtol=1e-5)


def test_lora_state_dict_round_trip():
    encoder = _adapted(rank=4)
    state = lora_state_dict(encoder)
    assert set(state) == {
        f"blocks.{i}.attn.{layer}.lora_{ab}.weight" for i in range(DEPTH) for layer in ("qkv", "proj") for ab in "AB"
    }
    fresh = apply_lora(_encoder(), rank=4)
    load_lora_state(fresh, state)
    x = encoder.example_input(1, num_frames=32, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(fresh.eval()(x), encoder.eval()(x))
    with pytest.raises(CheckpointError, match="mis-shaped"):
        load_lora_state(apply_lora(_encoder(), rank=2), state)
    with pytest.raises(CheckpointError, match="missing"):
        load_lora_state(apply_lora(_encoder(), rank=4, include_mlp=True), state)


def test_bad_configuration_raises_config_error():
    with pytest.raises(ConfigError, match="matches no nn.Linear"):
        apply_lora(_encoder(), targets=("attn.nothing",))
    with pytest.raises(ConfigError, match="already has LoRA"):
        apply_lora(apply_lora(_encoder()))
    with pytest.raises(ConfigError, match="no LoRA adapters"):
        merge_lora(_encoder())


def test_missing_peft_names_the_extra(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_peft(name, *args, **kwargs):
        if name == "peft" or name.startswith("peft."):
            raise ImportError("No module named 'peft'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_peft)
    with pytest.raises(ConfigError, match=r"pip install 'asdlab\[lora\]'"):
        apply_lora(_encoder())
