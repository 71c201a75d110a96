"""Encoders by short preset name (`eat-base`, `two-branch-cnn`, ...).

Model modules register their presets with `@register_encoder(name)`; the registry imports
those modules lazily, so `import asdlab.encoders.registry` stays cheap.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from torch import nn

from asdlab.errors import ConfigError

__all__ = ["register_encoder", "create_encoder", "list_encoders"]

# Modules whose import registers presets.
_MODEL_MODULES = (
    "asdlab.encoders.reference",
    "asdlab.encoders.eat",
    "asdlab.encoders.beats",
    "asdlab.encoders.two_branch_cnn",
    "asdlab.encoders.mobilenet",
)

_BUILDERS: dict[str, Callable[..., nn.Module]] = {}


def register_encoder(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: make `builder(**overrides) -> nn.Module` available as `name`."""

    def decorate(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _BUILDERS and _BUILDERS[name] is not builder:
            raise ValueError(f"encoder preset {name!r} is registered twice")
        _BUILDERS[name] = builder
        return builder

    return decorate


def _load_model_modules() -> None:
    for module in _MODEL_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as error:
            if error.name != module:  # a real missing dependency inside the module
                raise


def list_encoders() -> list[str]:
    """Names of every registered preset, sorted."""
    _load_model_modules()
    return sorted(_BUILDERS)


def create_encoder(name: str, **overrides) -> nn.Module:
    """Build the preset `name`, with keyword overrides of its constructor arguments.

    Raises:
        ConfigError: `name` is not a registered preset.
    """
    _load_model_modules()
    try:
        builder = _BUILDERS[name]
    except KeyError:
        raise ConfigError(f"unknown encoder {name!r}; choose one of {', '.join(sorted(_BUILDERS))}") from None
    return builder(**overrides)
