"""Where a system's embeddings come from: a preset with optional weights, or a fine-tuned model folder.

A `BackboneSpec` is what experiments, cached stages and exported detectors store; `load_backbone`
turns it into a waveform -> embedding `Backbone`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from asdlab.encoders.backbone import Backbone, build_backbone
from asdlab.errors import ConfigError
from asdlab.features.level import LEVELS

__all__ = ["BackboneSpec", "load_backbone"]


@dataclass(frozen=True)
class BackboneSpec:
    """How to build the embedding model.

    Attributes:
        preset: encoder preset (`asdlab.encoders.list_backbones()`), e.g. "logmel-stats".
        weights: an encoder weights file (asdlab safetensors, EAT checkpoint, EfficientAT state dict), or
            "pretrained": the preset's released file, found offline (`asdlab.encoders.pretrained`).
        model_dir: a fine-tuned model folder (`asdlab finetune`); takes precedence over `weights`.
        pooling: EAT pooling ("cls", "mean", "both"), MobileNet ("mean", "band-mean", "band-mean-max"); None = the preset's default.
        seed: initialisation of a preset without weights.
        options: constructor overrides of the preset.
        level: per-clip level normalisation of the waveforms before embedding. "rms" scales every clip
            to a fixed RMS (`asdlab.features.level`), so scores do not depend on a recording's gain.
            "none" adds nothing to what the model records: a fine-tuned folder's `model.json` and an
            asdlab weights file (DAP, fine-tuned encoder) say how their training clips were
            normalised, and that is always applied. "rms" on a model trained with "none" is allowed
            (gain invariance asked for explicitly; on level-normalised data such as DCASE the
            clips barely change).
    """

    preset: str = "logmel-stats"
    weights: str | None = None
    model_dir: str | None = None
    pooling: Literal["cls", "mean", "both", "band-mean", "band-mean-max"] | None = None
    seed: int = 0
    options: dict[str, Any] = field(default_factory=dict)
    level: Literal["none", "rms"] = "none"

    def relative_to(self, base: str | os.PathLike) -> BackboneSpec:
        """The same spec with its paths written relative to `base` (for a movable export)."""
        def rel(path: str | None) -> str | None:
            return None if path is None else os.path.relpath(path, base)
        return replace(self, weights=rel(self.weights), model_dir=rel(self.model_dir))

    def resolved(self, base: str | os.PathLike) -> BackboneSpec:
        """The same spec with relative paths taken from `base`."""
        def res(path: str | None) -> str | None:
            return None if path is None else str(Path(base, path))
        return replace(self, weights=res(self.weights), model_dir=res(self.model_dir))


def load_backbone(spec: BackboneSpec, *, device: str = "cpu") -> Backbone:
    """Build the `Backbone` a spec describes, in eval mode.

    Raises:
        ConfigError: unknown preset, options or level; a model folder that does not exist.
        CheckpointError: weights that cannot be read or do not fit.
    """
    if spec.level not in LEVELS:
        raise ConfigError(f"backbone.level must be one of {', '.join(LEVELS)}, got {spec.level!r}")
    level = "rms" if spec.level == "rms" else None  # None: what the weights / model folder record
    if spec.model_dir is not None:
        if not Path(spec.model_dir).is_dir():
            raise ConfigError(f"{spec.model_dir}: fine-tuned model folder not found")
        from asdlab.pipeline.finetune import load_finetuned_backbone  # the fine-tuning stage owns its format

        return load_finetuned_backbone(spec.model_dir, device=device, level=level).eval()
    backbone = build_backbone(
        spec.preset, pooling=spec.pooling, weights=spec.weights, seed=spec.seed, device=device, level=level,
        **spec.options,
    )
    return backbone.eval()
