"""Typed YAML configuration: strict keys and types, overrides, stable hashes, resume checks."""

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import pytest

from asdlab.errors import ConfigError
from asdlab.pipeline.config_io import (
    apply_overrides, check_resume_settings, config_hash, from_dict, parse_override, read_yaml, to_dict,
    write_run_settings,
)


@dataclass(frozen=True)
class Inner:
    lr: float = 5e-5
    mode: Literal["full", "lora"] = "full"
    betas: tuple[float, float] = (0.9, 0.95)


@dataclass(frozen=True)
class Outer:
    name: str
    steps: int = 10
    weights: Path | None = None
    inner: Inner = field(default_factory=Inner)
    optional: Inner | None = None
    params: dict[str, float] = field(default_factory=dict)


def test_round_trip_and_int_accepted_as_float():
    config = from_dict(Outer, {"name": "x", "inner": {"lr": 1, "mode": "lora", "betas": [0.8, 0.9]},
                               "optional": {}, "weights": "a/b.pt", "params": {"k": 2}})
    assert config.inner == Inner(lr=1.0, mode="lora", betas=(0.8, 0.9))
    assert config.optional == Inner() and config.weights == Path("a/b.pt") and config.params == {"k": 2.0}
    assert from_dict(Outer, to_dict(config)) == config


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "x", "stpes": 3}, r"cfg.yaml: unknown key\(s\) stpes; known: inner, name"),
        ({"name": "x", "steps": "3"}, r"cfg.yaml.steps: expected an integer, got '3'"),
        ({"name": "x", "steps": True}, r"cfg.yaml.steps: expected an integer"),
        ({"name": "x", "inner": {"mode": "qlora"}}, r"cfg.yaml.inner.mode: 'qlora' is not one of 'full', 'lora'"),
        ({"name": "x", "inner": {"betas": [0.9]}}, r"cfg.yaml.inner.betas: expected 2 items"),
        ({}, r"cfg.yaml: missing required key\(s\) name"),
    ],
)
def test_errors_name_the_file_and_key(data, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(Outer, data, where="cfg.yaml")


def test_overrides_and_parse():
    assert parse_override("inner.lr=1e-4") == ("inner.lr", 1e-4)
    assert parse_override("optional=null") == ("optional", None)
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        parse_override("inner.lr")
    base = {"name": "x", "inner": {"lr": 0.1}}
    changed = apply_overrides(base, dict([parse_override("inner.mode=lora"), parse_override("steps=4")]))
    assert changed == {"name": "x", "steps": 4, "inner": {"lr": 0.1, "mode": "lora"}}
    assert base == {"name": "x", "inner": {"lr": 0.1}}
    with pytest.raises(ConfigError, match="name is a value"):
        apply_overrides(base, {"name.first": 1})


def test_hash_is_stable_and_sensitive():
    a = from_dict(Outer, {"name": "x"})
    assert config_hash(a) == config_hash(from_dict(Outer, {"name": "x", "steps": 10}))
    assert config_hash(a) != config_hash(from_dict(Outer, {"name": "x", "steps": 11}))
    assert len(config_hash(a)) == 12


def test_read_yaml_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        read_yaml(tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        read_yaml(tmp_path / "list.yaml")
    (tmp_path / "bad.yaml").write_text("a: [1\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        read_yaml(tmp_path / "bad.yaml")


def test_yaml_reads_exponent_floats(tmp_path):
    (tmp_path / "c.yaml").write_text("name: x\ninner:\n  lr: 5e-5\n")
    assert from_dict(Outer, read_yaml(tmp_path / "c.yaml")).inner.lr == 5e-5


@dataclass(frozen=True)
class RunSettings:
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.95)
    accelerator: str = "cpu"
    log_every: int = 10


def test_resume_refuses_changed_settings_but_not_hardware_or_logging(tmp_path):
    path = tmp_path / "settings.json"
    check_resume_settings(path, RunSettings())  # an older run without the file is not checked
    write_run_settings(path, RunSettings())
    check_resume_settings(path, RunSettings())  # tuples saved as lists compare equal
    check_resume_settings(path, RunSettings(accelerator="cuda", log_every=1))
    with pytest.raises(ConfigError, match=r"settings.json: cannot resume with other settings "
                                          r"\(betas: \[0.9, 0.95\] -> \[0.9, 0.999\], lr: 0.001 -> 0.0005\)"):
        check_resume_settings(path, replace(RunSettings(), lr=5e-4, betas=(0.9, 0.999)))
