"""Every registered encoder, generically (STYLE.md "Tests"): tiny input, output shape, no NaN,
a gradient for every trainable parameter, a state-dict and file round trip.

Contract for encoder classes: `example_input(batch, *, generator=None) -> Tensor`, a small valid
input on the module's device. Presets too big for CPU unit tests (by parameter count, measured on
the meta device) are only constructed there.
"""

from __future__ import annotations

import pytest
import torch

from asdlab.encoders import create_encoder, list_encoders
from asdlab.encoders.checkpoints import load_encoder, save_encoder

MAX_PARAMETERS = 30_000_000  # eat-small (22 M) runs; eat-base / eat-large are shape-checked only
BATCH = 2


def _cheap_instance(name: str) -> torch.nn.Module:
    """The preset built on the meta device (no memory, no init cost), or for real if it cannot be."""
    try:
        with torch.device("meta"):
            return create_encoder(name)
    except Exception:  # e.g. a front end that inspects tensor values while building
        return create_encoder(name)


def _parameter_count(name: str) -> int:
    return sum(p.numel() for p in _cheap_instance(name).parameters())


@pytest.fixture(params=list_encoders())
def name(request) -> str:
    return request.param


@pytest.fixture
def model(name):
    if _parameter_count(name) > MAX_PARAMETERS:
        pytest.skip(f"{name} has more than {MAX_PARAMETERS:,} parameters; sizes are checked in its own tests")
    torch.manual_seed(0)
    model = create_encoder(name)
    if not _has_example_input(model):
        pytest.skip(f"{name} has no example_input (see test_defines_example_input)")
    return model


def _has_example_input(model) -> bool:
    return callable(getattr(model, "example_input", None))


def _input(model) -> torch.Tensor:
    return model.example_input(BATCH, generator=torch.Generator().manual_seed(1))


def test_defines_example_input(name):
    model = _cheap_instance(name)
    assert _has_example_input(model), f"encoder {name!r} must define example_input(batch, *, generator=None) -> Tensor"


def test_output_shape_and_finite(model):
    model.eval()
    x = _input(model)
    with torch.no_grad():
        out = model(x)
        single = model(x[:1])
    assert isinstance(out, torch.Tensor) and out.ndim == 2 and out.shape[0] == BATCH
    assert torch.isfinite(out).all()
    torch.testing.assert_close(single, out[:1], rtol=1e-4, atol=1e-4)  # rows do not mix
    model.train()
    assert type(model(x)) is type(out) and model(x).shape == out.shape


def test_every_trainable_parameter_gets_a_gradient(model):
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not trainable:
        pytest.skip("no trainable parameters")
    model.train()
    out = model(_input(model))
    out.float().square().mean().backward()
    no_grad = [n for n, p in trainable if p.grad is None]
    assert no_grad == []
    assert [n for n, p in trainable if not torch.isfinite(p.grad).all()] == []
    assert sum(p.grad.abs().sum() for _, p in trainable) > 0


def test_state_dict_round_trip(model, name, tmp_path):
    model.eval()
    x = _input(model)
    torch.manual_seed(123)  # a differently initialised twin
    twin = create_encoder(name).eval()
    twin.load_state_dict(model.state_dict(), strict=True)
    with torch.no_grad():
        torch.testing.assert_close(twin(x), model(x), rtol=0, atol=0)
        path = tmp_path / f"{name}.safetensors"
        save_encoder(model, path, preset=name)
        torch.testing.assert_close(load_encoder(path)(x), model(x), rtol=0, atol=0)
