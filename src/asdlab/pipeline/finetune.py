"""Stage (3): fine-tune an encoder on machine-attribute classes and write a model folder (paper Sec. 2.5).

Recipes: "eat" (the paper's: EAT + ArcFace, 20 k steps, batch 32, cosine, peak lr 5e-5, 120 warm-up
steps, mixup + SpecAugment; modes full / lora / probe; any transformer preset: EAT, SSLAM, BEATs),
"two-branch-cnn" (Wilkinghoff's CNN from scratch with sub-cluster AdaCos, mixup / StatEx / FeatEx; the CPU
default) and "mobilenet" (the AudioSet MobileNet mn04 with the paper's adaptation,
`asdlab.training.mobilenet`). The folder holds `model.json`, the weights (only the adapters and new layers
for LoRA and probe), the training log and the resumable checkpoint; `load_finetuned_backbone` rebuilds the
waveform -> embedding `Backbone`, with the level normalisation the training clips had (`model.json` "level").
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from torch.utils.data import Dataset

from asdlab import __version__
from asdlab._io import atomic_path, atomic_write_text, sha256_file
from asdlab.data.dataset import ClipDataset
from asdlab.data.index import index_dataset
from asdlab.encoders.backbone import Backbone, build_backbone
from asdlab.encoders.checkpoints import save_encoder
from asdlab.errors import CheckpointError, ConfigError
from asdlab.features.level import LEVELS, Level
from asdlab.pipeline.config_io import check_resume_settings, write_run_settings
from asdlab.pipeline.finetune_settings import FinetuneSettings, Recipe
from asdlab.training.finetune import AttributeTask, make_eat_backbone
from asdlab.training.labels import LabelMap, build_label_map, find_auxiliary_clips
from asdlab.training.loop import LOG_NAME, TrainProgress, TrainSettings, is_global_zero, train
from asdlab.training.mobilenet import FRAMES_PER_S, MelClips, MobileNetAttributeTask, make_mobilenet_backbone
from asdlab.training.schedules import steps_for_epochs
from asdlab.training.two_branch import TwoBranchTask

__all__ = [
    "MODEL_FILE",
    "SETTINGS_FILE",
    "Recipe",
    "FinetuneSettings",
    "FinetuneResult",
    "run_finetuning",
    "load_finetuned_backbone",
    "read_model_description",
]

logger = logging.getLogger(__name__)

MODEL_FILE = "model.json"
_FORMAT = "asdlab-finetuned"
_ENCODER_FILE = "encoder.safetensors"
_ADAPTERS_FILE = "adapters.safetensors"
_LAYERS_FILE = "embedding_layers.safetensors"  # pooling + projection of EAT models
_HEAD_FILE = "head.safetensors"
SETTINGS_FILE = "finetune_settings.json"  # written when training starts; a resume must match it


@dataclass(frozen=True)
class FinetuneResult:
    """What `run_finetuning` wrote: the model folder, its log, steps done, time, class count."""

    model_dir: Path
    log_path: Path
    steps: int
    wall_s: float
    num_classes: int
    last_logs: Mapping[str, float] | None = None


class _LabelledClips(Dataset):
    """A `ClipDataset` with a class id per clip: items {"waveform", "target"[, "pseudo"]}."""

    def __init__(self, clips: ClipDataset, targets: Sequence[int], pseudo: Sequence[int] | None = None) -> None:
        self.clips = clips
        self.targets = torch.as_tensor(list(targets), dtype=torch.long)
        self.pseudo = None if pseudo is None else torch.as_tensor(list(pseudo), dtype=torch.long)

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        item = {"waveform": self.clips[index]["waveform"], "target": self.targets[index]}
        if self.pseudo is not None:
            item["pseudo"] = self.pseudo[index]
        return item


@torch.no_grad()
def _cluster_unlabelled(task: AttributeTask, clips: ClipDataset, label_map: LabelMap, settings: FinetuneSettings,
                        targets: Sequence[int]) -> list[int]:
    """Stage-1 embeddings of the attribute-less clips, Ward-clustered per class: global cluster id or -1."""
    from asdlab.pseudo.labeling import cluster_embeddings

    backbone = task.backbone.to("cpu").eval()
    pseudo = [-1] * len(clips)
    offset = 0
    for class_id, key in enumerate(label_map.classes):
        if key.attribute != "noAttribute":
            continue
        rows = [i for i, t in enumerate(targets) if t == class_id]
        if len(rows) < 2:
            continue
        embeddings = torch.cat([backbone(torch.stack([clips[i]["waveform"] for i in rows[s:s + 32]]))
                                for s in range(0, len(rows), 32)]).numpy()
        rule = "fixed" if settings.dual_head_clusters else "calinski-harabasz"
        found = cluster_embeddings(embeddings, rule=rule, n_clusters=settings.dual_head_clusters,
                                   min_cluster_size=max(1, min(5, len(rows) // 4)), seed=settings.seed)
        for i, cluster in zip(rows, found.labels.tolist(), strict=True):
            pseudo[i] = offset + int(cluster)
        offset += found.n_clusters
    return pseudo


def _collate(items: Sequence[Mapping[str, Tensor]]) -> dict[str, Tensor]:
    return {key: torch.stack([item[key] for item in items]) for key in items[0]}


def _frames(duration_s: float, sample_rate: int) -> int:
    """EAT input frames of a clip: Kaldi's 25 ms / 10 ms frames, padded to a multiple of 16."""
    from asdlab.features.fbank import count_frames

    frames = count_frames(round(duration_s * sample_rate), sample_frequency=sample_rate)
    return -(-frames // 16) * 16


def _base_record(path: str | None, seed: int) -> dict[str, Any]:
    if path is None:
        return {"path": None, "sha256": None, "seed": seed}
    return {"path": str(Path(path).resolve()), "sha256": sha256_file(path), "seed": None}


def _save_tensors(state: Mapping[str, Tensor], path: Path) -> None:
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    with atomic_path(path, suffix=".safetensors") as tmp:
        save_file(tensors, str(tmp))


def _prefixed(module: nn.Module | None, prefix: str) -> dict[str, Tensor]:
    return {} if module is None else {f"{prefix}.{k}": v for k, v in module.state_dict().items()}


def _build_eat(settings: FinetuneSettings, *, weights: str | None, target_frames: int | None) -> Backbone:
    return make_eat_backbone(
        settings.preset, pooling=settings.pooling, projection_dim=settings.projection_dim,
        projection_layers=settings.projection_layers, weights=weights, target_frames=target_frames,
        seed=settings.seed, drop_path=settings.drop_path,
    )


def _build_mobilenet(settings: FinetuneSettings, *, weights: str | None) -> Backbone:
    return make_mobilenet_backbone(
        settings.preset, pooling=settings.pooling, embed_layer=settings.embed_layer,
        projection_dim=settings.projection_dim, projection_layers=settings.projection_layers, weights=weights,
        sample_rate=settings.sample_rate, seed=settings.seed,
    )


def run_finetuning(
    data_root: str | os.PathLike,
    out_dir: str | os.PathLike,
    settings: FinetuneSettings = FinetuneSettings(),
    *,
    init_weights: str | os.PathLike | None = None,
    pseudo_attributes: str | os.PathLike | Mapping[str, str] | None = None,
    resume: bool = False,
    progress: Callable[[TrainProgress], None] | None = None,
    stop_after: int | None = None,
) -> FinetuneResult:
    """Fine-tune on the training clips under `data_root` and write the model folder `out_dir`.

    Args:
        data_root: dataset root (any layout `index_dataset` reads).
        out_dir: the model folder (model.json, weights, train_log.csv, last.ckpt).
        settings: see `FinetuneSettings`.
        init_weights: transformers: the encoder to start from (a DAP `encoder.safetensors`, a released
            EAT / SSLAM / BEATs checkpoint); MobileNet: "pretrained" (the AudioSet file, found offline), its
            path, or an asdlab mn04 file; None = random initialisation from `settings.seed`.
        pseudo_attributes: `pseudo_attributes.csv` (or a mapping) naming a pseudo-attribute for
            attribute-less clips.
        resume: continue an interrupted run from `out_dir/last.ckpt`; its settings must be the
            ones it started with (`out_dir/finetune_settings.json`) except hardware and logging.
        progress: called with a `TrainProgress` every `log_every` updates.
        stop_after: stop after this many updates of this call (checkpoint and model written), to
            continue with `resume`; None = run to the end. Not with dual-head training.

    With several processes (DDP, e.g. `torchrun`), every rank trains and only rank 0 writes files.

    Returns:
        `FinetuneResult`.

    Raises:
        ConfigError: bad settings, LoRA without peft, or `resume` with other settings.
        DataError: no training clips.
        CheckpointError: unreadable init weights or a checkpoint that does not fit.
    """
    settings = settings.resolved()
    if settings.dual_head and stop_after is not None:
        raise ConfigError("stop_after is not available with dual_head training")
    out_dir = Path(out_dir)
    if resume:
        check_resume_settings(out_dir / SETTINGS_FILE, settings)
    init = None if init_weights is None else str(init_weights)
    if init is not None and settings.recipe == "two-branch-cnn":
        raise ConfigError("recipe two-branch-cnn trains from scratch; it takes no init weights")
    if settings.mode in ("lora", "probe") and init is None:
        logger.warning("%s mode without init weights adapts a randomly initialised encoder", settings.mode)
    pseudo: Mapping[str, str] | None = None
    if isinstance(pseudo_attributes, Mapping):
        pseudo = pseudo_attributes
    elif pseudo_attributes is not None:
        from asdlab.pseudo.files import read_pseudo_attributes

        pseudo = read_pseudo_attributes(pseudo_attributes)

    records = index_dataset(data_root, splits=("train",))
    if settings.auxiliary:
        records += find_auxiliary_clips(data_root, machines={r.machine for r in records})
    clips = ClipDataset(records, sample_rate=settings.sample_rate, duration_s=settings.duration_s, fit="pad",
                        cache_dir=settings.cache_dir, level=settings.level, num_workers=settings.num_workers)
    for path, problem in clips.failures:
        logger.warning("skipping %s: %s", path, problem)
    label_map = build_label_map(clips.records, pseudo_attributes=pseudo, granularity=settings.granularity,
                                use_domain=settings.use_domain)
    targets = label_map.labels(clips.records, pseudo=pseudo)
    logger.info("%d training clips in %d classes (%d with pseudo-attributes)", len(targets),
                label_map.num_classes, label_map.pseudo_attributes)

    steps = steps_for_epochs(settings.steps, settings.epochs, len(targets), settings.batch_size)
    if steps != settings.steps:
        logger.info("%d updates for %d clips (epochs=%s, at most %d)", steps, len(targets), settings.epochs,
                    settings.steps)
    target_frames = settings.target_frames
    if settings.recipe == "mobilenet":
        if init is None:
            logger.warning("recipe mobilenet without init weights trains from a random start; "
                           "give 'pretrained' for the AudioSet weights")
        backbone = _build_mobilenet(settings, weights=init)
        crop = None if settings.crop_s is None else round(settings.crop_s * FRAMES_PER_S)
        task: nn.Module = MobileNetAttributeTask(
            backbone, label_map.num_classes, head=settings.head, head_scale=settings.head_scale,
            head_margin=settings.head_margin, sub_clusters=settings.sub_clusters, layer_decay=settings.layer_decay,
            crop_frames=crop, mixup_p=settings.mixup_p, mixup_alpha=settings.mixup_alpha,
            time_masks=settings.spec_time_masks,
            time_width=settings.spec_time_width if settings.spec_time_width is not None else 20,
            freq_masks=settings.spec_freq_masks, freq_width=settings.spec_freq_width, seed=settings.seed,
        )
    elif settings.recipe == "eat":
        if target_frames is None:
            target_frames = _frames(clips.duration_s, settings.sample_rate)
        backbone = _build_eat(settings, weights=init, target_frames=target_frames)
        time_width = settings.spec_time_width if settings.spec_time_width is not None else max(target_frames // 10, 1)
        task = AttributeTask(
            backbone, label_map.num_classes, mode=settings.mode, head=settings.head, head_scale=settings.head_scale,
            head_margin=settings.head_margin, sub_clusters=settings.sub_clusters, layer_decay=settings.layer_decay,
            lora_rank=settings.lora_rank, lora_alpha=settings.lora_alpha, lora_mlp=settings.lora_mlp,
            mixup_p=settings.mixup_p, mixup_alpha=settings.mixup_alpha, time_masks=settings.spec_time_masks,
            time_width=time_width, freq_masks=settings.spec_freq_masks, freq_width=settings.spec_freq_width,
            seed=settings.seed, compile_backend="inductor" if settings.compile else None,
        )
    else:
        backbone = build_backbone(settings.preset, sample_rate=settings.sample_rate, seed=settings.seed)
        task = TwoBranchTask(
            backbone.encoder, label_map.num_classes, sub_clusters=settings.sub_clusters, mixup_p=settings.mixup_p,
            statex_p=settings.statex_p, featex_p=settings.featex_p, ssl_weight=settings.ssl_weight,
            seed=settings.seed,
        )

    train_settings = TrainSettings(
        max_steps=steps, batch_size=min(settings.batch_size, len(clips)),
        accumulate_steps=settings.accumulate_steps, lr=settings.lr,
        warmup_steps=settings.warmup_steps, weight_decay=settings.weight_decay, grad_clip=settings.grad_clip,
        betas=(0.9, 0.999), precision=settings.precision, accelerator=settings.accelerator,
        devices=settings.devices, num_nodes=settings.num_nodes, strategy=settings.strategy,
        num_workers=settings.num_workers, checkpoint_every=settings.checkpoint_every,
        log_every=settings.log_every, seed=settings.seed,
    )
    if is_global_zero():
        out_dir.mkdir(parents=True, exist_ok=True)
        write_run_settings(out_dir / SETTINGS_FILE, settings)
    settings = replace(settings, steps=steps)  # what this run trains for (model.json records it)
    started = time.perf_counter()
    data: Dataset = _LabelledClips(clips, targets)
    if settings.recipe == "mobilenet":
        data = MelClips(data, backbone.front_end)  # each clip's log-mel computed once
    if settings.dual_head:
        data = _first_stage(task, data, clips, label_map, settings, train_settings, out_dir, resume=resume,
                            progress=progress)
        train_settings = replace(train_settings, max_steps=settings.steps - _stage1_steps(settings), warmup_steps=0)
    result = train(task, data, train_settings, out_dir=out_dir, collate_fn=_collate, resume=resume,
                   progress=progress, stop_after=stop_after)
    task = task.to("cpu").eval()
    if is_global_zero():  # every rank holds the same weights; one writes them
        _write_model(out_dir, settings, task, label_map, init=init, target_frames=target_frames,
                     n_clips=len(targets), duration_s=clips.duration_s)
    return FinetuneResult(model_dir=out_dir, log_path=out_dir / LOG_NAME, steps=result.steps,
                          wall_s=time.perf_counter() - started, num_classes=label_map.num_classes,
                          last_logs=dict(result.last_logs))


def _stage1_steps(settings: FinetuneSettings) -> int:
    return max(1, min(settings.steps - 1, round(settings.steps * settings.dual_head_stage1)))


def _first_stage(
    task: nn.Module,
    data: _LabelledClips,
    clips: ClipDataset,
    label_map: LabelMap,
    settings: FinetuneSettings,
    train_settings: TrainSettings,
    out_dir: Path,
    *,
    resume: bool,
    progress: Callable[[TrainProgress], None] | None,
) -> _LabelledClips:
    """Dual-head stage 1 (supervised, `out_dir/stage1`), then cluster the attribute-less clips and add
    the second head; returns the stage-2 data (with "pseudo"). A finished stage 1 is reused on resume."""
    if not isinstance(task, AttributeTask) or settings.steps < 2:
        raise ConfigError("dual_head needs the eat recipe and at least 2 steps")
    steps = _stage1_steps(settings)
    stage_dir = out_dir / "stage1"
    train(task, data, replace(train_settings, max_steps=steps), out_dir=stage_dir, collate_fn=_collate,
          resume=resume, progress=progress)
    pseudo = _cluster_unlabelled(task, clips, label_map, settings, data.targets.tolist())
    count = max(pseudo) + 1
    if count < 1:
        raise ConfigError("dual_head: no attribute-less training clips to cluster for the second head")
    if is_global_zero():
        atomic_write_text(stage_dir / "pseudo_labels.json", json.dumps(
            {"clusters": count, "labels": {str(r.path): p for r, p in zip(clips.records, pseudo) if p >= 0}},
            indent=1))
    task.add_second_head(count)
    return _LabelledClips(clips, data.targets.tolist(), pseudo)


def _write_model(
    out_dir: Path,
    settings: FinetuneSettings,
    task: nn.Module,
    label_map: LabelMap,
    *,
    init: str | None,
    target_frames: int | None,
    n_clips: int,
    duration_s: float,
) -> None:
    files: dict[str, str] = {"head": _HEAD_FILE}
    description: dict[str, Any] = {
        "format": _FORMAT,
        "version": 1,
        "recipe": settings.recipe,
        "preset": settings.preset,
        "mode": settings.mode,
        "sample_rate": settings.sample_rate,
        "level": settings.level,  # the training clips' normalisation, applied again at inference
        "label_map": label_map.to_dict(),
        "settings": asdict(settings),
        "train_clips": n_clips,
        "duration_s": duration_s,
        "asdlab_version": __version__,
    }
    recorded = {"level": settings.level}  # so `build_backbone(weights=...)` alone feeds the same input
    if isinstance(task, TwoBranchTask):
        save_encoder(task.encoder, out_dir / _ENCODER_FILE, preset=settings.preset, source="finetune",
                     extra=recorded)
        files["encoder"] = _ENCODER_FILE
        _save_tensors(_prefixed(task.head, "head") | _prefixed(task.ssl_head, "ssl_head"), out_dir / _HEAD_FILE)
    else:
        assert isinstance(task, (AttributeTask, MobileNetAttributeTask))
        backbone = task.backbone
        description.update({
            "pooling": settings.pooling, "projection_dim": settings.projection_dim,
            "projection_layers": settings.projection_layers, "target_frames": target_frames,
            "lora": {"rank": settings.lora_rank, "alpha": settings.lora_alpha, "mlp": settings.lora_mlp},
        })
        if isinstance(task, MobileNetAttributeTask):
            description["embed_layer"] = settings.embed_layer
        if settings.mode == "full":
            save_encoder(backbone.encoder, out_dir / _ENCODER_FILE, preset=settings.preset, source="finetune",
                         extra=recorded)
            files["encoder"] = _ENCODER_FILE
        else:  # only what changed: the base encoder is referenced by path and hash
            description["base"] = _base_record(init, settings.seed)
        if settings.mode == "lora":
            from asdlab.training.lora import lora_state_dict

            _save_tensors(lora_state_dict(backbone.encoder), out_dir / _ADAPTERS_FILE)
            files["adapters"] = _ADAPTERS_FILE
        _save_tensors(_prefixed(backbone.pool_module, "pool") | _prefixed(backbone.projection, "projection"),
                      out_dir / _LAYERS_FILE)
        files["layers"] = _LAYERS_FILE
        _save_tensors(_prefixed(task.head, "head"), out_dir / _HEAD_FILE)
    description["files"] = files
    atomic_write_text(out_dir / MODEL_FILE, json.dumps(description, indent=2, default=str) + "\n")


def read_model_description(model_dir: str | os.PathLike) -> dict[str, Any]:
    """The `model.json` of a fine-tuned model folder.

    Raises:
        CheckpointError: missing or not a fine-tuned model description.
    """
    path = Path(model_dir) / MODEL_FILE
    try:
        description = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{path}: cannot read the fine-tuned model description ({error})") from None
    if not isinstance(description, dict) or description.get("format") != _FORMAT:
        raise CheckpointError(f"{path}: not an asdlab fine-tuned model description")
    return description


def _load_into(module: nn.Module | None, state: Mapping[str, Tensor], prefix: str, path: Path) -> None:
    if module is None:
        return
    own = {k[len(prefix) + 1:]: v for k, v in state.items() if k.startswith(prefix + ".")}
    try:
        module.load_state_dict(own, strict=True)
    except RuntimeError as error:
        raise CheckpointError(f"{path}: {prefix} weights do not fit: {error}") from None


def _eat_weights(model_dir: Path, description: Mapping[str, Any]) -> str | None:
    """The encoder file an EAT model folder starts from: its own (full mode) or its checked base."""
    if description["mode"] == "full":
        return str(model_dir / description["files"]["encoder"])
    base = description["base"]
    weights = base["path"]
    if weights is not None:
        if not Path(weights).is_file():
            raise CheckpointError(f"{model_dir / MODEL_FILE}: base encoder {weights} not found")
        if sha256_file(weights) != base["sha256"]:
            raise CheckpointError(f"{weights}: the base encoder changed since {model_dir} was trained (sha256)")
    return weights


def load_finetuned_backbone(
    model_dir: str | os.PathLike, *, device: str | torch.device = "cpu", level: Level | None = None
) -> Backbone:
    """The waveform -> embedding `Backbone` of a fine-tuned model folder (LoRA merged), in eval mode.

    Args:
        model_dir: a folder written by `run_finetuning`.
        device: where to put it.
        level: the backbone's level normalisation; None = the one its training clips had (`model.json`
            "level"; folders written before it existed trained on the files' own levels: "none").

    Raises:
        CheckpointError: a missing or foreign file, a level it does not know, a base encoder whose
            hash changed, or weights that do not fit.
    """
    model_dir = Path(model_dir)
    description = read_model_description(model_dir)
    files = description["files"]
    preset = description["preset"]
    if level is None:
        level = description.get("level", "none")
        if level not in LEVELS:
            raise CheckpointError(f"{model_dir / MODEL_FILE}: level must be one of {', '.join(LEVELS)}, got {level!r}")
    if description["recipe"] == "two-branch-cnn":
        backbone = build_backbone(preset, weights=model_dir / files["encoder"],
                                  sample_rate=description["sample_rate"], level=level)
        return backbone.to(device).eval()
    settings = FinetuneSettings(**{**description["settings"], "drop_path": 0.0})
    mode = description["mode"]
    if description["recipe"] == "mobilenet":
        backbone = _build_mobilenet(settings, weights=str(model_dir / files["encoder"]))
    else:
        backbone = _build_eat(settings, weights=_eat_weights(model_dir, description),
                              target_frames=description["target_frames"])
    if mode == "lora":
        from asdlab.training.lora import apply_lora, load_lora_state, merge_lora

        lora = description["lora"]
        apply_lora(backbone.encoder, rank=lora["rank"], alpha=lora["alpha"], include_mlp=lora["mlp"])
        load_lora_state(backbone.encoder, load_file(str(model_dir / files["adapters"])))
        backbone.encoder = merge_lora(backbone.encoder)
    layers_path = model_dir / files["layers"]
    layers = load_file(str(layers_path))
    _load_into(backbone.pool_module, layers, "pool", layers_path)
    _load_into(backbone.projection, layers, "projection", layers_path)
    backbone.level = level
    return backbone.to(device).eval()
