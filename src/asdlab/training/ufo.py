"""Domain-adaptive pre-training (DAP) with EAT's Utterance-Frame Objective (EAT.md "Self-supervised
pre-training"; DAP paper Sec. 2.3, Eqs. 4-6): masked student + CNN decoder against an EMA teacher.

The same task is the continued pre-training of every transformer encoder with the seams
`forward_features(x, patch_mask=..., return_layer_outputs=True)`: EAT and SSLAM (their own objective),
and BEATs, for the ensemble report's "task-adaptive teacher-student" (TATS) pre-training, which the report
describes only as an EMA teacher and a back-propagated student on machine sounds. For BEATs (no CLS) the
student's utterance vector is the mean of its kept patch tokens, the teacher targets come from all
blocks' MLP outputs (no CLS to drop), and the student sees only the kept patches, which keep their grid
positions for BEATs' relative bias; BEATs' own objective (discrete labels from its acoustic tokenizer)
needs the tokenizer and is not implemented.

Utterance-loss normalisation: the paper writes L = L_f + L_u with both terms averages. EAT's code
averages the frame term over masked tokens but *sums* the utterance term over all B x clones views
(`cls_loss * sample_size`), so its weight grows with the per-GPU batch. We default to the mean over
views (batch- and device-count-independent; `utterance_reduction="sum"` reproduces the code).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from asdlab.encoders.eat import EATDecoder
from asdlab.errors import ConfigError
from asdlab.training.compile import CompiledCall
from asdlab.training.ema import EMASchedule, make_teacher, update_teacher
from asdlab.training.loop import TrainOutput
from asdlab.training.masking import inverse_block_mask, kept_count
from asdlab.training.schedules import parameter_groups

__all__ = ["DAPTask", "UtteranceReduction", "teacher_targets"]

UtteranceReduction = Literal["mean", "sum"]


def teacher_targets(layer_mlp_outputs: Sequence[Tensor], *, extra_tokens: int = 1, eps: float = 1e-5) -> Tensor:
    """EAT's frame targets Y from the teacher's block MLP outputs.

    Each block's output without the CLS token is instance-normalised over the patch axis (per
    clip and channel), the blocks are averaged, then LayerNorm without affine over channels
    (data2vec 2.0 `make_targets` with `instance_norm_target_layer`, `layer_norm_targets`).

    Args:
        layer_mlp_outputs: one (B, extra_tokens + N, D) tensor per block.
        extra_tokens: leading non-patch tokens to drop (the CLS).
        eps: epsilon of both normalisations (PyTorch's default, as the reference).

    Returns:
        (B, N, D) float32.
    """
    total = None
    for h in layer_mlp_outputs:
        patches = h[:, extra_tokens:].float()  # (B, N, D)
        # F.instance_norm over the patch axis, computed in place on (B, N, D): no transposed copies.
        var, mean = torch.var_mean(patches, dim=1, correction=0, keepdim=True)  # (B, 1, D) each
        normed = (patches - mean) * torch.rsqrt(var + eps)
        total = normed if total is None else total + normed
    if total is None:
        raise ValueError("no block outputs to build targets from")
    y = total / len(layer_mlp_outputs)
    return F.layer_norm(y, y.shape[-1:], eps=eps)


def _spread(x: Tensor) -> Tensor:
    """Mean over channels of the std over the batch (data2vec's `compute_var`, a collapse monitor)."""
    x = x.reshape(-1, x.shape[-1]).float()  # (B * N, D)
    return torch.sqrt(x.var(dim=0) + 1e-6).mean() if x.shape[0] > 1 else x.new_zeros(())


def _masked_spread(x: Tensor, weights: Tensor, count: int) -> Tensor:
    """`_spread` of the rows of x (M, D) whose weight (M,) is 1, `count` of them, without indexing
    by the mask (a boolean index waits for the device to know the count)."""
    if count < 2:
        return x.new_zeros((), dtype=torch.float32)
    x = x.float()
    w = weights.to(x.dtype)[:, None]  # (M, 1)
    mean = (x * w).sum(dim=0) / count  # (D,)
    var = (((x - mean) ** 2) * w).sum(dim=0) / (count - 1)  # unbiased, as torch.var
    return torch.sqrt(var + 1e-6).mean()


class DAPTask(nn.Module):
    """The UFO objective as a training task for `asdlab.training.loop.train`.

    Holds the student encoder (EAT, SSLAM or BEATs), its CNN decoder and the EMA teacher (the teacher's parameters take
    no gradient and are updated in `after_optimizer_step`). A batch is a mapping with "waveform"
    (B, S) — turned into EAT input by `front_end` with autocast off — or "spectrogram" (B, 1, T, F).

    Args:
        encoder: the student (`EATEncoder` or `BEATsEncoder`), trained in place.
        decoder: the student's `EATDecoder` (same width; `create_beats_decoder` for BEATs).
        teacher: the teacher's starting weights (e.g. a released checkpoint's EMA copy); None =
            a copy of `encoder`.
        front_end: waveform (B, S) -> (B, 1, T, F); needed for "waveform" batches.
        clones: views per clip, each with its own mask (EAT: 16).
        mask_ratio: fraction of patches masked (EAT: 0.8).
        block_size: side of the kept blocks (EAT: 5).
        utterance_weight: weight of the utterance loss (EAT: 1).
        utterance_reduction: "mean" over views (default, the paper's L_f + L_u) or "sum" (EAT code).
        ema: the teacher's decay schedule.
        compile_backend: a `torch.compile` backend ("inductor") for the whole objective (teacher, student,
            decoder, losses), or None for eager. Masks and noise are drawn outside the compiled
            graph; when compiling fails on the first step, the task warns and stays eager.
    """

    def __init__(
        self,
        encoder: nn.Module,
        decoder: EATDecoder,
        *,
        teacher: nn.Module | None = None,
        front_end: nn.Module | None = None,
        clones: int = 16,
        mask_ratio: float = 0.8,
        block_size: int = 5,
        utterance_weight: float = 1.0,
        utterance_reduction: UtteranceReduction = "mean",
        ema: EMASchedule = EMASchedule(),
        compile_backend: str | Callable | None = None,
    ):
        super().__init__()
        if clones < 1:
            raise ConfigError(f"clones must be >= 1, got {clones}")
        if utterance_reduction not in ("mean", "sum"):
            raise ConfigError(f"utterance_reduction must be 'mean' or 'sum', got {utterance_reduction!r}")
        self.encoder = encoder
        self.decoder = decoder
        self.teacher = make_teacher(encoder if teacher is None else teacher)
        self.front_end = front_end
        self.clones = clones
        self.mask_ratio = mask_ratio
        self.block_size = block_size
        self.utterance_weight = utterance_weight
        self.utterance_reduction = utterance_reduction
        self.ema = ema
        self.compile_backend = compile_backend
        self._objective = CompiledCall(self.objective, compile_backend, what="DAP objective")

    def train(self, mode: bool = True) -> DAPTask:
        """Train the student; the teacher stays in eval mode (EAT.md "Teacher")."""
        super().train(mode)
        self.teacher.eval()
        return self

    def spectrogram(self, batch: Mapping[str, Any] | Tensor) -> Tensor:
        """EAT input (B, 1, T, F) of a batch, computed in fp32 even under autocast."""
        if isinstance(batch, Tensor):
            return batch.float()
        if "spectrogram" in batch:
            return batch["spectrogram"].float()
        if self.front_end is None:
            raise ConfigError("a 'waveform' batch needs DAPTask(front_end=...)")
        waveform = batch["waveform"]
        with torch.autocast(device_type=waveform.device.type, enabled=False):
            return self.front_end(waveform.float())

    def sample_masks(self, batch_size: int, time_patches: int, *, generator: torch.Generator | None) -> Tensor:
        """(batch_size x clones, N) kept-patch masks, clone c of clip b in row b * clones + c."""
        return inverse_block_mask(
            batch_size * self.clones, time_patches, self.encoder.freq_patches, mask_ratio=self.mask_ratio,
            block_size=self.block_size, generator=generator, device=next(self.encoder.parameters()).device,
        )

    def forward(self, batch: Mapping[str, Any] | Tensor, *, generator: torch.Generator | None = None) -> TrainOutput:
        """UFO loss of one batch; masks, then mask-token noise, are drawn from `generator` in that order.

        Returns:
            `TrainOutput(loss, logs)` with logs "loss_frame", "loss_utterance", "target_var", "pred_var".
        """
        x = self.spectrogram(batch)  # (B, 1, T, F)
        B, T = x.shape[0], x.shape[2]
        keep = self.sample_masks(B, T // self.encoder.patch_size, generator=generator)  # (B * C, N)
        noise = self.decoder.mask_noise(keep.shape[0], keep.shape[1], generator=generator, device=keep.device)
        if self._objective.backend != self.compile_backend:  # the backend may be changed between steps
            self._objective = CompiledCall(self.objective, self.compile_backend, what="DAP objective")
        loss, loss_frame, loss_utterance, target_var, pred_var = self._objective(x, keep, noise)
        logs = {"loss_frame": loss_frame, "loss_utterance": loss_utterance, "target_var": target_var,
                "pred_var": pred_var}
        return TrainOutput(loss, logs)

    def objective(self, x: Tensor, keep: Tensor, noise: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """The UFO loss for given masks and mask tokens, with no host synchronisation (compilable whole).

        Args:
            x: spectrograms (B, 1, T, F).
            keep: (B x clones, N) kept-patch masks from `sample_masks`, each keeping
                `kept_count(N, mask_ratio)` patches.
            noise: (B x clones, N, D) mask tokens from the decoder's `mask_noise`.

        Returns:
            (loss, loss_frame, loss_utterance, target_var, pred_var); all but the loss detached.
        """
        with torch.no_grad():
            taught = self.teacher.forward_features(x, return_layer_outputs=True)
            # (B, N, D) fp32; BEATs has no CLS token to drop
            y = teacher_targets(taught.layer_mlp_outputs, extra_tokens=0 if taught.cls is None else 1)
        B, N, D = y.shape
        C = self.clones
        K = kept_count(N, self.mask_ratio)
        masked_count = B * C * (N - K)
        scale = 1.0 / math.sqrt(D)  # data2vec 2.0 `d2v_loss` with loss_scale=None

        # The clones share the clip's patch embedding; only kept patches enter the blocks.
        student = self.encoder.forward_features(x, patch_mask=keep, clones=C, kept_per_row=K)
        prediction = self.decoder(student.patches, keep, noise=noise)  # (B * C, N, D)

        # Frame loss over the masked positions: a 0/1 weight instead of a boolean index (no host sync),
        # and the clip's targets broadcast over its clones instead of repeated.
        masked = (~keep).view(B, C, N)
        error = ((prediction.float().view(B, C, N, D) - y[:, None]) ** 2).sum(dim=-1) * scale  # (B, C, N)
        loss_frame = (error * masked).sum() / masked_count

        utterance_target = y.mean(dim=1)  # (B, D)
        # BEATs has no CLS: its utterance vector is the mean of the kept patch tokens
        pooled = student.cls if student.cls is not None else student.patches.mean(dim=1)  # (B * C, D)
        utterance = ((pooled.float().view(B, C, D) - utterance_target[:, None]) ** 2).sum(dim=-1) * scale
        loss_utterance = utterance.mean() if self.utterance_reduction == "mean" else utterance.sum()  # over B * C

        loss = loss_frame + self.utterance_weight * loss_utterance
        with torch.no_grad():
            target_var = _spread(y)
            pred_var = _masked_spread(prediction.detach().reshape(B * C * N, D), masked.reshape(-1), masked_count)
        return loss, loss_frame.detach(), loss_utterance.detach(), target_var, pred_var

    def optimizer_groups(self, *, weight_decay: float) -> list[dict]:
        """Student encoder + decoder; decay on weight matrices only (the teacher is frozen, left out)."""
        return parameter_groups(self.named_parameters(), weight_decay=weight_decay)

    def after_optimizer_step(self, step: int) -> Mapping[str, float]:
        """Move the teacher towards the student with the decay for `step` updates done."""
        decay = self.ema(step)
        update_teacher(self.teacher, self.encoder, decay)
        return {"ema_decay": decay}
