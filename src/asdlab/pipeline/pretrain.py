"""Stage `pretrain`: domain-adaptive pre-training (DAP) of a transformer encoder on machine sounds, no labels.

EAT and SSLAM presets continue their own objective (UFO); BEATs presets get the same masked-student /
EMA-teacher objective (the ensemble report's TATS, see `asdlab.training.ufo`).

Indexes the train split of every machine of every dataset root (one DCASE year, or 2020-2025 for
"DAP-full"), caches the decoded (level-normalised) clips under `<out>/cache`, trains `DAPTask` (EAT's
UFO objective) with the Fabric loop (`<out>/last.ckpt`, `<out>/train_log.csv`, exact `resume`), then
writes the student as `<out>/encoder.safetensors` (and the teacher as `teacher.safetensors`), atomically.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from asdlab.data.dataset import ClipDataset
from asdlab.data.index import index_dataset
from asdlab.data.records import ClipRecord
from asdlab.encoders.backbone import transformer_front_end
from asdlab.encoders.beats import BEATS_PRESETS, create_beats_decoder
from asdlab.encoders.checkpoints import load_eat_checkpoint, load_encoder_weights, read_encoder_metadata, save_encoder
from asdlab.encoders.eat import DECODER_CONVS, EAT_PRESETS, DecoderConv, create_eat_decoder
from asdlab.encoders.registry import create_encoder
from asdlab.errors import CheckpointError, ConfigError, DataError
from asdlab.features.fbank import count_frames
from asdlab.features.level import Level
from asdlab.pipeline.config_io import check_resume_settings, write_run_settings
from asdlab.training.ema import EMASchedule
from asdlab.training.loop import ProgressCallback, TrainSettings, is_global_zero, resolve_precision, train
from asdlab.training.ufo import DAPTask, UtteranceReduction

__all__ = ["PretrainSettings", "PretrainResult", "run_pretraining", "build_dap_task", "step_options", "ENCODER_NAME",
           "TEACHER_NAME", "DECODER_NAME", "SETTINGS_NAME", "with_overrides", "GPU_DECODER_CONV", "GPU_COMPILE"]

logger = logging.getLogger(__name__)

ENCODER_NAME = "encoder.safetensors"
TEACHER_NAME = "teacher.safetensors"
DECODER_NAME = "decoder.safetensors"
SETTINGS_NAME = "pretrain_settings.json"
_EAT_WARMUP_FRACTION = 53_333 / 400_000  # EAT: 53,333 warm-up of 400 k updates

# How the DAP step runs on a GPU when the settings say "auto" (same objective either way; see
# `EATDecoder` and `DAPTask`). Chosen from the timings of benchmarks/gpu_check.sh; a CPU always
# runs the reference convolution, eagerly.
GPU_DECODER_CONV: DecoderConv = "conv"
GPU_COMPILE = False


@dataclass(frozen=True)
class PretrainSettings:
    """DAP settings. Defaults: EAT pre-training (EAT.md "Optimiser", "UFO") and the DAP paper's batch.

    Attributes:
        preset: encoder preset: EAT ("eat-base" in the paper; "eat-tiny" / "eat-small" on a CPU), "sslam-base",
            or BEATs ("beats-base"; "beats-tiny" on a CPU).
        init: released EAT / SSLAM checkpoint (student, decoder and EMA teacher are used when present),
            a released BEATs checkpoint (student; the teacher starts as its copy, the decoder fresh), an
            asdlab encoder file, or the folder of an earlier `run_pretraining` (its student, teacher
            and decoder: e.g. general pre-training, then DAP); None = random initialisation from `seed`.
        seed: initialisation (without `init`), data order and masks.
        steps: optimiser updates (EAT: 400 k).
        batch_size: clips per device per micro-batch (DAP paper: 32; EAT: 12 per GPU).
        accumulate_steps: micro-batches per update.
        clones: masked views per clip (EAT: 16).
        mask_ratio: masked fraction (EAT: 0.8).
        lr: peak learning rate (EAT: 5e-4).
        warmup_steps: None = EAT's fraction of `steps` (53,333 / 400,000).
        weight_decay, betas, grad_clip: EAT: 0.05, (0.9, 0.95), 4.
        ema_start, ema_end, ema_anneal_steps: teacher decay schedule (EAT: 0.9998 -> 0.99999 over 100 k).
        utterance_weight, utterance_reduction: see `DAPTask` ("mean": the paper's L_f + L_u).
        sample_rate: Hz.
        duration_s: clip length; None = the most common length in the data.
        fit: "pad" or "tile" clips shorter than `duration_s` (longer ones are cut).
        level: "rms" (default) trains on clips scaled to a fixed RMS (`asdlab.features.level`), so the
            encoder does not depend on a recording's gain; the encoder file records it and
            `build_backbone` applies it. "none" trains on the files' own levels.
        target_frames: input frames; None = the clip's frame count rounded up to a multiple of 16
            (EAT pads 10 s to 1024; padding 2 s clips to 1024 would be 80 % padding patches; BEATs pads
            nothing and drops the frames short of a full patch).
        precision: Fabric precision; "auto" = "bf16-mixed" on a GPU, "32-true" on the CPU.
        accelerator, devices, num_nodes, strategy, num_workers: see `TrainSettings`.
        checkpoint_every, log_every: updates between checkpoints / progress reports.
        decoder_conv: how the decoder computes its grouped convolutions ("conv", "conv-nhwc",
            "matmul"; see `EATDecoder`), or "auto": `GPU_DECODER_CONV` on a GPU, "conv" on a CPU.
        compile: torch.compile the objective (falls back to eager when compiling fails); None =
            `GPU_COMPILE` on a GPU, off on a CPU. Neither changes the objective: a run may resume
            with them changed.
    """

    preset: str = "eat-base"
    init: str | None = None
    seed: int = 0
    steps: int = 400_000
    batch_size: int = 32
    accumulate_steps: int = 1
    clones: int = 16
    mask_ratio: float = 0.8
    lr: float = 5e-4
    warmup_steps: int | None = None
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float | None = 4.0
    ema_start: float = 0.9998
    ema_end: float = 0.99999
    ema_anneal_steps: int = 100_000
    utterance_weight: float = 1.0
    utterance_reduction: UtteranceReduction = "mean"
    sample_rate: int = 16000
    duration_s: float | None = None
    fit: str = "pad"
    level: Level = "rms"
    target_frames: int | None = None
    precision: str = "auto"
    accelerator: str = "auto"
    devices: int | str = 1
    num_nodes: int = 1
    strategy: str = "auto"
    num_workers: int = 0
    checkpoint_every: int = 1000
    log_every: int = 10
    decoder_conv: str = "auto"
    compile: bool | None = None

    def train_settings(self) -> TrainSettings:
        """The loop's settings (warm-up and precision resolved)."""
        warmup = self.warmup_steps
        if warmup is None:
            warmup = round(self.steps * _EAT_WARMUP_FRACTION)
        return TrainSettings(
            max_steps=self.steps, batch_size=self.batch_size, accumulate_steps=self.accumulate_steps, lr=self.lr,
            warmup_steps=warmup, betas=self.betas, weight_decay=self.weight_decay, grad_clip=self.grad_clip,
            precision=resolve_precision(self.precision, self.accelerator), accelerator=self.accelerator,
            devices=self.devices, num_nodes=self.num_nodes, strategy=self.strategy, num_workers=self.num_workers,
            checkpoint_every=self.checkpoint_every, log_every=self.log_every, seed=self.seed,
        )


@dataclass(frozen=True)
class PretrainResult:
    """What `run_pretraining` wrote.

    Attributes:
        encoder_path: the DAP student encoder (asdlab safetensors, `source="dap"`).
        checkpoint: the training checkpoint (student, teacher, decoder, optimiser, ...).
        log_path: the CSV training log.
        steps: updates done.
        wall_s: training time of this call.
        clips: training clips used.
        teacher_path: the EMA teacher encoder, same format.
        last_logs: the last logged loss parts, lr, EMA decay, ...
    """

    encoder_path: Path
    checkpoint: Path
    log_path: Path
    steps: int
    wall_s: float
    clips: int
    teacher_path: Path | None = None
    last_logs: dict[str, float] | None = None


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Draw initial weights from `seed` without disturbing the global RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        yield


def _is_asdlab_file(path: Path) -> bool:
    if not (path.is_file() and path.suffix == ".safetensors"):
        return False
    try:
        read_encoder_metadata(path)
    except CheckpointError:
        return False
    return True


def _load_pretraining_run(run_dir: Path, preset: str, decoder: nn.Module) -> tuple[nn.Module, nn.Module | None]:
    """Student and teacher of a finished `run_pretraining` folder; its decoder goes into `decoder`."""
    encoder, _ = load_encoder_weights(run_dir / ENCODER_NAME, preset)
    teacher = load_encoder_weights(run_dir / TEACHER_NAME, preset)[0] if (run_dir / TEACHER_NAME).is_file() else None
    decoder_path = run_dir / DECODER_NAME
    if decoder_path.is_file():
        try:
            decoder.load_state_dict(load_file(str(decoder_path)), strict=True)
        except RuntimeError as error:
            raise CheckpointError(f"{decoder_path}: does not fit the {preset} decoder: {error}") from None
    else:
        logger.warning("%s has no %s; the decoder starts from random weights", run_dir, DECODER_NAME)
    return encoder, teacher


def _on_gpu(accelerator: str) -> bool:
    return accelerator in ("cuda", "gpu") or (accelerator == "auto" and torch.cuda.is_available())


def step_options(settings: PretrainSettings) -> tuple[str, bool]:
    """(decoder convolution, compile) of `settings` on the accelerator it names ("auto" resolved).

    Raises:
        ConfigError: an unknown decoder convolution.
    """
    conv = settings.decoder_conv
    if conv == "auto":
        conv = GPU_DECODER_CONV if _on_gpu(settings.accelerator) else "conv"
    if conv not in DECODER_CONVS:
        raise ConfigError(f"decoder_conv must be auto or one of {', '.join(DECODER_CONVS)}, got {conv!r}")
    compile_objective = settings.compile
    if compile_objective is None:
        compile_objective = GPU_COMPILE and _on_gpu(settings.accelerator)
    return conv, bool(compile_objective)


def build_dap_task(settings: PretrainSettings, *, target_frames: int | None) -> DAPTask:
    """Student, decoder and teacher for `settings` (random, a released EAT / SSLAM / BEATs file, an asdlab
    file or run).

    A released EAT pre-training file or an earlier pre-training folder gives all three; a file without
    a decoder (fine-tuned, Hugging Face, BEATs, asdlab) gets a fresh decoder from `seed`, and the teacher
    starts as a copy of the student.

    Raises:
        ConfigError: `preset` is not a transformer preset.
        CheckpointError: `init` cannot be read or does not fit `preset`.
    """
    preset = settings.preset
    if preset not in EAT_PRESETS and preset not in BEATS_PRESETS:
        raise ConfigError(f"preset {preset!r}: DAP trains transformer encoders; choose one of "
                          f"{', '.join([*EAT_PRESETS, *BEATS_PRESETS])}")
    conv, compile_objective = step_options(settings)
    with _seeded(settings.seed):
        make_decoder = create_eat_decoder if preset in EAT_PRESETS else create_beats_decoder
        decoder = make_decoder(preset, conv=conv)
    teacher: nn.Module | None = None
    if settings.init is None or settings.init == "scratch":
        with _seeded(settings.seed):
            encoder = create_encoder(preset)
    else:
        path = Path(settings.init)
        if path.is_dir() and (path / ENCODER_NAME).is_file():
            encoder, teacher = _load_pretraining_run(path, preset, decoder)
        elif _is_asdlab_file(path) or preset in BEATS_PRESETS:
            encoder, _ = load_encoder_weights(path, preset)
        else:
            encoder, report = load_eat_checkpoint(path, which="student", preset=preset)
            if report.decoder_state is not None:
                decoder.load_state_dict(report.decoder_state, strict=True)
            else:
                logger.warning("%s has no decoder weights; the decoder starts from random weights", path)
            if report.source == "fairseq-pretrained":
                try:
                    teacher, _ = load_eat_checkpoint(path, which="teacher", preset=preset)
                except CheckpointError as error:
                    logger.warning("%s: no usable teacher weights (%s); the teacher starts as the student",
                                   path, str(error).splitlines()[0])
    front_end = transformer_front_end(encoder, target_frames=target_frames)
    return DAPTask(
        encoder.train(), decoder, teacher=teacher, front_end=front_end, clones=settings.clones,
        mask_ratio=settings.mask_ratio, utterance_weight=settings.utterance_weight,
        utterance_reduction=settings.utterance_reduction,
        ema=EMASchedule(settings.ema_start, settings.ema_end, settings.ema_anneal_steps),
        compile_backend="inductor" if compile_objective else None,
    )


def _index(data_roots: Sequence[str | os.PathLike]) -> list[ClipRecord]:
    """Train clips of every machine of every root, without duplicates, in a fixed order."""
    records: dict[str, ClipRecord] = {}
    for root in data_roots:
        for record in index_dataset(root, splits=("train",)):
            records.setdefault(str(Path(record.path).resolve()), record)
    return list(records.values())


def _frames_for(num_samples: int, target_frames: int | None) -> int:
    if target_frames is not None:
        if target_frames < 16 or target_frames % 16:
            raise ConfigError(f"target_frames must be a positive multiple of 16, got {target_frames}")
        return target_frames
    frames = count_frames(num_samples)
    if frames < 1:
        raise DataError(f"clips of {num_samples} samples are shorter than one fbank frame")
    return min(16 * math.ceil(frames / 16), 16 * 768)  # the position table's limit, ~123 s


def run_pretraining(
    data_roots: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    settings: PretrainSettings,
    *,
    resume: bool = False,
    progress: ProgressCallback | None = None,
    stop_after: int | None = None,
) -> PretrainResult:
    """Domain-adaptive pre-training on the train clips of `data_roots` (no labels used).

    Args:
        data_roots: dataset roots in any DCASE / MIMII layout.
        out_dir: gets `cache/`, `last.ckpt`, `train_log.csv`, `pretrain_settings.json`,
            `encoder.safetensors` and `teacher.safetensors`.
        settings: see `PretrainSettings`.
        resume: continue from `<out_dir>/last.ckpt` (same settings except hardware and logging).
        progress: called with each `TrainProgress` (step, loss parts, lr, EMA decay, clips/s, ETA).
        stop_after: stop after this many updates (checkpoint and encoder files written), to
            continue later with `resume`; None = run to `settings.steps`.

    Returns:
        `PretrainResult`.

    Raises:
        DataError: no train clips, or none decodable.
        ConfigError: bad settings, or `resume` with settings that differ from the checkpoint's.
        CheckpointError: `init` or the checkpoint does not fit.
    """
    if not data_roots:
        raise ConfigError("give at least one dataset root")
    if settings.fit not in ("pad", "tile"):
        raise ConfigError(f"fit must be 'pad' or 'tile' for pre-training batches, got {settings.fit!r}")
    out_dir = Path(out_dir)
    settings_path = out_dir / SETTINGS_NAME
    if resume:
        check_resume_settings(settings_path, settings)
    records = _index(data_roots)
    logger.info("DAP on %d train clips from %d root(s)", len(records), len(data_roots))
    dataset = ClipDataset(records, sample_rate=settings.sample_rate, duration_s=settings.duration_s,
                          fit=settings.fit, cache_dir=out_dir / "cache", level=settings.level,
                          num_workers=settings.num_workers)
    target_frames = _frames_for(dataset.num_samples, settings.target_frames)
    logger.info("clips of %.2f s -> %d fbank frames (%d patches)", dataset.duration_s, target_frames,
                target_frames // 16 * 8)
    task = build_dap_task(settings, target_frames=target_frames)
    if is_global_zero():
        out_dir.mkdir(parents=True, exist_ok=True)
        write_run_settings(settings_path, settings)

    start = time.perf_counter()
    result = train(task, dataset, settings.train_settings(), out_dir=out_dir, resume=resume, progress=progress,
                   stop_after=stop_after)
    wall_s = time.perf_counter() - start

    encoder_path, teacher_path = out_dir / ENCODER_NAME, out_dir / TEACHER_NAME
    if is_global_zero():
        extra = {
            "init": str(settings.init or "scratch"),
            "steps": str(result.steps),
            "clips": str(len(dataset)),
            "data_roots": json.dumps([str(r) for r in data_roots]),
            "target_frames": str(target_frames),
            "level": settings.level,  # what `build_backbone` applies to this encoder's input
        }
        save_encoder(task.encoder, encoder_path, preset=settings.preset, source="dap", extra=extra)
        save_encoder(task.teacher, teacher_path, preset=settings.preset, source="dap-teacher", extra=extra)
        # The decoder lets a later run continue from this one exactly as from a released checkpoint.
        save_encoder(task.decoder, out_dir / DECODER_NAME, preset=settings.preset, source="dap-decoder", extra=extra)
    return PretrainResult(
        encoder_path=encoder_path, checkpoint=result.checkpoint, log_path=result.log_path, steps=result.steps,
        wall_s=wall_s, clips=len(dataset), teacher_path=teacher_path, last_logs=dict(result.last_logs),
    )


def with_overrides(settings: PretrainSettings, **overrides) -> PretrainSettings:
    """`settings` with some fields replaced (None values are ignored), for CLI-style overrides."""
    return replace(settings, **{k: v for k, v in overrides.items() if v is not None})
