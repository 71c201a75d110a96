"""Typed YAML configuration: frozen dataclasses <-> plain dicts, strict checking, `--set` overrides.

Config files are at most two levels deep (`finetune.lr`). Loading rejects unknown keys and values of
the wrong type, naming the file and the key (STYLE.md "Stages, pipeline and configuration").
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

import yaml

from asdlab._io import atomic_write_text
from asdlab.errors import ConfigError

__all__ = ["from_dict", "to_dict", "apply_overrides", "parse_override", "read_yaml", "config_hash",
           "write_run_settings", "check_resume_settings", "RESUMABLE_CHANGES"]

T = TypeVar("T")


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads `5e-5` as a float (YAML 1.1 wants `5.0e-5`; people write `5e-5`)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _describe(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _convert(value: Any, tp: Any, where: str) -> Any:
    """`value` checked against (and converted to) the annotation `tp`."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:  # X | None: X's own, more precise error
            return _convert(value, options[0], where)
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _convert(value, option, where)
            except ConfigError as error:
                errors.append(str(error))
        raise ConfigError(f"{where}: {value!r} is not {' or '.join(_describe(a) for a in args)}")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r} is not one of {', '.join(repr(a) for a in args)}")
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping of {tp.__name__} settings, got {value!r}")
        return from_dict(tp, value, where=where)
    if origin in (tuple, Sequence, list) or tp in (tuple, list):
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"{where}: expected {len(args)} items, got {len(value)}")
            return tuple(_convert(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        item = args[0] if args else Any
        converted = [_convert(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
        return converted if origin is list or tp is list else tuple(converted)
    if origin in (dict, Mapping) or tp in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        key_tp, value_tp = args if args else (Any, Any)
        return {_convert(k, key_tp, where): _convert(v, value_tp, f"{where}.{k}") for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    if tp is Path:
        if not isinstance(value, (str, os.PathLike)):
            raise ConfigError(f"{where}: expected a path, got {value!r}")
        return Path(value)
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    raise ConfigError(f"{where}: cannot read {value!r} as {_describe(tp)}")


def from_dict(cls: type[T], data: Mapping[str, Any], *, where: str = "config") -> T:
    """Build the dataclass `cls` from `data`, checking every key and type.

    Args:
        cls: a (frozen) dataclass; nested dataclass fields take nested mappings.
        data: plain values (e.g. from YAML); missing keys keep the field defaults.
        where: the file or key prefix named in error messages.

    Raises:
        ConfigError: an unknown key (with the known ones listed), a wrong type, a missing required key.
    """
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(fields))}")
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _convert(value, hints[name], f"{where}.{name}")
    missing = [
        name for name, f in fields.items()
        if name not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"{where}: missing required key(s) {', '.join(missing)}")
    return cls(**kwargs)


def to_dict(config: Any) -> Any:
    """Plain, YAML/JSON-ready values of a dataclass tree (tuples become lists, paths strings)."""
    if dataclasses.is_dataclass(config):
        return {f.name: to_dict(getattr(config, f.name)) for f in dataclasses.fields(config)}
    if isinstance(config, Mapping):
        return {str(k): to_dict(v) for k, v in config.items()}
    if isinstance(config, (list, tuple)):
        return [to_dict(v) for v in config]
    if isinstance(config, Path):
        return str(config)
    return config


def parse_override(text: str) -> tuple[str, Any]:
    """`"finetune.lr=5e-5"` -> ("finetune.lr", 5e-05); the value is read as YAML.

    Raises:
        ConfigError: no `=` or an empty key.
    """
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. finetune.lr=5e-5")
    try:
        return key, yaml.load(raw, Loader=_Loader) if raw.strip() else ""
    except yaml.YAMLError as error:
        raise ConfigError(f"--set {text!r}: cannot read the value: {error}") from None


def apply_overrides(data: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """`data` with dotted keys replaced (`{"finetune.lr": 1e-4}`); a copy, the input is unchanged.

    A dotted key written literally in `data` (a variant's `finetune.preset: ...`) is replaced as one key, so
    `variants.x.finetune.preset` reaches it.
    """
    result = json.loads(json.dumps(dict(data), default=str))  # deep copy of plain values
    for key, value in overrides.items():
        parts = key.split(".")
        node = result
        depth = 0
        while depth < len(parts) - 1 and ".".join(parts[depth:]) not in node:
            child = node.setdefault(parts[depth], {})
            if not isinstance(child, dict):
                raise ConfigError(f"override {key}: {parts[depth]} is a value, not a section")
            node = child
            depth += 1
        node[".".join(parts[depth:])] = value
    return result


def read_yaml(path: str | os.PathLike) -> dict[str, Any]:
    """A YAML file's top-level mapping.

    Raises:
        ConfigError: missing file, invalid YAML, or not a mapping.
    """
    path = Path(path)
    try:
        data = yaml.load(path.read_text(), Loader=_Loader)
    except FileNotFoundError:
        raise ConfigError(f"{path}: configuration file not found") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: invalid YAML: {error}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def config_hash(*parts: Any, length: int = 12) -> str:
    """A short stable hash of plain values (dataclasses allowed): the cache key of a stage."""
    text = json.dumps([to_dict(p) for p in parts], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


# Settings a stopped training run may be resumed with changed: hardware, logging, the decode cache, and how
# the DAP step is computed (decoder convolution, compile), which leaves the objective as it is.
RESUMABLE_CHANGES = frozenset({"accelerator", "devices", "num_nodes", "strategy", "precision", "num_workers",
                               "log_every", "checkpoint_every", "cache_dir", "decoder_conv", "compile"})


def write_run_settings(path: str | os.PathLike, settings: Any) -> None:
    """Save a training run's settings (a dataclass) as JSON beside its checkpoint, atomically."""
    atomic_write_text(Path(path), json.dumps(to_dict(settings), indent=2, sort_keys=True) + "\n")


def check_resume_settings(path: str | os.PathLike, settings: Any) -> None:
    """Refuse to resume a run whose saved settings (`write_run_settings`) differ from `settings`
    in anything but `RESUMABLE_CHANGES`; a run without a settings file is not checked.

    Raises:
        ConfigError: naming the file and every changed field with its old and new value.
    """
    path = Path(path)
    if not path.is_file():
        return
    before = json.loads(path.read_text())
    now = json.loads(json.dumps(to_dict(settings)))
    changed = sorted(k for k in set(before) | set(now) if k not in RESUMABLE_CHANGES and before.get(k) != now.get(k))
    if changed:
        detail = ", ".join(f"{k}: {before.get(k)!r} -> {now.get(k)!r}" for k in changed)
        raise ConfigError(f"{path}: cannot resume with other settings ({detail})")
