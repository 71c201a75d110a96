"""The training loop every stage uses: Lightning Fabric for devices, DDP and precision, plain PyTorch inside.

A *task* is an `nn.Module` whose `forward(batch, *, generator)` returns the loss (DAP's UFO objective,
attribute classification, ...). The loop owns the optimiser (Adam with decoupled weight decay),
the cosine schedule with warm-up, gradient accumulation and clipping, checkpoints that resume
exactly (weights, optimiser, scheduler, step, data position, RNG), progress and a CSV log.
The same call runs on a CPU, one GPU, or many GPUs/nodes (`strategy="ddp"`, torchrun or SLURM).
"""

from __future__ import annotations

import csv
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Sampler

from asdlab._io import atomic_write_text
from asdlab.errors import CheckpointError, ConfigError
from asdlab.training.schedules import cosine_with_warmup

__all__ = [
    "TrainSettings",
    "TrainOutput",
    "TrainTask",
    "TrainProgress",
    "TrainResult",
    "train",
    "read_checkpoint",
    "CHECKPOINT_NAME",
    "LOG_NAME",
    "OPTIMIZER_IMPLS",
    "make_adamw",
    "epoch_batches",
    "resolve_precision",
    "is_global_zero",
]

logger = logging.getLogger(__name__)

CHECKPOINT_NAME = "last.ckpt"
LOG_NAME = "train_log.csv"
_CHECKPOINT_FORMAT = "asdlab-train"
_CHECKPOINT_VERSION = 1


@dataclass(frozen=True)
class TrainSettings:
    """How to optimise; model-independent. Defaults are EAT's pre-training values (EAT.md "Optimiser").

    Attributes:
        max_steps: optimiser updates in total (the schedule's length).
        batch_size: clips per device per micro-batch (effective batch = batch_size x
            accumulate_steps x devices x nodes).
        accumulate_steps: micro-batches per optimiser update.
        lr: peak learning rate.
        warmup_steps: linear warm-up updates.
        min_lr_ratio: learning rate at the end of the cosine, relative to `lr`.
        betas: Adam betas.
        weight_decay: decoupled weight decay of weight matrices (not biases / norms / tokens).
        grad_clip: max global gradient norm; None = no clipping.
        precision: Fabric precision: "32-true", "bf16-mixed" (GPU), "16-mixed", or "auto" (bf16-mixed
            on a GPU, 32-true on a CPU; see `resolve_precision`).
        accelerator: "cpu", "cuda", "auto".
        devices: devices per node (int, or "auto").
        num_nodes: nodes (SLURM / torchrun).
        strategy: "auto", "ddp", ...
        num_workers: DataLoader worker processes.
        optimizer_impl: AdamW kernels: "fused", "foreach", "for-loop", or "auto" (fused on a GPU,
            PyTorch's default elsewhere); the same update up to float rounding.
        checkpoint_every: updates between checkpoints (one is always written at the end).
        log_every: updates between log rows / progress reports.
        seed: seed of the data order and of every step's random generator.
    """

    max_steps: int
    batch_size: int = 12
    accumulate_steps: int = 1
    lr: float = 5e-4
    warmup_steps: int = 0
    min_lr_ratio: float = 0.0
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = 0.05
    grad_clip: float | None = 4.0
    precision: str = "32-true"
    accelerator: str = "auto"
    devices: int | str = 1
    num_nodes: int = 1
    strategy: str = "auto"
    num_workers: int = 0
    optimizer_impl: str = "auto"
    checkpoint_every: int = 500
    log_every: int = 10
    seed: int = 0


class TrainOutput(NamedTuple):
    """What a task's forward returns: the loss to minimise and scalars to log (e.g. loss parts)."""

    loss: Tensor
    logs: Mapping[str, Tensor | float]


class TrainTask(Protocol):
    """The model-specific part of training (an `nn.Module`)."""

    def forward(self, batch: Any, *, generator: torch.Generator) -> TrainOutput:
        """Loss of one micro-batch; all randomness (masks, augmentation) from `generator`."""

    def optimizer_groups(self, *, weight_decay: float) -> list[dict]:
        """Parameter groups (see `asdlab.training.schedules.parameter_groups`)."""

    def after_optimizer_step(self, step: int) -> Mapping[str, float]:
        """Called after every update with the number of updates done (EMA teacher); returns logs."""


@dataclass(frozen=True)
class TrainProgress:
    """A progress report, every `log_every` updates and at the end."""

    step: int
    max_steps: int
    epoch: int
    logs: Mapping[str, float]
    lr: float
    clips_per_s: float
    elapsed_s: float
    eta_s: float


@dataclass(frozen=True)
class TrainResult:
    """Where training ended and what it left on disk."""

    steps: int
    checkpoint: Path
    log_path: Path
    last_logs: Mapping[str, float] = field(default_factory=dict)
    resumed_from: int | None = None
    wall_s: float = 0.0


ProgressCallback = Callable[[TrainProgress], None]


def epoch_batches(size: int, *, batch_size: int, seed: int, epoch: int, rank: int = 0, world: int = 1) -> list[list[int]]:
    """Example indices of each batch rank `rank` takes in epoch `epoch`.

    The epoch's order is a permutation seeded by (seed, epoch), cut into batches of `batch_size`
    (the ragged end dropped, so every batch stacks), and only as many as split evenly over the ranks;
    rank r takes batches r, r + world, r + 2 world, ... So W ranks with a micro-batch of B see, batch
    for batch, what one process sees with W micro-batches of B accumulated per update, and every
    rank takes as many batches per epoch.
    """
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    order = torch.randperm(size, generator=generator)
    count = (size // batch_size) // world * world
    batches = order[: count * batch_size].view(count, batch_size)  # (batches, batch_size)
    return batches[rank::world].tolist()


class _BatchStream(Sampler[list[int]]):
    """The batches of epoch after epoch, forever, from the `start`-th batch of `epoch` (a data position).

    One DataLoader iterates it for the whole run, so its worker processes start once and keep
    prefetching across epoch ends.
    """

    def __init__(self, size: int, *, batch_size: int, seed: int, epoch: int, rank: int, world: int, start: int):
        self.options = dict(size=size, batch_size=batch_size, seed=seed, rank=rank, world=world)
        self.epoch, self.start = epoch, start

    def __iter__(self) -> Iterator[list[int]]:
        epoch, start = self.epoch, self.start
        while True:
            yield from epoch_batches(epoch=epoch, **self.options)[start:]
            epoch, start = epoch + 1, 0


def _step_seed(seed: int, step: int, micro: int) -> int:
    """A distinct, reproducible seed per (update, global micro-batch).

    `micro` counts the micro-batches of an update over all ranks (micro-batch m of rank r is
    m * world + r), so W ranks draw what one process accumulating W micro-batches draws.
    """
    return (seed * 1_000_003 + step * 4099 + micro * 131) % (2**63 - 1)


def _rng_state(device: torch.device) -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: Mapping[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"].cpu())
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"].cpu(), device)


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """A checkpoint written by `train`, on the CPU: keys "task" (state dict), "step", "settings", ...

    Raises:
        CheckpointError: unreadable or not a training checkpoint.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for truncated or foreign files
        raise CheckpointError(f"{path}: cannot read training checkpoint: {error}") from error
    if not isinstance(state, dict) or state.get("format") != _CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not an asdlab training checkpoint")
    return state


class _CSVLog:
    """Append-only CSV of log rows (rank 0); on resume, rows after the resumed step are dropped."""

    def __init__(self, path: Path, *, resume_step: int | None):
        self.path = path
        self.columns: list[str] | None = None
        if resume_step is None or not path.exists():
            path.unlink(missing_ok=True)
            return
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            self.columns = list(reader.fieldnames or []) or None
            rows = [row for row in reader if int(row["step"]) <= resume_step]
        if self.columns is None:
            return
        lines = [",".join(self.columns)] + [",".join(row[c] for c in self.columns) for row in rows]
        atomic_write_text(path, "\n".join(lines) + "\n")

    def write(self, row: Mapping[str, float | int]) -> None:
        if self.columns is None:
            fixed = ["step", "epoch", "lr"]
            tail = ["clips_per_s", "elapsed_s"]
            self.columns = fixed + sorted(k for k in row if k not in fixed + tail) + tail
            with open(self.path, "w") as f:
                f.write(",".join(self.columns) + "\n")
        values = [row.get(column, "") for column in self.columns]
        with open(self.path, "a") as f:
            f.write(",".join(f"{v:.6g}" if isinstance(v, float) else str(v) for v in values) + "\n")


OPTIMIZER_IMPLS = ("auto", "fused", "foreach", "for-loop")


def resolve_precision(precision: str, accelerator: str) -> str:
    """Fabric precision for `precision`: "auto" is "bf16-mixed" on a GPU ("16-mixed" on one without
    bf16) and "32-true" on a CPU; any other value is returned as it is."""
    if precision != "auto":
        return precision
    on_gpu = accelerator in ("cuda", "gpu") or (accelerator == "auto" and torch.cuda.is_available())
    if not on_gpu:
        return "32-true"
    return "bf16-mixed" if not torch.cuda.is_available() or torch.cuda.is_bf16_supported() else "16-mixed"


def make_adamw(
    groups: list[dict], *, lr: float, betas: tuple[float, float], impl: str = "auto", device: torch.device | None = None
) -> torch.optim.AdamW:
    """AdamW (decoupled weight decay, per-group decay from `groups`) with the kernels `impl` names.

    Raises:
        ConfigError: an unknown `impl`.
    """
    if impl not in OPTIMIZER_IMPLS:
        raise ConfigError(f"optimizer_impl must be one of {', '.join(OPTIMIZER_IMPLS)}, got {impl!r}")
    if impl == "auto":
        impl = "fused" if device is not None and torch.device(device).type == "cuda" else "default"
    kernels = {"fused": dict(fused=True), "foreach": dict(foreach=True), "for-loop": dict(foreach=False),
               "default": {}}[impl]
    return torch.optim.AdamW(groups, lr=lr, betas=betas, **kernels)


def _make_fabric(settings: TrainSettings):
    try:
        from lightning.fabric import Fabric
    except ImportError as error:  # lightning is a dependency; a broken environment lands here
        raise ConfigError(f"training needs Lightning Fabric (pip install lightning): {error}") from error
    return Fabric(
        accelerator=settings.accelerator,
        devices=settings.devices,
        num_nodes=settings.num_nodes,
        strategy=settings.strategy,
        precision=resolve_precision(settings.precision, settings.accelerator),
    )


def _accumulate(sums: dict[str, Tensor | float], key: str, value: Tensor | float, divisor: int) -> None:
    """Add a log value: tensors stay on their device, numbers on the host, so logging never makes the
    host wait for the GPU (a Python number copied to a GPU tensor would synchronise every step)."""
    value = value.detach().float() / divisor if isinstance(value, Tensor) else float(value) / divisor
    sums[key] = sums[key] + value if key in sums else value


@torch.no_grad()
def _rank_weight_spread(fabric, task: nn.Module) -> float:
    """Largest difference across ranks of each parameter tensor's sum and sum of squares (float64)."""
    parts = [torch.stack([p.double().sum(), p.double().square().sum()]) for p in task.parameters()]
    fingerprint = torch.cat(parts).to(fabric.device)  # (2 x tensors,)
    highest = fabric.all_reduce(fingerprint.clone(), reduce_op=torch.distributed.ReduceOp.MAX)
    lowest = fabric.all_reduce(fingerprint.clone(), reduce_op=torch.distributed.ReduceOp.MIN)
    return float((highest - lowest).max())


def is_global_zero() -> bool:
    """Whether this process is rank 0 (or the only one): the one that writes a stage's outputs.

    Read from torch.distributed once it is up, else from the launcher's environment (torchrun's
    RANK, SLURM's SLURM_PROCID), so a stage can decide before `train` starts the process group.
    """
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank() == 0
    return int(os.environ.get("RANK", os.environ.get("SLURM_PROCID", "0"))) == 0


def train(
    task: nn.Module,
    dataset: Dataset,
    settings: TrainSettings,
    *,
    out_dir: str | os.PathLike,
    collate_fn: Callable[[Sequence[Any]], Any] | None = None,
    resume: bool = False,
    progress: ProgressCallback | None = None,
    stop_after: int | None = None,
) -> TrainResult:
    """Optimise `task` on `dataset` for `settings.max_steps` updates.

    Writes `<out_dir>/last.ckpt` every `checkpoint_every` updates and at the end (atomically), and
    `<out_dir>/train_log.csv` (step, epoch, lr, the task's logs averaged over `log_every` updates,
    clips/s). With `resume=True` and a checkpoint present, training continues from it exactly:
    same weights, optimiser and scheduler state, data position and random streams, so the next
    loss equals an uninterrupted run's (on the same device type).

    Args:
        task: see `TrainTask`; trained in place.
        dataset: map-style dataset of examples (`collate_fn` stacks them into the task's batch).
        settings: see `TrainSettings`.
        out_dir: where the checkpoint and log go.
        collate_fn: DataLoader collate function.
        resume: continue from `<out_dir>/last.ckpt` when it exists.
        progress: called with a `TrainProgress` every `log_every` updates and at the end.
        stop_after: stop after this many updates of this call, with a checkpoint and a log row, to
            continue with `resume` (e.g. within a job's time limit); None = run to `max_steps`.

    With several processes (DDP), every log row also holds "rank_weight_spread": the largest
    difference across ranks of per-tensor sums of the task's parameters (0 when every rank holds
    the same weights, as it must).

    Returns:
        `TrainResult` (on every rank).

    Raises:
        ConfigError: a dataset smaller than one global batch, or bad settings.
        CheckpointError: `resume` with a checkpoint that does not fit the task.
    """
    if settings.max_steps < 1 or settings.batch_size < 1 or settings.accumulate_steps < 1:
        raise ConfigError(f"max_steps, batch_size and accumulate_steps must be >= 1: {settings}")
    out_dir = Path(out_dir)
    checkpoint_path = out_dir / CHECKPOINT_NAME
    fabric = _make_fabric(settings)
    fabric.launch()
    rank, world = fabric.global_rank, fabric.world_size
    if len(dataset) < settings.batch_size * world:
        raise ConfigError(
            f"{len(dataset)} training examples are fewer than one batch "
            f"({settings.batch_size} per device x {world} devices); lower batch_size"
        )
    if fabric.is_global_zero:
        out_dir.mkdir(parents=True, exist_ok=True)
    fabric.barrier()

    raw_task = task
    groups = task.optimizer_groups(weight_decay=settings.weight_decay)
    for group in groups:
        group["lr"] = settings.lr * group.get("lr_scale", 1.0)
    # Adam with decoupled weight decay (EAT.md "Optimiser"); per-group decay comes from `groups`.
    optimizer = make_adamw(groups, lr=settings.lr, betas=settings.betas, impl=settings.optimizer_impl,
                           device=fabric.device)
    model, optimizer = fabric.setup(task, optimizer)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: cosine_with_warmup(
            step, warmup_steps=settings.warmup_steps, total_steps=settings.max_steps, min_ratio=settings.min_lr_ratio
        ),
    )

    step, epoch, taken = 0, 0, 0
    resumed_from = None
    if resume and checkpoint_path.exists():
        state = {"task": model, "optimizer": optimizer}
        try:
            rest = fabric.load(checkpoint_path, state)
        except (RuntimeError, KeyError) as error:
            raise CheckpointError(f"{checkpoint_path}: does not fit this task: {error}") from error
        if rest.get("format") != _CHECKPOINT_FORMAT:
            raise CheckpointError(f"{checkpoint_path}: not an asdlab training checkpoint")
        scheduler.load_state_dict(rest["scheduler"])
        step, epoch, taken = int(rest["step"]), int(rest["epoch"]), int(rest["batches_taken"])
        _set_rng_state(rest["rng"], fabric.device)
        resumed_from = step
        logger.info("resuming from %s at step %d (epoch %d, batch %d)", checkpoint_path, step, epoch, taken)
    log = _CSVLog(out_dir / LOG_NAME, resume_step=resumed_from) if fabric.is_global_zero else None

    per_epoch = len(epoch_batches(len(dataset), batch_size=settings.batch_size, seed=settings.seed, epoch=0,
                                  rank=rank, world=world))

    def batches() -> Iterator[tuple[int, int, Any]]:
        """(epoch, batches taken in it after this one, batch) forever, from the saved position."""
        sampler = _BatchStream(len(dataset), batch_size=settings.batch_size, seed=settings.seed, epoch=epoch,
                               rank=rank, world=world, start=taken)
        workers = settings.num_workers
        loader = DataLoader(
            dataset, batch_sampler=sampler, collate_fn=collate_fn, num_workers=workers,
            pin_memory=fabric.device.type == "cuda", prefetch_factor=4 if workers else None,
        )
        loader = fabric.setup_dataloaders(loader, use_distributed_sampler=False)
        position_epoch, position = epoch, taken
        for batch in loader:
            if position == per_epoch:
                position_epoch, position = position_epoch + 1, 0
            position += 1
            yield position_epoch, position, batch

    def save_checkpoint() -> None:
        state = {
            "format": _CHECKPOINT_FORMAT,
            "version": _CHECKPOINT_VERSION,
            "task": model,
            "optimizer": optimizer,
            "scheduler": scheduler.state_dict(),
            "step": step,
            "epoch": epoch,
            "batches_taken": taken,
            "rng": _rng_state(fabric.device),
            "settings": asdict(settings),
        }
        tmp = checkpoint_path.with_name(checkpoint_path.name + ".tmp")
        fabric.save(tmp, state)  # rank 0 writes
        fabric.barrier()
        if fabric.is_global_zero:
            os.replace(tmp, checkpoint_path)  # atomic: a kill mid-save leaves the previous checkpoint
        fabric.barrier()

    clips_per_update = settings.batch_size * settings.accumulate_steps * world
    generator = torch.Generator(device=fabric.device)
    stream = batches()
    sums: dict[str, Tensor | float] = {}
    count = 0
    start_time = window_time = time.perf_counter()
    start_step = window_step = step
    last_logs: dict[str, float] = {}
    model.train()
    if fabric.device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # where fp32 remains (the "32-true" precision, fp32 ops)
        torch.backends.cudnn.allow_tf32 = True
    while step < settings.max_steps:
        for micro in range(settings.accumulate_steps):
            epoch, taken, batch = next(stream)
            generator.manual_seed(_step_seed(settings.seed, step, micro * world + rank))
            is_last = micro == settings.accumulate_steps - 1
            with fabric.no_backward_sync(model, enabled=not is_last):
                output = model(batch, generator=generator)
                fabric.backward(output.loss / settings.accumulate_steps)
            for key, value in {"loss": output.loss, **output.logs}.items():
                _accumulate(sums, key, value, settings.accumulate_steps)
        if settings.grad_clip is not None:
            grad_norm = fabric.clip_gradients(model, optimizer, max_norm=settings.grad_clip)
            _accumulate(sums, "grad_norm", grad_norm, 1)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        scheduler.step()
        step += 1
        for key, value in raw_task.after_optimizer_step(step).items():
            _accumulate(sums, key, value, 1)
        count += 1

        stopping = stop_after is not None and step - start_step >= stop_after
        if step % settings.log_every == 0 or step == settings.max_steps or stopping:
            # Device tensors are averaged over ranks; host floats (the EMA decay) are the same on every rank.
            means = {key: fabric.all_reduce(value / count, reduce_op="mean") if isinstance(value, Tensor)
                     else value / count for key, value in sums.items()}
            last_logs = {key: float(value) for key, value in means.items()}
            if world > 1:
                last_logs["rank_weight_spread"] = _rank_weight_spread(fabric, raw_task)
            now = time.perf_counter()
            clips_per_s = (step - window_step) * clips_per_update / max(now - window_time, 1e-9)
            elapsed = now - start_time
            eta = elapsed / max(step - start_step, 1) * (settings.max_steps - step)
            lr = optimizer.param_groups[0]["lr"] / optimizer.param_groups[0].get("lr_scale", 1.0)
            if log is not None:
                log.write({"step": step, "epoch": epoch, "lr": lr, **last_logs,
                           "clips_per_s": clips_per_s, "elapsed_s": elapsed})
            if progress is not None and fabric.is_global_zero:
                progress(TrainProgress(step=step, max_steps=settings.max_steps, epoch=epoch, logs=last_logs,
                                       lr=lr, clips_per_s=clips_per_s, elapsed_s=elapsed, eta_s=eta))
            sums, count = {}, 0
            window_time, window_step = now, step
        if step % settings.checkpoint_every == 0 or step == settings.max_steps or stopping:
            save_checkpoint()
        if stopping:
            break

    stream.close()  # stops the DataLoader's workers
    return TrainResult(
        steps=step,
        checkpoint=checkpoint_path,
        log_path=out_dir / LOG_NAME,
        last_logs=last_logs,
        resumed_from=resumed_from,
        wall_s=time.perf_counter() - start_time,
    )
