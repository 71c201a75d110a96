"""Released EAT (and SSLAM) weights -> `EATEncoder`, without fairseq or transformers; asdlab's own files.

Sources (`EAT.md`, "Released checkpoints"; SSLAM's releases share EAT's layout): fairseq pre-trained files
(student, `_ema` teacher and CNN decoder), fairseq fine-tuned files (`model.` prefix, `fc_norm` / `head`
ignored), and Hugging Face copies (safetensors or pytorch_model.bin). Every name and shape is checked; a mismatch raises
`CheckpointError` listing the missing, unexpected and mis-shaped keys. Pickles are read by a
restricted unpickler that never imports or runs anything outside a short allowlist. Also: the
EfficientAT mn04 AudioSet weights, and `load_encoder_weights`, which reads any of these formats and
BEATs releases (`beats_checkpoint.py`).
"""

from __future__ import annotations

import json
import logging
import os
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from asdlab._io import atomic_path, sha256_file
from asdlab.encoders._key_report import compare_shapes as _compare
from asdlab.encoders._key_report import problems_message as _problems_message
from asdlab.encoders._key_report import state_shapes as _shapes
from asdlab.encoders._restricted_pickle import StubObject, read_pickle_checkpoint
from asdlab.encoders.beats import BEATS_PRESETS
from asdlab.encoders.beats_checkpoint import load_beats_checkpoint
from asdlab.encoders.eat import EAT_PRESETS, EATEncoder, create_eat_decoder
from asdlab.encoders.layers import sincos_2d_table
from asdlab.encoders.registry import create_encoder
from asdlab.errors import CheckpointError

if TYPE_CHECKING:
    from asdlab.encoders.mobilenet import MobileNetV3

__all__ = [
    "StubObject",
    "read_pickle_checkpoint",
    "ConvertedState",
    "convert_fairseq_state",
    "convert_hf_state",
    "infer_eat_preset",
    "check_converted",
    "fairseq_key_shapes",
    "hf_key_shapes",
    "CheckpointReport",
    "load_eat_checkpoint",
    "save_encoder",
    "load_encoder",
    "read_encoder_metadata",
    "MN04_FILENAME",
    "MN04_URL",
    "MN04_SHA256",
    "load_mn04_weights",
    "download_mn04_weights",
    "load_encoder_weights",
]

logger = logging.getLogger(__name__)

Which = Literal["student", "teacher"]

# Key mapping, one table per source layout: (file prefix or exact key, our prefix or exact key).

_FAIRSEQ_ENCODER = (
    ("modality_encoders.IMAGE.local_encoder.proj.", "patch_embed."),
    ("modality_encoders.IMAGE.extra_tokens", "cls_token"),
    ("modality_encoders.IMAGE.context_encoder.norm.", "pre_norm."),
    ("blocks.", "blocks."),
)
_FAIRSEQ_DECODER = (("modality_encoders.IMAGE.decoder.", ""),)
_FAIRSEQ_POSITIONS = "modality_encoders.IMAGE.fixed_positional_encoder.positions"
_HF_ENCODER = (
    ("model.local_encoder.proj.", "patch_embed."),
    ("model.extra_tokens", "cls_token"),
    ("model.pre_norm.", "pre_norm."),
    ("model.blocks.", "blocks."),
)
_HF_POSITIONS = "model.fixed_positional_encoder.positions"
_FINETUNE_HEAD = ("fc_norm.", "head.")  # classifier of fine-tuned files, not part of the encoder


def _map_key(key: str, table: tuple[tuple[str, str], ...]) -> str | None:
    for source, ours in table:
        if source.endswith("."):
            if key.startswith(source):
                return ours + key[len(source) :]
        elif key == source:
            return ours
    return None


def _file_key(our_key: str, table: tuple[tuple[str, str], ...], prefix: str) -> str:
    """Inverse of `_map_key`, for naming missing keys as the file would."""
    for source, ours in table:
        if source.endswith(".") and our_key.startswith(ours):
            return prefix + source + our_key[len(ours) :]
        if our_key == ours:
            return prefix + source
    return prefix + our_key


@dataclass(frozen=True, eq=False)
class ConvertedState:
    """A checkpoint's tensors under our names, before shape checking.

    Attributes:
        source: "fairseq-pretrained", "fairseq-finetuned" or "hf".
        which: "student" or "teacher".
        encoder: `EATEncoder` state (our keys).
        decoder: `EATDecoder` state (our keys) or None when the file has no decoder.
        positions: the file's fixed position table (1, L, D) or None; checked, never loaded.
        unexpected: file keys that map to nothing.
        ignored: file keys deliberately skipped (fine-tuning classifier).
        file_prefix: prefix of file keys in messages ("_ema/" for the teacher, else "").
    """

    source: str
    which: str
    encoder: dict[str, Tensor]
    decoder: dict[str, Tensor] | None
    positions: Tensor | None
    unexpected: tuple[str, ...]
    ignored: tuple[str, ...]
    file_prefix: str = ""
    encoder_table: tuple[tuple[str, str], ...] = field(default=_FAIRSEQ_ENCODER, repr=False)
    positions_key: str = _FAIRSEQ_POSITIONS


def _split(
    state: Mapping[str, Any],
    encoder_table: tuple[tuple[str, str], ...],
    positions_key: str,
    ignored_prefixes: tuple[str, ...],
    *,
    keep_decoder: bool,
    skip: tuple[str, ...] = (),
) -> tuple[dict[str, Tensor], dict[str, Tensor], Tensor | None, list[str], list[str]]:
    encoder: dict[str, Tensor] = {}
    decoder: dict[str, Tensor] = {}
    positions, unexpected, ignored = None, [], []
    for key, value in state.items():
        if key in skip:
            continue
        if not isinstance(value, Tensor):
            unexpected.append(key)
        elif key == positions_key:
            positions = value
        elif key.startswith(ignored_prefixes):
            ignored.append(key)
        elif (ours := _map_key(key, encoder_table)) is not None:
            encoder[ours] = value
        elif keep_decoder and (ours := _map_key(key, _FAIRSEQ_DECODER)) is not None:
            decoder[ours] = value
        else:
            unexpected.append(key)
    return encoder, decoder, positions, unexpected, ignored


def convert_fairseq_state(model_state: Mapping[str, Any], *, which: Which = "student") -> ConvertedState:
    """Map a fairseq EAT `model` state dict (pre-trained or fine-tuned) to our key names.

    Pre-trained files: `modality_encoders.IMAGE.*` + `blocks.*` for the student (with its CNN
    decoder) and the teacher's copy under `_ema`. Fine-tuned files prefix the encoder with
    `model.` and add `fc_norm.*` / `head.*` (ignored) and have no teacher.

    Raises:
        CheckpointError: `which="teacher"` and the file has no `_ema` weights.
    """
    finetuned = any(key.startswith("model.modality_encoders.") for key in model_state)
    if finetuned:
        if which == "teacher":
            raise CheckpointError("a fine-tuned fairseq EAT file has no teacher (_ema) weights")
        table = tuple(("model." + source, ours) for source, ours in _FAIRSEQ_ENCODER)
        enc, _, pos, unexpected, ignored = _split(
            model_state, table, "model." + _FAIRSEQ_POSITIONS, _FINETUNE_HEAD, keep_decoder=False
        )
        return ConvertedState(
            "fairseq-finetuned", which, enc, None, pos, tuple(unexpected), tuple(ignored),
            encoder_table=table, positions_key="model." + _FAIRSEQ_POSITIONS,
        )
    if which == "teacher":
        ema = model_state.get("_ema")
        if not isinstance(ema, Mapping):
            raise CheckpointError("the fairseq file has no teacher weights (no `_ema` entry in `model`)")
        enc, _, pos, unexpected, ignored = _split(ema, _FAIRSEQ_ENCODER, _FAIRSEQ_POSITIONS, (), keep_decoder=False)
        return ConvertedState(
            "fairseq-pretrained", which, enc, None, pos, tuple(unexpected), tuple(ignored), file_prefix="_ema/"
        )
    enc, dec, pos, unexpected, ignored = _split(
        model_state, _FAIRSEQ_ENCODER, _FAIRSEQ_POSITIONS, (), keep_decoder=True, skip=("_ema",)
    )
    return ConvertedState("fairseq-pretrained", which, enc, dec or None, pos, tuple(unexpected), tuple(ignored))


def convert_hf_state(state: Mapping[str, Any], *, which: Which = "student") -> ConvertedState:
    """Map a Hugging Face EAT state dict (`model.local_encoder.*`, `model.pre_norm.*`, ...) to ours.

    `model.fc_norm.*` / `model.head.*` of fine-tuned copies are ignored. The copies hold no
    teacher and no decoder.

    Raises:
        CheckpointError: `which="teacher"`.
    """
    if which == "teacher":
        raise CheckpointError("Hugging Face EAT copies hold only the student encoder, no teacher")
    head = tuple("model." + prefix for prefix in _FINETUNE_HEAD)
    enc, _, pos, unexpected, ignored = _split(state, _HF_ENCODER, _HF_POSITIONS, head, keep_decoder=False)
    return ConvertedState(
        "hf", which, enc, None, pos, tuple(unexpected), tuple(ignored),
        encoder_table=_HF_ENCODER, positions_key=_HF_POSITIONS,
    )


def infer_eat_preset(converted: ConvertedState) -> str:
    """The EAT preset whose width and depth match the converted weights.

    Raises:
        CheckpointError: no patch embedding to read the width from, or no preset matches.
    """
    weight = converted.encoder.get("patch_embed.weight")
    if weight is None:
        key = _file_key("patch_embed.weight", converted.encoder_table, converted.file_prefix)
        raise CheckpointError(f"cannot infer the EAT preset: missing {key}")
    width = weight.shape[0]
    depth = 1 + max((int(k.split(".")[1]) for k in converted.encoder if k.startswith("blocks.")), default=-1)
    for name, preset in EAT_PRESETS.items():
        if (preset.embed_dim, preset.depth) == (width, depth):
            return name
    raise CheckpointError(
        f"no EAT preset has width {width} and {depth} blocks; known: "
        + ", ".join(f"{n} ({p.embed_dim}/{p.depth})" for n, p in EAT_PRESETS.items())
    )


def _meta_shapes(preset: str, *, decoder: bool) -> dict[str, tuple[int, ...]]:
    with torch.device("meta"):
        return _shapes(create_eat_decoder(preset) if decoder else create_encoder(preset))


def check_converted(converted: ConvertedState, preset: str, *, path: str | os.PathLike = "checkpoint") -> float | None:
    """Check every converted name and shape against the preset's encoder (and decoder).

    Works on any tensors with shapes (also "meta" tensors). Returns the largest absolute
    difference between the file's fixed position table and ours (None when the file has none).

    Raises:
        CheckpointError: listing missing, unexpected and mis-shaped keys, as the file names them.
    """
    if preset not in EAT_PRESETS:
        raise CheckpointError(f"{preset!r} is not an EAT preset; choose one of {', '.join(EAT_PRESETS)}")
    prefix, table = converted.file_prefix, converted.encoder_table
    missing, unexpected, misshaped = _compare(
        _meta_shapes(preset, decoder=False), converted.encoder, lambda k: _file_key(k, table, prefix)
    )
    unexpected = [f"{prefix}{key}" for key in converted.unexpected] + unexpected
    if converted.decoder is not None:
        m, u, s = _compare(
            _meta_shapes(preset, decoder=True), converted.decoder, lambda k: _file_key(k, _FAIRSEQ_DECODER, prefix)
        )
        missing, unexpected, misshaped = missing + m, unexpected + u, misshaped + s

    dim = EAT_PRESETS[preset].embed_dim
    table_rows, freq_patches = 768 * 8, 8
    position_diff = None
    positions = converted.positions
    if positions is not None:
        rows = positions.shape[1] if positions.ndim == 3 else -1
        if positions.ndim != 3 or positions.shape[0] != 1 or positions.shape[2] != dim or not (
            0 < rows <= table_rows and rows % freq_patches == 0
        ):
            misshaped.append(
                f"{prefix}{converted.positions_key}: file {list(positions.shape)}, model [1, L, {dim}] "
                f"with L a multiple of {freq_patches} up to {table_rows}"
            )
        elif positions.device.type != "meta":
            ours = sincos_2d_table(dim, rows // freq_patches, freq_patches)  # (L, D)
            position_diff = float((positions[0].float() - ours).abs().max())

    if missing or unexpected or misshaped:
        header = f"{path}: {converted.source} {converted.which} weights do not fit {preset}:"
        raise CheckpointError(_problems_message(header, missing, unexpected, misshaped))
    return position_diff


def fairseq_key_shapes(
    preset: str = "eat-base", *, which: Which = "student", finetuned: bool = False
) -> dict[str, tuple[int, ...]]:
    """The fairseq file keys and shapes the converter expects (teacher: the keys inside `_ema`)."""
    prefix = "model." if finetuned else ""
    dim = EAT_PRESETS[preset].embed_dim
    keys = {_file_key(k, _FAIRSEQ_ENCODER, prefix): s for k, s in _meta_shapes(preset, decoder=False).items()}
    keys[prefix + _FAIRSEQ_POSITIONS] = (1, 768 * 8, dim)
    if which == "student" and not finetuned:
        keys.update({_file_key(k, _FAIRSEQ_DECODER, ""): s for k, s in _meta_shapes(preset, decoder=True).items()})
    return keys


def hf_key_shapes(preset: str = "eat-base") -> dict[str, tuple[int, ...]]:
    """The Hugging Face file keys and shapes the converter expects (without a classifier)."""
    keys = {_file_key(k, _HF_ENCODER, ""): s for k, s in _meta_shapes(preset, decoder=False).items()}
    keys[_HF_POSITIONS] = (1, 768 * 8, EAT_PRESETS[preset].embed_dim)
    return keys


@dataclass(frozen=True, eq=False)
class CheckpointReport:
    """What `load_eat_checkpoint` found.

    Attributes:
        path: the file read.
        source: "fairseq-pretrained", "fairseq-finetuned" or "hf".
        preset: the EAT preset built.
        which: "student" or "teacher".
        dtype: dtype of the stored weights (converted to the model's float32).
        position_rows: rows of the file's fixed position table (6144 = 768 x 8; older 512), or None.
        position_max_abs_diff: largest |file table - our table| over those rows, or None.
        ignored_keys: file keys deliberately skipped (fine-tuning classifier).
        decoder_state: the student's CNN decoder weights under `EATDecoder` names, or None.
    """

    path: str
    source: str
    preset: str
    which: str
    dtype: str
    position_rows: int | None
    position_max_abs_diff: float | None
    ignored_keys: tuple[str, ...]
    decoder_state: dict[str, Tensor] | None = field(default=None, repr=False)


def _read_any(path: Path) -> Any:
    if path.is_dir():
        for name in ("model.safetensors", "pytorch_model.bin"):
            if (path / name).is_file():
                return _read_any(path / name)
        raise CheckpointError(f"{path}: no model.safetensors or pytorch_model.bin in this folder")
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if path.suffix == ".safetensors":
        try:
            return load_file(path, device="cpu")
        except Exception as error:  # safetensors raises its own error types
            raise CheckpointError(f"{path}: cannot read safetensors file: {error}") from error
    return read_pickle_checkpoint(path)


def _convert_any(content: Any, which: Which, path: Path) -> ConvertedState:
    if isinstance(content, Mapping) and isinstance(content.get("model"), Mapping):
        return convert_fairseq_state(content["model"], which=which)
    if isinstance(content, Mapping):
        keys = [k for k in content if isinstance(k, str)]
        if any(k.startswith("model.local_encoder.") for k in keys):
            return convert_hf_state(content, which=which)
        if any(k.startswith(("modality_encoders.", "model.modality_encoders.")) for k in keys):
            return convert_fairseq_state(content, which=which)
        raise CheckpointError(f"{path}: not an EAT checkpoint I know; first keys: {keys[:8]}")
    raise CheckpointError(f"{path}: expected a dict of weights, found {type(content).__name__}")


def load_eat_checkpoint(
    path: str | os.PathLike, *, which: Which = "student", preset: str | None = None
) -> tuple[EATEncoder, CheckpointReport]:
    """Build an `EATEncoder` from a released EAT file (fairseq `.pt`, HF safetensors / bin / folder).

    Args:
        path: the checkpoint file, or a Hugging Face snapshot folder.
        which: "student" (used for fine-tuning) or "teacher" (the EMA copy, pre-trained files only).
        preset: EAT preset to build; inferred from the weight shapes when None.

    Returns:
        (encoder in eval mode on the CPU, report). A fixed position table that differs from ours
        is reported (and logged), not refused: ours is always used.

    Raises:
        CheckpointError: unreadable file, unknown layout, or any missing / unexpected / mis-shaped key.
    """
    path = Path(path)
    try:
        converted = _convert_any(_read_any(path), which, path)
        preset = preset or infer_eat_preset(converted)
        position_diff = check_converted(converted, preset, path=path)
    except CheckpointError as error:
        message = str(error)
        raise CheckpointError(message if message.startswith(str(path)) else f"{path}: {message}") from None
    if position_diff is not None and position_diff > 1e-3:
        logger.warning("%s: fixed position table differs from ours by up to %.3g; ours is used", path, position_diff)
    encoder = create_encoder(preset)
    encoder.load_state_dict(converted.encoder, strict=True)  # copy_ casts fp16 weights to float32
    encoder.eval()
    report = CheckpointReport(
        path=str(path),
        source=converted.source,
        preset=preset,
        which=which,
        dtype=str(converted.encoder["patch_embed.weight"].dtype).removeprefix("torch."),
        position_rows=None if converted.positions is None else int(converted.positions.shape[1]),
        position_max_abs_diff=position_diff,
        ignored_keys=converted.ignored,
        decoder_state=None if converted.decoder is None else {k: v.float() for k, v in converted.decoder.items()},
    )
    return encoder, report


# asdlab's own format: safetensors with our key names and JSON metadata in the header.

_FORMAT = "asdlab-encoder"
_FORMAT_VERSION = 1
_METADATA_KEY = "asdlab"


def save_encoder(
    encoder: nn.Module,
    path: str | os.PathLike,
    *,
    preset: str,
    source: str = "asdlab",
    extra: Mapping[str, str] | None = None,
) -> None:
    """Write any registered encoder's state dict as safetensors, atomically.

    Args:
        encoder: the module to save.
        path: destination file (conventionally `*.safetensors`).
        preset: registry name to rebuild it with (`create_encoder(preset)`).
        source: where the weights came from (e.g. a released checkpoint path or "dap").
        extra: more string metadata to keep beside them.
    """
    state = {key: value.detach().to("cpu").contiguous() for key, value in encoder.state_dict().items()}
    metadata = {"format": _FORMAT, "version": _FORMAT_VERSION, "preset": preset, "source": source, **(extra or {})}
    with atomic_path(path, suffix=".safetensors") as tmp:
        save_file(state, str(tmp), metadata={_METADATA_KEY: json.dumps(metadata, sort_keys=True)})


def read_encoder_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON metadata of a file written by `save_encoder`.

    Raises:
        CheckpointError: the file is missing, not safetensors, or not written by `save_encoder`.
    """
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
    except Exception as error:  # safetensors raises its own error types
        raise CheckpointError(f"{path}: cannot read encoder file: {error}") from error
    try:
        metadata = json.loads(header[_METADATA_KEY])
    except (KeyError, json.JSONDecodeError):
        raise CheckpointError(f"{path}: not an asdlab encoder file (no '{_METADATA_KEY}' metadata)") from None
    if metadata.get("format") != _FORMAT or "preset" not in metadata:
        raise CheckpointError(f"{path}: metadata is not an asdlab encoder description: {metadata}")
    return metadata


def load_encoder(path: str | os.PathLike, *, device: str | torch.device = "cpu", **overrides: Any) -> nn.Module:
    """Rebuild an encoder saved by `save_encoder`, in eval mode.

    Args:
        path: the safetensors file.
        device: where to put the weights.
        **overrides: constructor overrides for the preset (e.g. `drop_path=0.1`).

    Raises:
        CheckpointError: unreadable file, or keys / shapes that do not fit the preset.
    """
    metadata = read_encoder_metadata(path)
    encoder = create_encoder(metadata["preset"], **overrides)
    state = load_file(str(path), device=str(device))
    missing, unexpected, misshaped = _compare(_shapes(encoder), state, str)
    if missing or unexpected or misshaped:
        header = f"{path}: weights do not fit preset {metadata['preset']}:"
        raise CheckpointError(_problems_message(header, missing, unexpected, misshaped))
    encoder.load_state_dict(state, strict=True)
    return encoder.to(device).eval()


# EfficientAT mn04 AudioSet weights (the model and its key check live in mobilenet.py).

MN04_FILENAME = "mn04_as_mAP_432.pt"
MN04_URL = f"https://github.com/fschmid56/EfficientAT/releases/download/v0.0.1/{MN04_FILENAME}"
MN04_SHA256 = "899a8c6217063f6941793102a2780b3dd788ab11fce468d9cf5f0577c453321c"


def load_mn04_weights(path: str | os.PathLike, *, model: MobileNetV3 | None = None) -> MobileNetV3:
    """Load the EfficientAT `mn04_as` state dict strictly into `model` (a new mn04 when None).

    Args:
        path: the `.pt` file (a plain state dict of 312 tensors).
        model: a `MobileNetV3` built for these weights.

    Returns:
        the model with the weights, in eval mode.

    Raises:
        CheckpointError: the file is unreadable, not a state dict, or does not fit the model.
    """
    # Imported here: mobilenet.py re-exports this function, so a top-level import would be circular.
    from asdlab.encoders.mobilenet import check_mn04_state_dict, mobilenet_mn04

    model = model if model is not None else mobilenet_mn04()
    try:
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for corrupt or foreign files
        raise CheckpointError(f"{path}: cannot read as a PyTorch state dict ({error})") from error
    if not isinstance(state_dict, dict) or not all(isinstance(v, Tensor) for v in state_dict.values()):
        raise CheckpointError(f"{path}: expected a plain state dict of tensors, got {type(state_dict).__name__}")
    check_mn04_state_dict(model, state_dict, source=str(path))
    model.load_state_dict(state_dict, strict=True)
    return model.eval()


def download_mn04_weights(
    directory: str | os.PathLike, *, url: str = MN04_URL, sha256: str = MN04_SHA256, timeout_s: float = 60.0
) -> Path:
    """Download the mn04 AudioSet weights into `directory` (explicit opt-in; nothing calls this for you).

    An existing file with the right hash is reused. The download is written atomically and kept only
    if its SHA-256 matches.

    Returns:
        path of the verified file.

    Raises:
        CheckpointError: the downloaded file's hash differs from `sha256`.
        OSError: the download failed.
    """
    target = Path(directory) / url.rsplit("/", 1)[-1]
    if target.is_file() and sha256_file(target) == sha256:
        return target
    logger.info("downloading %s to %s", url, target)
    with atomic_path(target) as tmp:
        with urllib.request.urlopen(url, timeout=timeout_s) as response, open(tmp, "wb") as f:
            while chunk := response.read(1 << 20):
                f.write(chunk)
        digest = sha256_file(tmp)
        if digest != sha256:
            raise CheckpointError(f"{url}: sha256 {digest} does not match the expected {sha256}")
    return target


# Any supported file -> a preset with its weights.


def _asdlab_metadata(path: Path) -> dict[str, Any] | None:
    """`save_encoder` metadata, or None when `path` is not such a file (e.g. a Hugging Face copy)."""
    if not (path.is_file() and path.suffix == ".safetensors"):
        return None
    try:
        return read_encoder_metadata(path)
    except CheckpointError:
        return None


def load_encoder_weights(path: str | os.PathLike, preset: str, **overrides: Any) -> tuple[nn.Module, str]:
    """Build the encoder preset `preset` with the weights in `path`, whatever their format.

    Formats: asdlab's own safetensors (`save_encoder`, any preset); a released EAT / SSLAM file or
    Hugging Face copy (EAT presets, student weights); a released BEATs file (BEATs presets,
    `beats_checkpoint`); the EfficientAT state dict (`mobilenet-mn04`).

    Args:
        path: the weights file (or a Hugging Face snapshot folder).
        preset: registry name the weights must fit.
        **overrides: constructor overrides of the preset (e.g. `drop_path=0.1`).

    Returns:
        (encoder in eval mode on the CPU, format): format is "asdlab", a `CheckpointReport.source`
        ("fairseq-pretrained", "fairseq-finetuned", "hf"), "beats" / "beats-finetuned" or "efficientat".

    Raises:
        CheckpointError: unreadable file, a file made for another preset, or keys that do not fit.
    """
    path = Path(path)
    metadata = _asdlab_metadata(path)
    if metadata is not None:
        if metadata["preset"] != preset:
            raise CheckpointError(f"{path}: holds a {metadata['preset']!r} encoder, not {preset!r}")
        return load_encoder(path, **overrides), "asdlab"
    if preset in EAT_PRESETS or preset in BEATS_PRESETS:
        if preset in EAT_PRESETS:
            encoder, report = load_eat_checkpoint(path, preset=preset)
            source = report.source
        else:
            encoder, beats_report = load_beats_checkpoint(path, preset=preset)
            source = "beats-finetuned" if beats_report.finetuned else "beats"
        if overrides:  # rebuild with the overrides (e.g. drop_path); the shapes are the preset's
            state = encoder.state_dict()
            encoder = create_encoder(preset, **overrides)
            encoder.load_state_dict(state, strict=True)
        return encoder.eval(), source
    if preset == "mobilenet-mn04":
        return load_mn04_weights(path, model=create_encoder(preset, **overrides)), "efficientat"
    if not path.exists():
        raise CheckpointError(f"{path}: no such weights file")
    raise CheckpointError(f"{path}: {preset!r} loads only asdlab encoder files (written by save_encoder)")

