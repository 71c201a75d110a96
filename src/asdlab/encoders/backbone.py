"""One interface for every encoder: waveform batch (B, S) -> clip embeddings (B, D).

A `Backbone` is an optional level normalisation (`asdlab.features.level`), a front end, an encoder
and a pooling. Transformer encoders: EAT / SSLAM = `EATFrontEnd` (Kaldi fbank, EAT.md "Front end") +
`EATEncoder` + "cls" / "mean" / "both"; BEATs = `BEATsFrontEnd` + `BEATsEncoder` + "mean"; mobilenet-mn04 =
`EfficientATInput` (16 -> 32 kHz upsampling, EfficientAT log-mel) + `MobileNetV3` (any `embed_layer`) +
"mean" (global average, 384-d) or "band-mean"; waveform encoders (two-branch CNN, logmel-stats,
clip-level) take the waveform and give their own output.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, Literal

import torch
from torch import Tensor, nn

from asdlab.encoders.beats import BEATS_PRESETS, BEATsEncoder
from asdlab.encoders.checkpoints import load_encoder_weights, read_encoder_metadata
from asdlab.encoders.eat import EAT_PRESETS, EATEncoder
from asdlab.encoders.mobilenet import MOBILENET_POOLINGS, EfficientATInput, MobileNetV3
from asdlab.encoders.pretrained import resolve_weights
from asdlab.encoders.registry import create_encoder, list_encoders
from asdlab.errors import ConfigError
from asdlab.features.fbank import count_frames
from asdlab.features.level import LEVELS, Level, apply_level
from asdlab.features.normalize import EAT_TARGET_FRAMES, BEATsFrontEnd, EATFrontEnd

__all__ = ["Pooling", "Backbone", "build_backbone", "list_backbones", "transformer_front_end"]

Pooling = Literal["cls", "mean", "both", "band-mean", "band-mean-max"]

_EAT_POOLINGS = ("cls", "mean", "both")
_EAT_SAMPLE_RATE = 16000  # EAT's and BEATs' Kaldi fbanks are computed at 16 kHz (EAT.md "Front end")
# Transformer encoders and their front ends: both expose forward_features / pool / embed_dim (STYLE.md).
_TRANSFORMERS: dict[type[nn.Module], type[nn.Module]] = {EATEncoder: EATFrontEnd, BEATsEncoder: BEATsFrontEnd}


def transformer_front_end(encoder: nn.Module, *, target_frames: int | None = EAT_TARGET_FRAMES) -> nn.Module:
    """The front end a transformer encoder was trained with (`EATFrontEnd` or `BEATsFrontEnd`).

    Raises:
        ConfigError: `encoder` is not a transformer encoder.
    """
    for encoder_type, front_end_type in _TRANSFORMERS.items():
        if isinstance(encoder, encoder_type):
            return front_end_type(target_frames=target_frames, num_mel_bins=encoder.num_mel_bins)
    raise ConfigError(f"{type(encoder).__name__} is not a transformer encoder (EAT, SSLAM or BEATs)")
_DEFAULT_SAMPLE_RATE = 16000  # DCASE and MIMII clips


class Backbone(nn.Module):
    """Front end + encoder + pooling: waveforms (B, S) at `sample_rate` -> embeddings (B, embed_dim).

    All clips of a batch have the same length S (pad or crop them before). The output type and shape
    do not depend on `.train()` / `.eval()`. With `level="rms"` each clip is scaled to a fixed RMS
    before the front end, so the embedding does not depend on the clip's gain; training loops that
    call `front_end` / `embed_input` themselves get the same input from `ClipDataset(level="rms")`.

    Args:
        encoder: an `EATEncoder` or `BEATsEncoder` (kind "transformer"), a `MobileNetV3`, or any module
            mapping (B, S) to (B, D) with an `embed_dim` attribute.
        front_end: `EATFrontEnd` for EAT, `BEATsFrontEnd` for BEATs, `EfficientATInput` for the
            MobileNet; ignored (identity) for waveform encoders.
        pooling: EAT: "cls" (default), "mean" of the non-padding patch tokens, or "both" ([cls, mean],
            2 D). BEATs: "mean" (it has no CLS). MobileNet: "mean" (its global average pool, the
            default), "band-mean" (time average per frequency row of its `embed_layer` map) or
            "band-mean-max" (time average and time maximum per row). Waveform
            encoders: None.
        mask_padding: EAT only. When the front end pads a clip to `target_frames`, mark the padded
            frames so patches made only of padding are ignored by attention and "mean". False
            (default) is EAT's own behaviour: it was trained seeing zero-padded 1024-frame inputs.
        sample_rate: Hz of the input waveforms.
        name: the preset name, for records.
        pool_module: transformers only: a trained pooling used on the patch tokens instead of `pooling`,
            called as `pool_module(tokens (B, N, D), padding_mask (B, N) | None) -> (B, D')` and
            with an `out_dim` attribute (e.g. `asdlab.heads.AttentiveStatsPooling`).
        projection: a module applied to the pooled embedding (a fine-tuned model's projection), with
            an `out_features` attribute; the backbone's output is then its output.
        level: "rms" scales each waveform to `asdlab.features.level.TYPICAL_RMS` first (over its S
            samples, padding included); "none" (default) feeds it as it is. Settable afterwards.

    Raises:
        ConfigError: a pooling the encoder does not have, a missing EAT / MobileNet front end, a
            pool_module / projection that does not fit, or an unknown level.
    """

    def __init__(
        self,
        encoder: nn.Module,
        *,
        front_end: nn.Module | None = None,
        pooling: Pooling | None = None,
        mask_padding: bool = False,
        sample_rate: int = _DEFAULT_SAMPLE_RATE,
        name: str = "",
        pool_module: nn.Module | None = None,
        projection: nn.Module | None = None,
        level: Level = "none",
    ) -> None:
        super().__init__()
        label = name or type(encoder).__name__
        if isinstance(encoder, (EATEncoder, BEATsEncoder)):
            kind, allowed = "transformer", tuple(encoder.poolings)
            default = allowed[0]
            wanted = next(f for e, f in _TRANSFORMERS.items() if isinstance(encoder, e))
            if not isinstance(front_end, wanted):
                raise ConfigError(f"{label}: a {type(encoder).__name__} backbone needs a {wanted.__name__}, "
                                  f"got {type(front_end).__name__}")
        elif isinstance(encoder, MobileNetV3):
            kind, allowed, default = "mobilenet", MOBILENET_POOLINGS, "mean"
            if not isinstance(front_end, EfficientATInput):
                raise ConfigError(
                    f"{label}: a MobileNet backbone needs an EfficientATInput, got {type(front_end).__name__}"
                )
        else:
            kind, allowed, default = "waveform", (), None
            front_end = nn.Identity()
        if pooling is not None and pooling not in allowed:
            choices = ", ".join(allowed) if allowed else "none (its output is the embedding)"
            raise ConfigError(f"{label}: pooling={pooling!r} is not available; choose {choices}")
        if mask_padding and not isinstance(encoder, EATEncoder):
            raise ConfigError(f"{label}: mask_padding applies to EAT backbones only (BEATs pads nothing)")
        if pool_module is not None and (kind != "transformer" or not hasattr(pool_module, "out_dim")):
            raise ConfigError(f"{label}: pool_module needs a transformer encoder and an `out_dim` attribute")
        if projection is not None and not hasattr(projection, "out_features"):
            raise ConfigError(f"{label}: projection {type(projection).__name__} has no `out_features` attribute")
        self.kind = kind
        self.name = name
        self.front_end = front_end
        self.encoder = encoder
        self.pooling: Pooling | None = pooling or default
        self.mask_padding = mask_padding
        self._sample_rate = sample_rate
        self.pool_module = pool_module
        self.projection = projection
        self.level = level

    @property
    def level(self) -> Level:
        """Per-clip level normalisation applied by `forward` before the front end: "none" or "rms"."""
        return self._level

    @level.setter
    def level(self, value: Level) -> None:
        if value not in LEVELS:
            raise ConfigError(f"{self.name or type(self.encoder).__name__}: level must be one of "
                              f"{', '.join(LEVELS)}, got {value!r}")
        self._level = value

    @property
    def sample_rate(self) -> int:
        """Hz of the waveforms `forward` takes."""
        return self._sample_rate

    @property
    def embed_dim(self) -> int:
        """D of the output: the projection's width, else the pooled width (2 x EAT's for "both")."""
        if self.projection is not None:
            return int(self.projection.out_features)
        return self.pooled_dim

    @property
    def pooled_dim(self) -> int:
        """D after pooling, before any projection."""
        if self.pool_module is not None:
            return int(self.pool_module.out_dim)
        if self.kind == "mobilenet":
            return self.encoder.pooled_dim(self.pooling)
        width = int(self.encoder.embed_dim)
        return 2 * width if self.kind == "transformer" and self.pooling == "both" else width

    @property
    def target_frames(self) -> int | None:
        """EAT: frames each clip is padded / cropped to (None: all, padded to a multiple of 16); BEATs: the
        most frames kept (nothing is padded); None for other encoders."""
        return self.front_end.target_frames if self.kind == "transformer" else None

    def settings(self) -> dict[str, Any]:
        """What decides the embeddings besides the weights, JSON-ready (for metadata and cache keys)."""
        return {
            "backbone": self.name,
            "pooling": self.pooling if self.pool_module is None else type(self.pool_module).__name__,
            "projection": None if self.projection is None else int(self.projection.out_features),
            "sample_rate": self.sample_rate,
            "embed_dim": self.embed_dim,
            "target_frames": self.target_frames,
            "mask_padding": self.mask_padding,
            "level": self.level,
        }

    def _frame_padding(self, num_samples: int, batch: int, num_frames: int, device: torch.device) -> Tensor | None:
        """(B, T) True for frames the EAT front end added after the clip's own frames, or None."""
        # EATFrontEnd uses Kaldi's 25 ms / 10 ms framing at `sample_frequency`.
        real = count_frames(num_samples, sample_frequency=self.front_end.fbank.sample_frequency)
        if real >= num_frames:
            return None
        return (torch.arange(num_frames, device=device) >= real).expand(batch, -1)  # (B, T)

    def forward(self, waveform: Tensor) -> Tensor:
        """Embed a waveform batch.

        Args:
            waveform: (B, S) float samples at `sample_rate`.

        Returns:
            (B, embed_dim) embeddings.
        """
        if waveform.ndim != 2:
            raise ValueError(f"expected a waveform batch (B, S), got shape {tuple(waveform.shape)}")
        waveform = apply_level(waveform, self.level)
        return self.embed_input(self.front_end(waveform), num_samples=waveform.shape[1])

    def embed_input(self, x: Tensor, *, num_samples: int | None = None) -> Tensor:
        """Embed the front end's output: encoder, pooling, projection (the seam for training-time
        augmentation of spectrograms).

        Args:
            x: transformers: (B, 1, T, F) from `front_end`; MobileNet: (B, 1, 128, T); waveform encoders: (B, S).
            num_samples: EAT with `mask_padding`: the waveform length, to find the padded frames.

        Returns:
            (B, embed_dim) embeddings.
        """
        if self.kind == "transformer":
            padding = None
            if self.mask_padding and num_samples is not None:
                padding = self._frame_padding(num_samples, x.shape[0], x.shape[2], x.device)
            features = self.encoder.forward_features(x, padding_mask=padding)
            if self.pool_module is not None:
                pooled = self.pool_module(features.patches, features.padding_mask)
            else:
                pooled = self.encoder.pool(features, self.pooling)
        elif self.kind == "mobilenet":
            pooled = self.encoder.embed(x, self.pooling)  # (B, 1, 128, T) -> (B, pooled_dim)
        else:
            pooled = self.encoder(x)
        return pooled if self.projection is None else self.projection(pooled)


def list_backbones() -> list[str]:
    """Preset names `build_backbone` accepts (every registered encoder), sorted."""
    return list_encoders()


def _create(name: str, options: dict[str, Any], *, seed: int | None, meta: bool) -> nn.Module:
    """The preset with random weights: from `seed` without touching the global RNG, or from the global RNG."""
    with contextlib.ExitStack() as stack:
        if meta:
            stack.enter_context(torch.device("meta"))
        if seed is not None:
            stack.enter_context(torch.random.fork_rng(devices=[]))  # restores the CPU RNG state afterwards
            torch.default_generator.manual_seed(seed)
        try:
            return create_encoder(name, **options)
        except TypeError as error:  # an option the preset's constructor does not take
            raise ConfigError(f"{name}: bad encoder option(s) {sorted(options)}: {error}") from None


def build_backbone(
    name: str,
    *,
    pooling: Pooling | None = None,
    weights: str | os.PathLike | None = None,
    sample_rate: int | None = None,
    target_frames: int | None = EAT_TARGET_FRAMES,
    mask_padding: bool = False,
    level: Level | None = None,
    seed: int | None = None,
    device: str | torch.device | None = None,
    **encoder_options: Any,
) -> Backbone:
    """Build the backbone of a registered encoder preset ("eat-base", "mobilenet-mn04", "logmel-stats", ...).

    Args:
        name: encoder preset (see `list_backbones`).
        pooling: see `Backbone`; None = the encoder's default ("cls" for EAT, "mean" for BEATs).
        weights: an asdlab encoder file (`save_encoder`), a released EAT / SSLAM checkpoint or Hugging
            Face copy (EAT presets), a released BEATs checkpoint (BEATs presets), or EfficientAT's
            `mn04_as` state dict; "pretrained" = the preset's released file, found offline
            (`asdlab.encoders.pretrained`); None = random initialisation.
        sample_rate: Hz of the input waveforms; None = 16000. EAT and BEATs take 16 kHz only; the MobileNet
            32000 / n (upsampled to 32 kHz); encoders with their own `sample_rate` (logmel-stats)
            are built at it.
        target_frames: EAT only: pad with zeros (before normalising, as EAT) or crop every clip's
            fbank to this many frames (1024 = EAT's 10.24 s, so longer clips are cut); None keeps all
            frames and pads to the next multiple of 16 (at most 12288 frames, ~123 s). BEATs: the most
            frames kept (longer clips are cut, shorter ones are not padded); None keeps all.
        mask_padding: EAT only: see `Backbone`.
        level: see `Backbone`. None = the level recorded in an asdlab `weights` file (encoders
            trained by `asdlab pretrain` / `finetune` on level-normalised clips record "rms"), else
            "none": the input those weights were trained on, and the presets' numbers unchanged.
        seed: seed of the random initialisation when there are no `weights` (the global RNG is left
            as it was); None draws from the global RNG.
        device: where to put it; random weights are drawn on the CPU first, so a seed gives the same
            model everywhere. "meta" builds the encoder without memory (shape checks).
        **encoder_options: constructor overrides of the preset (e.g. `drop_path=0.1`).

    Returns:
        the backbone, in eval mode when `weights` are given.

    Raises:
        ConfigError: unknown preset (listing the choices), bad option, pooling, level or sample rate.
        CheckpointError: the weights cannot be read, do not fit the preset, or "pretrained" finds no file.
    """
    if name not in list_encoders():
        raise ConfigError(f"unknown backbone {name!r}; choose one of {', '.join(list_backbones())}")
    is_transformer = name in EAT_PRESETS or name in BEATS_PRESETS
    if not is_transformer and target_frames != EAT_TARGET_FRAMES:
        raise ConfigError(f"{name}: target_frames applies to EAT and BEATs backbones only")
    if mask_padding and name not in EAT_PRESETS:
        raise ConfigError(f"{name}: mask_padding applies to EAT backbones only")
    if is_transformer and sample_rate not in (None, _EAT_SAMPLE_RATE):
        raise ConfigError(f"{name}: sample_rate={sample_rate}; EAT and BEATs take {_EAT_SAMPLE_RATE} Hz waveforms")
    meta = device is not None and torch.device(device).type == "meta"
    weights = resolve_weights(name, weights)
    recorded: str = "none"
    if weights is not None:
        encoder, source = load_encoder_weights(weights, name, **encoder_options)
        if source == "asdlab":
            recorded = read_encoder_metadata(weights).get("level", "none")
    else:
        encoder = _create(name, encoder_options, seed=seed, meta=meta)
    if sample_rate is not None and getattr(encoder, "sample_rate", sample_rate) != sample_rate:
        # An encoder with its own rate (logmel-stats) is rebuilt at the requested one.
        if weights is not None:
            raise ConfigError(f"{name}: the weights in {weights} are for {encoder.sample_rate} Hz, not {sample_rate}")
        encoder = _create(name, {**encoder_options, "sample_rate": sample_rate}, seed=seed, meta=meta)

    # Front ends hold only fixed buffers computed from their values, so they are built on the CPU.
    rate = sample_rate or getattr(encoder, "sample_rate", None) or _DEFAULT_SAMPLE_RATE
    front_end: nn.Module | None = None
    if isinstance(encoder, tuple(_TRANSFORMERS)):
        front_end = transformer_front_end(encoder, target_frames=target_frames)
    elif isinstance(encoder, MobileNetV3):
        front_end = EfficientATInput(sample_rate=rate)
    backbone = Backbone(encoder, front_end=front_end, pooling=pooling, mask_padding=mask_padding,
                        sample_rate=rate, name=name, level=recorded if level is None else level)
    if device is not None:
        backbone = backbone.to(device)
    return backbone.eval() if weights is not None else backbone
