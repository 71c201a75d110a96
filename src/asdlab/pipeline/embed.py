"""Stage `embed`: every clip of a dataset root -> one embeddings table (`.npz`) + JSON metadata, resumably.

Clips are embedded in fixed chunks of records; each finished chunk is written atomically into
`<out>.partial/`, keyed by a hash of the settings and the clip list. A rerun after a crash continues
after the last finished chunk and writes the same table as an uninterrupted run; a rerun with other
settings or clips refuses to mix them. The final table and `<out stem>.json` are written atomically,
then the partial folder is removed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from asdlab import __version__
from asdlab._io import atomic_path, atomic_write_text, sha256_file
from asdlab.data.index import index_dataset
from asdlab.data.records import ClipRecord, Split
from asdlab.embeddings.extract import (
    ClipFailure,
    EmbeddedClips,
    Precision,
    ProgressCallback,
    iter_embedded_chunks,
    resolve_device,
    resolve_inference_precision,
)
from asdlab.embeddings.table import EmbeddingTable
from asdlab.encoders.backbone import Pooling, build_backbone
from asdlab.errors import ConfigError, DataError
from asdlab.features.normalize import EAT_TARGET_FRAMES

__all__ = ["EmbedConfig", "EmbedResult", "embed_dataset", "partial_dir", "metadata_path"]

logger = logging.getLogger(__name__)

_FORMAT = "asdlab-embeddings"
_FORMAT_VERSION = 1
_STATE_FILE = "state.json"


@dataclass(frozen=True)
class EmbedConfig:
    """What decides the embeddings (see `asdlab.encoders.backbone.build_backbone` for each field).

    Attributes:
        backbone: encoder preset name ("eat-base", "mobilenet-mn04", ...).
        pooling: "cls" / "mean" / "both" for EAT; None = the backbone's default.
        weights: weights file or folder; None = random initialisation.
        sample_rate: Hz the clips are loaded at; None = the backbone's (16000).
        target_frames: EAT: frames each clip is padded / cropped to; None = all frames.
        mask_padding: EAT: ignore patches made only of padding.
        duration_s: pad / crop every waveform to this length first; None keeps each clip's own.
        seed: initialisation seed when there are no weights (a resumed run must rebuild the same model).
        encoder_options: constructor overrides of the preset.
        model_dir: a fine-tuned model folder (`asdlab finetune`); replaces `backbone`, `pooling`,
            `weights`, `target_frames` and `encoder_options`, which the folder fixes.
    """

    backbone: str
    pooling: Pooling | None = None
    weights: str | None = None
    sample_rate: int | None = None
    target_frames: int | None = EAT_TARGET_FRAMES
    mask_padding: bool = False
    duration_s: float | None = None
    seed: int = 0
    encoder_options: dict[str, Any] = field(default_factory=dict)
    model_dir: str | None = None


@dataclass(frozen=True)
class EmbedResult:
    """What `embed_dataset` wrote.

    Attributes:
        table_path: the embeddings table (`.npz`).
        metadata_path: its JSON sidecar.
        table: the table written.
        failures: clips skipped, with the problem.
        resumed_clips: clips whose embeddings came from an earlier, interrupted run.
        metadata: the sidecar's content.
    """

    table_path: Path
    metadata_path: Path
    table: EmbeddingTable
    failures: tuple[ClipFailure, ...]
    resumed_clips: int
    metadata: dict[str, Any]


def partial_dir(out_path: str | os.PathLike) -> Path:
    """Folder of finished chunks beside `out_path` while a run is unfinished (`FILE.npz.partial`)."""
    out_path = Path(out_path)
    return out_path.with_name(out_path.name + ".partial")


def metadata_path(out_path: str | os.PathLike) -> Path:
    """The JSON sidecar of a table (`FILE.npz` -> `FILE.json`)."""
    return Path(out_path).with_suffix(".json")


def _weights_sha256(path: Path) -> str:
    """SHA-256 of a weights file; for a folder, of the sorted (name, SHA-256) of its files."""
    if path.is_file():
        return sha256_file(path)
    digest = hashlib.sha256()
    for item in sorted(p for p in path.iterdir() if p.is_file()):
        digest.update(f"{item.name}\0{sha256_file(item)}\n".encode())
    return digest.hexdigest()


def _key(settings: dict[str, Any], clips: list[str]) -> str:
    text = json.dumps({"settings": settings, "clips": clips}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _chunk_name(start: int, stop: int) -> str:
    return f"chunk-{start:08d}-{stop:08d}.npz"


def _open_partial(folder: Path, key: str, settings: dict[str, Any], n_clips: int, *, restart: bool) -> None:
    """Make `folder` hold this run's partial state: keep a matching one, refuse (or with `restart` drop) another."""
    state_path = folder / _STATE_FILE
    if folder.exists():
        try:
            state = json.loads(state_path.read_text())
        except (OSError, json.JSONDecodeError):
            state = {}
        # Without its state.json a folder holds nothing to trust: the state is written before any chunk,
        # so chunks without it are the remains of a finished run's clean-up that was killed.
        if restart or not state:
            logger.info("%s: discarding earlier partial state", folder)
            shutil.rmtree(folder)
        elif state.get("key") != key:
            old = state.get("settings", {})
            changed = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
            detail = f"settings {', '.join(changed)} differ" if changed else "the clip list differs"
            raise ConfigError(
                f"{folder}: holds partial embeddings from another run ({detail}); "
                "rerun with restart (--restart) to discard them, or write to another output"
            )
    if not folder.exists():
        folder.mkdir(parents=True)
        state = {"format": _FORMAT + "-partial", "key": key, "settings": settings, "n_clips": n_clips}
        atomic_write_text(state_path, json.dumps(state, indent=2, sort_keys=True, default=str))


def _finished_chunks(folder: Path) -> list[tuple[int, int, Path]]:
    """(start, stop, file) of the finished chunks, contiguous from record 0 (stops at the first gap)."""
    chunks, expected = [], 0
    for path in sorted(folder.glob("chunk-*.npz")):  # zero-padded names sort in record order
        start, stop = (int(part) for part in path.stem.split("-")[1:3])
        if start != expected:
            break
        chunks.append((start, stop, path))
        expected = stop
    return chunks


def _load_chunk(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in ("embeddings", "kept", "failed", "problems")}
    except (OSError, ValueError, KeyError) as error:
        raise DataError(f"{path}: unreadable partial chunk ({error}); rerun with restart") from error


def _write_chunk(
    folder: Path, start: int, chunk: Sequence[ClipRecord], clips: EmbeddedClips, embed_dim: int
) -> None:
    """Write the chunk of records [start, start + len(chunk)): embeddings, kept and failed record indices."""
    position = {id(record): i for i, record in enumerate(chunk)}
    kept = np.array([start + position[id(r)] for r in clips.records], dtype=np.int64)
    failed_at = {Path(r.path): start + i for i, r in enumerate(chunk)}
    embeddings = clips.embeddings if len(clips.records) else np.zeros((0, embed_dim), np.float32)
    with atomic_path(folder / _chunk_name(start, start + len(chunk)), suffix=".npz") as tmp:
        np.savez(
            tmp,
            embeddings=embeddings.astype(np.float32),
            kept=kept,
            failed=np.array([failed_at[f.path] for f in clips.failures], dtype=np.int64),
            problems=np.array([f.problem for f in clips.failures], dtype=np.str_),
        )


def _check_device(device: str | torch.device) -> torch.device:
    try:
        device = resolve_device(device)
    except RuntimeError as error:
        raise ConfigError(f"device {str(device)!r}: {error}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {str(device)!r}: no CUDA device is available")
    return device


def embed_dataset(
    data_root: str | os.PathLike,
    out_path: str | os.PathLike,
    config: EmbedConfig,
    *,
    splits: Iterable[Split] | None = None,
    machines: Iterable[str] | None = None,
    batch_size: int = 16,
    device: str | torch.device = "cpu",
    chunk_batches: int = 16,
    restart: bool = False,
    progress: ProgressCallback | None = None,
    num_workers: int | None = 0,
    precision: Precision = "auto",
) -> EmbedResult:
    """Embed every clip under `data_root` into one table at `out_path`, resuming an interrupted run.

    Args:
        data_root: a dataset root in any layout `index_dataset` reads.
        out_path: the table to write (`.npz`); its metadata goes to `metadata_path(out_path)`.
        config: backbone and input settings.
        splits: keep only these splits ("train", "test"); None = all.
        machines: keep only these machine types; None = all.
        batch_size: clips per forward pass.
        device: where the backbone runs ("cpu", "cuda", "cuda:1", or "auto": the GPU when there is one).
        chunk_batches: batches per chunk written to the partial folder (what a crash can lose).
        restart: discard partial state of an earlier run even when its settings match.
        progress: called as `progress(clips_done, clips_total)`, counting resumed clips as done.
        num_workers: threads decoding clips ahead of the model (see `embed_clips`); None = 0 on a
            CPU, on a GPU one per CPU core but one (at most 16), to keep it fed.
        precision: "auto" (bf16 autocast on a GPU, fp32 on a CPU), "fp32" or "bf16".

    Returns:
        `EmbedResult`.

    Raises:
        ConfigError: bad settings, an unavailable device, or partial state from other settings.
        CheckpointError: weights that cannot be read or do not fit the backbone.
        DataError: no clips found, or none could be embedded.
    """
    out_path = Path(out_path)
    if out_path.suffix != ".npz":
        raise ConfigError(f"{out_path}: the output must be a .npz file")
    if batch_size < 1 or chunk_batches < 1:
        raise ConfigError(f"batch_size ({batch_size}) and chunk_batches ({chunk_batches}) must be >= 1")
    device = _check_device(device)
    precision = resolve_inference_precision(precision, device)
    if num_workers is None:
        num_workers = min(16, max((os.cpu_count() or 1) - 1, 0)) if device.type == "cuda" else 0
    if num_workers < 0:
        raise ConfigError(f"num_workers must be >= 0, got {num_workers}")
    root = Path(data_root)
    splits = None if splits is None else tuple(splits)
    machines = None if machines is None else tuple(machines)
    records = index_dataset(root, machines=machines, splits=splits)

    weights = None if config.weights is None else Path(config.weights)
    if config.model_dir is not None:
        from asdlab.pipeline.finetune import load_finetuned_backbone  # the fine-tuning stage owns its format

        weights = Path(config.model_dir)
        backbone = load_finetuned_backbone(weights)
    else:
        backbone = build_backbone(
            config.backbone, pooling=config.pooling, weights=weights, sample_rate=config.sample_rate,
            target_frames=config.target_frames, mask_padding=config.mask_padding, seed=config.seed,
            **config.encoder_options,
        )
    settings = {
        **backbone.settings(),
        "weights_sha256": None if weights is None else _weights_sha256(weights),
        "seed": None if weights is not None else config.seed,
        "duration_s": config.duration_s,
        "encoder_options": config.encoder_options,
        "asdlab_version": __version__,
    }
    clip_names = [os.path.relpath(r.path, root) for r in records]
    key = _key(settings, clip_names)
    folder = partial_dir(out_path)
    _open_partial(folder, key, settings, len(records), restart=restart)

    finished = _finished_chunks(folder)
    resumed = finished[-1][1] if finished else 0
    total = len(records)
    if resumed:
        logger.info("%s: resuming after %d of %d clips", folder, resumed, total)
    if progress is not None:
        progress(resumed, total)
    chunk_size = batch_size * chunk_batches

    def chunk_progress(clips_done: int, _: int) -> None:
        if progress is not None:
            progress(resumed + clips_done, total)

    # One data pipeline for every remaining chunk (its workers keep decoding across chunk ends).
    chunks = iter_embedded_chunks(
        records[resumed:], backbone, chunk_size=chunk_size, sample_rate=backbone.sample_rate,
        duration_s=config.duration_s, batch_size=batch_size, device=device, progress=chunk_progress,
        num_workers=num_workers, precision=precision,
    )
    for offset, clips in chunks:
        start = resumed + offset
        chunk = records[start : start + chunk_size]
        _write_chunk(folder, start, chunk, clips, backbone.embed_dim)

    # The table is always assembled from the chunk files, so resumed and uninterrupted runs agree.
    rows = [_load_chunk(path) for _, _, path in _finished_chunks(folder)]
    kept = np.concatenate([a["kept"] for a in rows]).astype(np.int64)
    failures = tuple(
        ClipFailure(Path(records[i].path), str(problem))
        for a in rows for i, problem in zip(a["failed"].tolist(), a["problems"].tolist(), strict=True)
    )
    for a in rows:  # clips met by the interrupted run were reported there; report them in this one too
        for i, problem in zip(a["failed"].tolist(), a["problems"].tolist(), strict=True):
            if i < resumed:
                logger.warning("skipping %s: %s", records[i].path, problem)
    if len(kept) == 0:
        raise DataError(f"{root}: none of the {total} clips could be embedded ({len(failures)} failed)")
    table = EmbeddingTable.from_records([records[i] for i in kept], np.concatenate([a["embeddings"] for a in rows]))

    metadata = {
        "format": _FORMAT,
        "version": _FORMAT_VERSION,
        "key": key,
        "settings": settings,
        "weights": None if weights is None else str(weights),
        "data_root": str(root),
        "splits": splits,
        "machines": machines,
        "n_clips": len(table),
        "failures": [{"path": str(f.path), "problem": f.problem} for f in failures],
        "batch_size": batch_size,
        "device": str(device),
        "precision": precision,
        "versions": {
            "asdlab": __version__,
            "torch": torch.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
        },
    }
    table.save(out_path)
    sidecar = metadata_path(out_path)
    atomic_write_text(sidecar, json.dumps(metadata, indent=2, sort_keys=True, default=str) + "\n")
    # Renamed first, so a kill during the removal leaves no partial folder that looks unfinished.
    finished = folder.with_name(folder.name + ".finished")
    shutil.rmtree(finished, ignore_errors=True)
    folder.rename(finished)
    shutil.rmtree(finished)
    logger.info("%s: %d clips embedded, %d skipped", out_path, len(table), len(failures))
    return EmbedResult(
        table_path=out_path, metadata_path=sidecar, table=table, failures=failures,
        resumed_clips=resumed, metadata=metadata,
    )
