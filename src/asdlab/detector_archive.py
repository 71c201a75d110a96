"""One-file detectors: `export_detector` packs a detector into a zip of JSON, safetensors and the training
embeddings (`.asdlab`); `read_detector_archive` checks every member before anything is loaded.

No member can execute code: weights are safetensors (a JSON header and raw tensor bytes), the training
embeddings are an `.npz` whose arrays are plain numbers and strings (read with `allow_pickle=False`),
everything else is JSON. A manifest lists every member with its size and SHA-256; loading refuses a
member that is not listed, not allowed, outside the archive's own folders, holds a pickle, or has the
wrong shape, and names it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import struct
import tempfile
import weakref
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from asdlab import __version__
from asdlab._io import atomic_path
from asdlab.detector import DETECTOR_FILE, Detector, load_detector
from asdlab.errors import CheckpointError, ConfigError

__all__ = ["ARCHIVE_SUFFIX", "MANIFEST_FILE", "export_detector", "read_detector_archive", "is_detector_archive"]

ARCHIVE_SUFFIX = ".asdlab"
MANIFEST_FILE = "manifest.json"
_FORMAT = "asdlab-detector-archive"
_VERSION = 1
_TRAIN_FILE = "train_embeddings.npz"
_MODEL_DIR = "model"
_FINETUNED_DESCRIPTION = "model.json"
# Bounds that keep a hostile archive from filling the disk or the memory (a zip bomb).
_MAX_MEMBER_BYTES = 8 << 30
_MAX_HEADER_BYTES = 100 << 20  # a safetensors JSON header
_MAX_RATIO = 1000  # uncompressed / compressed size of a member
_PICKLE_PROTOCOL_MARK = 0x80  # every pickle of protocol >= 2 starts with PROTO (0x80) and the protocol number
_SAFETENSORS_DTYPES = {
    "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1,
}
_TABLE_COLUMNS = ("embeddings", "path", "machine", "section", "split", "label", "domain", "attributes")
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # zip entries carry no clock time, so equal detectors give equal files


def is_detector_archive(path: str | os.PathLike) -> bool:
    """Whether `path` is a zip file with a detector archive's manifest (an embeddings `.npz` is a zip too)."""
    try:
        with zipfile.ZipFile(path) as zf:
            return MANIFEST_FILE in zf.namelist()
    except (zipfile.BadZipFile, OSError):
        return False


# ---------------------------------------------------------------------------------------------- export


def _model_members(detector: Detector) -> tuple[dict[str, bytes], dict[str, Any]]:
    """The model files as archive members, and the backbone record pointing at them (paths relative)."""
    from asdlab.pipeline.config_io import to_dict

    spec = detector.backbone
    record = to_dict(spec)
    members: dict[str, bytes] = {}
    if spec.model_dir is not None:
        folder = Path(spec.model_dir)
        description = json.loads((folder / _FINETUNED_DESCRIPTION).read_text())
        base = description.get("base") or {}
        if base.get("path") is not None:
            raise CheckpointError(
                f"{folder / _FINETUNED_DESCRIPTION}: a {description.get('mode')} model reads its base encoder "
                f"from {base['path']}, outside the detector; export supports fully fine-tuned models"
            )
        members[f"{_MODEL_DIR}/{_FINETUNED_DESCRIPTION}"] = (folder / _FINETUNED_DESCRIPTION).read_bytes()
        for name in sorted(set(description.get("files", {}).values())):
            if not name.endswith(".safetensors") or "/" in name or "\\" in name:
                raise CheckpointError(f"{folder / _FINETUNED_DESCRIPTION}: model file {name!r} is not a "
                                      "safetensors file of the folder")
            members[f"{_MODEL_DIR}/{name}"] = (folder / name).read_bytes()
        record.update(model_dir=_MODEL_DIR, weights=None)
    elif spec.weights is not None:
        members.update(_weights_member(Path(spec.weights), spec.preset))
        record.update(weights=next(iter(members)))
    return members, record


def _weights_member(path: Path, preset: str) -> dict[str, bytes]:
    """An encoder weights file as one safetensors member; other formats (pickle-based `.pt`) are converted."""
    from asdlab.encoders.checkpoints import load_encoder_weights, read_encoder_metadata, save_encoder

    try:
        read_encoder_metadata(path)
        return {f"{_MODEL_DIR}/{path.stem}.safetensors": path.read_bytes()}
    except CheckpointError:
        pass
    encoder, source = load_encoder_weights(path, preset)
    with tempfile.TemporaryDirectory() as tmp:
        converted = Path(tmp) / "encoder.safetensors"
        save_encoder(encoder, converted, preset=preset, source=f"{source}: {path.name}")
        return {f"{_MODEL_DIR}/{path.stem}.safetensors": converted.read_bytes()}


def export_detector(detector: str | os.PathLike | Detector, out_path: str | os.PathLike) -> Path:
    """Write a detector (folder, archive or `Detector`) as one `.asdlab` file, atomically.

    Weights in another format than safetensors (a released `.pt` checkpoint) are converted; the scores
    of the file equal those of the folder bit for bit.

    Args:
        detector: what to export.
        out_path: the file to write (conventionally `*.asdlab`).

    Returns:
        `out_path`.

    Raises:
        CheckpointError: not a detector, or a model that reads files from outside its folder.
        ConfigError: `out_path` is an existing folder.
    """
    if not isinstance(detector, Detector):
        detector = load_detector(detector)
    out_path = Path(out_path)
    if out_path.is_dir():
        raise ConfigError(f"{out_path} is a folder; give the file to write, e.g. {out_path / 'detector.asdlab'}")
    members, backbone = _model_members(detector)
    record = json.loads((detector.directory / DETECTOR_FILE).read_text())
    record["backbone"] = backbone
    members[DETECTOR_FILE] = (json.dumps(record, indent=2, default=str) + "\n").encode()
    members[_TRAIN_FILE] = (detector.directory / _TRAIN_FILE).read_bytes()
    manifest = {
        "format": _FORMAT,
        "version": _VERSION,
        "asdlab_version": __version__,
        "members": {
            name: {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()} for name, data in sorted(members.items())
        },
    }
    with atomic_path(out_path, suffix=ARCHIVE_SUFFIX) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for name, data in [(MANIFEST_FILE, (json.dumps(manifest, indent=2) + "\n").encode()), *sorted(members.items())]:
                info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16  # a plain file
                archive.writestr(info, data)
    return out_path


# ---------------------------------------------------------------------------------------------- checks


def _refuse(archive: Path, member: str, problem: str) -> CheckpointError:
    return CheckpointError(f"{archive}: member {member!r}: {problem}")


def _check_name(archive: Path, info: zipfile.ZipInfo) -> None:
    name = info.filename
    parts = PurePosixPath(name).parts
    if (not name or name.startswith("/") or "\\" in name or ":" in name or ".." in parts or "." in parts
            or name.endswith("/") or "" in name.split("/")):
        raise _refuse(archive, name, "its path escapes the archive's folder or is not a plain file path")
    if (info.external_attr >> 16) & 0o170000 == 0o120000:
        raise _refuse(archive, name, "is a symbolic link")
    if info.flag_bits & 0x1:
        raise _refuse(archive, name, "is encrypted")
    allowed = name in (MANIFEST_FILE, DETECTOR_FILE, _TRAIN_FILE) or (
        len(parts) == 2 and parts[0] == _MODEL_DIR and parts[1].endswith((".json", ".safetensors"))
    )
    if not allowed:
        raise _refuse(archive, name, f"not a member a detector archive has ({MANIFEST_FILE}, {DETECTOR_FILE}, "
                                     f"{_TRAIN_FILE}, {_MODEL_DIR}/*.json, {_MODEL_DIR}/*.safetensors)")


def _read_member(archive: Path, zf: zipfile.ZipFile, info: zipfile.ZipInfo, size: int) -> bytes:
    if info.file_size != size or size > _MAX_MEMBER_BYTES:
        raise _refuse(archive, info.filename, f"{info.file_size} bytes, the manifest says {size}")
    if size > 1 << 20 and size > _MAX_RATIO * max(info.compress_size, 1):
        raise _refuse(archive, info.filename, "compressed beyond any real model file (a zip bomb?)")
    with zf.open(info) as f:
        data = f.read(size + 1)
    if len(data) != size:
        raise _refuse(archive, info.filename, f"holds {len(data)} bytes, the manifest says {size}")
    return data


def _check_not_pickle(archive: Path, name: str, data: bytes) -> None:
    if len(data) >= 2 and data[0] == _PICKLE_PROTOCOL_MARK and data[1] <= 5:
        raise _refuse(archive, name, "holds a pickle, which could run code when loaded; refused")


def _check_json(archive: Path, name: str, data: bytes) -> dict[str, Any]:
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise _refuse(archive, name, f"not valid JSON ({error})") from None
    if not isinstance(value, dict):
        raise _refuse(archive, name, f"expected a JSON object, got {type(value).__name__}")
    return value


def _check_safetensors(archive: Path, name: str, data: bytes) -> None:
    """The header is JSON describing tensors that exactly tile the rest of the file."""
    if len(data) < 8:
        raise _refuse(archive, name, "too short for a safetensors file")
    (header_size,) = struct.unpack("<Q", data[:8])
    if header_size > min(_MAX_HEADER_BYTES, len(data) - 8):
        raise _refuse(archive, name, "not a safetensors file (header size out of range)")
    header = _check_json(archive, name, data[8 : 8 + header_size])
    body = len(data) - 8 - header_size
    spans = []
    for key, entry in header.items():
        if key == "__metadata__":
            if not isinstance(entry, dict) or not all(isinstance(v, str) for v in entry.values()):
                raise _refuse(archive, name, "safetensors metadata must map names to strings")
            continue
        try:
            itemsize = _SAFETENSORS_DTYPES[entry["dtype"]]
            shape = [int(d) for d in entry["shape"]]
            start, stop = (int(o) for o in entry["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise _refuse(archive, name, f"tensor {key!r}: not a safetensors entry of a known dtype "
                                         f"({sorted(_SAFETENSORS_DTYPES)})") from None
        if any(d < 0 for d in shape) or not 0 <= start <= stop <= body:
            raise _refuse(archive, name, f"tensor {key!r}: shape {shape} or offsets [{start}, {stop}] out of range")
        if stop - start != int(np.prod(shape, dtype=np.int64)) * itemsize:
            raise _refuse(archive, name, f"tensor {key!r}: shape {shape} ({entry['dtype']}) does not match its "
                                         f"{stop - start} bytes")
        spans.append((start, stop))
    position = 0
    for start, stop in sorted(spans):
        if start != position:
            raise _refuse(archive, name, "tensor data overlaps or leaves gaps")
        position = stop
    if position != body:
        raise _refuse(archive, name, f"{body - position} bytes after the last tensor")


def _check_embeddings(archive: Path, name: str, data: bytes) -> int:
    """Plain arrays only (no object dtype, which NumPy stores as a pickle), with the table's shapes.

    Returns:
        the embedding size D.
    """
    try:
        inner = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise _refuse(archive, name, "not an .npz file") from None
    shapes: dict[str, tuple[int, ...]] = {}
    with inner:
        for info in inner.infolist():
            column = info.filename.removesuffix(".npy")
            if column not in _TABLE_COLUMNS or column in shapes or not info.filename.endswith(".npy"):
                raise _refuse(archive, name, f"holds {info.filename!r}; an embeddings table holds "
                                             f"{', '.join(c + '.npy' for c in _TABLE_COLUMNS)}")
            with inner.open(info) as f:
                try:
                    version = np.lib.format.read_magic(f)
                    read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                                   else np.lib.format.read_array_header_2_0)
                    shape, _, dtype = read_header(f)  # the header only: the data is not read
                except ValueError as error:
                    raise _refuse(archive, name, f"{info.filename}: not a .npy array ({error})") from None
            if dtype.hasobject:
                raise _refuse(archive, name, f"{info.filename} is an object array, stored as a pickle; refused")
            expected = np.float32 if column == "embeddings" else np.str_
            if not np.issubdtype(dtype, expected):
                raise _refuse(archive, name, f"{info.filename} has dtype {dtype}, expected {np.dtype(expected).kind}")
            shapes[column] = shape
    missing = [c for c in _TABLE_COLUMNS if c not in shapes]
    if missing:
        raise _refuse(archive, name, f"lacks {', '.join(missing)}")
    if len(shapes["embeddings"]) != 2 or shapes["embeddings"][0] == 0:
        raise _refuse(archive, name, f"embeddings have shape {shapes['embeddings']}, expected (N, D) with N > 0")
    n = shapes["embeddings"][0]
    for column in _TABLE_COLUMNS[1:]:
        if shapes[column] != (n,):
            raise _refuse(archive, name, f"column {column!r} has shape {shapes[column]}, expected ({n},)")
    return shapes["embeddings"][1]


def _check_backbone_paths(archive: Path, record: dict[str, Any], names: set[str]) -> None:
    backbone = record.get("backbone")
    if not isinstance(backbone, dict):
        raise _refuse(archive, DETECTOR_FILE, "has no backbone description")
    for key, must_be in (("weights", "file"), ("model_dir", "folder")):
        value = backbone.get(key)
        if value is None:
            continue
        target = str(value)
        inside = target == _MODEL_DIR if must_be == "folder" else target in names and target.startswith(_MODEL_DIR + "/")
        if not inside:
            raise _refuse(archive, DETECTOR_FILE, f"backbone.{key} {target!r} is not a {must_be} inside the archive")


def _check_model_description(archive: Path, description: dict[str, Any], names: set[str]) -> None:
    member = f"{_MODEL_DIR}/{_FINETUNED_DESCRIPTION}"
    base = description.get("base") or {}
    if base.get("path") is not None:
        raise _refuse(archive, member, f"reads a base encoder from {base['path']!r}, outside the archive")
    files = description.get("files")
    if not isinstance(files, dict):
        raise _refuse(archive, member, "has no 'files' table")
    for role, file_name in files.items():
        if f"{_MODEL_DIR}/{file_name}" not in names:
            raise _refuse(archive, member, f"its {role} file {file_name!r} is not in the archive")


# ---------------------------------------------------------------------------------------------- load


def read_detector_archive(path: str | os.PathLike) -> Detector:
    """Check every member of an `.asdlab` file, then load the detector it holds.

    The members are unpacked into a private temporary folder, removed when the `Detector` is
    garbage-collected. The model is built once here, so weights that do not fit are refused now.

    Raises:
        CheckpointError: not a zip, another format version, or a member that is missing, unlisted, not
            allowed, outside the archive, a pickle, corrupt (size, SHA-256) or of the wrong shape; the
            message names the member.
    """
    archive = Path(path)
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as error:
        raise CheckpointError(f"{archive}: not a detector archive (not a zip file: {error})") from None
    with zf:
        infos = zf.infolist()
        by_name: dict[str, zipfile.ZipInfo] = {}
        for info in infos:
            _check_name(archive, info)
            if info.filename in by_name:
                raise _refuse(archive, info.filename, "appears twice")
            by_name[info.filename] = info
        if MANIFEST_FILE not in by_name:
            raise CheckpointError(f"{archive}: not a detector archive (no {MANIFEST_FILE}); write one with `asdlab export`")
        manifest_info = by_name[MANIFEST_FILE]
        manifest = _check_json(archive, MANIFEST_FILE, _read_member(archive, zf, manifest_info, manifest_info.file_size))
        if manifest.get("format") != _FORMAT:
            raise _refuse(archive, MANIFEST_FILE, f"format {manifest.get('format')!r}, expected {_FORMAT!r}")
        if manifest.get("version") != _VERSION:
            raise _refuse(archive, MANIFEST_FILE,
                          f"archive format version {manifest.get('version')!r}, this asdlab reads {_VERSION}")
        listed = manifest.get("members")
        if not isinstance(listed, dict):
            raise _refuse(archive, MANIFEST_FILE, "has no 'members' table")
        present = set(by_name) - {MANIFEST_FILE}
        for name in sorted(present - set(listed)):
            raise _refuse(archive, name, f"not listed in {MANIFEST_FILE}")
        for name in sorted(set(listed) - present):
            raise _refuse(archive, name, f"listed in {MANIFEST_FILE} but missing")
        for name in (DETECTOR_FILE, _TRAIN_FILE):
            if name not in present:
                raise _refuse(archive, name, "missing: every detector archive has it")
        contents: dict[str, bytes] = {}
        for name in sorted(present):
            entry = listed[name]
            if not isinstance(entry, dict) or not isinstance(entry.get("size"), int):
                raise _refuse(archive, MANIFEST_FILE, f"entry of {name!r} lacks its size")
            data = _read_member(archive, zf, by_name[name], entry["size"])
            _check_not_pickle(archive, name, data)
            if hashlib.sha256(data).hexdigest() != entry.get("sha256"):
                raise _refuse(archive, name, f"SHA-256 differs from {MANIFEST_FILE} (corrupt or altered)")
            contents[name] = data
    record = _check_json(archive, DETECTOR_FILE, contents[DETECTOR_FILE])
    embed_dim = _check_embeddings(archive, _TRAIN_FILE, contents[_TRAIN_FILE])
    for name, data in contents.items():
        if name.endswith(".safetensors"):
            _check_safetensors(archive, name, data)
        elif name.endswith(".json"):
            _check_json(archive, name, data)
    _check_backbone_paths(archive, record, set(contents))
    if f"{_MODEL_DIR}/{_FINETUNED_DESCRIPTION}" in contents:
        description = _check_json(archive, f"{_MODEL_DIR}/{_FINETUNED_DESCRIPTION}",
                                  contents[f"{_MODEL_DIR}/{_FINETUNED_DESCRIPTION}"])
        _check_model_description(archive, description, set(contents))
    return _unpack_and_load(archive, contents, embed_dim)


def _unpack_and_load(archive: Path, contents: dict[str, bytes], embed_dim: int) -> Detector:
    folder = Path(tempfile.mkdtemp(prefix="asdlab-detector-"))
    try:
        for name, data in contents.items():
            target = (folder / name).resolve()
            if folder.resolve() not in target.parents:  # names were checked; this is the last guard
                raise _refuse(archive, name, "its path escapes the archive's folder")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        try:
            detector = load_detector(folder)
            model = detector.model()
        except (CheckpointError, ConfigError) as error:
            raise CheckpointError(str(error).replace(f"{folder}{os.sep}", f"{archive}: member ")) from None
        if model.embed_dim != embed_dim:
            raise _refuse(archive, _TRAIN_FILE, f"embeddings are {embed_dim}-d but the model gives {model.embed_dim}-d")
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    weakref.finalize(detector, shutil.rmtree, folder, True)
    return detector
