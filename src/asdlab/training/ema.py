"""The EMA teacher of EAT / data2vec 2.0: a frozen copy of the student, moved towards it after each update.

Decay rises linearly from 0.9998 to 0.99999 over the first 100 k updates, then stays (EAT.md "EMA
decay"; data2vec 2.0 `ema_decay`, `ema_end_decay`, `ema_anneal_end_step`). The update runs in fp32.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from asdlab.errors import ConfigError

__all__ = ["EMASchedule", "make_teacher", "update_teacher"]


@dataclass(frozen=True)
class EMASchedule:
    """Decay after `step` updates: linear from `start` to `end` over `anneal_steps`, then `end`.

    Attributes:
        start: decay at step 0 (EAT: 0.9998).
        end: final decay (EAT: 0.99999).
        anneal_steps: updates until `end` is reached (EAT: 100,000).
    """

    start: float = 0.9998
    end: float = 0.99999
    anneal_steps: int = 100_000

    def __post_init__(self) -> None:
        if not (0.0 <= self.start <= 1.0 and 0.0 <= self.end <= 1.0) or self.anneal_steps < 0:
            raise ConfigError(f"EMA decays must lie in [0, 1] and anneal_steps >= 0, got {self}")

    def __call__(self, step: int) -> float:
        if step >= self.anneal_steps:
            return self.end
        # data2vec's get_annealed_rate: end - (end - start) * (1 - step / total)
        return self.end - (self.end - self.start) * (1.0 - step / self.anneal_steps)


def make_teacher(student: nn.Module) -> nn.Module:
    """A deep copy of `student` in fp32 and eval mode whose parameters take no gradient."""
    teacher = copy.deepcopy(student).float().eval()
    teacher.requires_grad_(False)
    return teacher


@torch.no_grad()
def update_teacher(teacher: nn.Module, student: nn.Module, decay: float) -> None:
    """teacher <- decay * teacher + (1 - decay) * student, parameter by parameter, in fp32.

    Buffers (fixed tables) are copied. Both modules must have the same structure. When every
    teacher parameter is fp32 and beside its student parameter, one `torch._foreach_lerp_` updates
    them all (a few fused kernels instead of one per parameter on a GPU; the same arithmetic).

    Raises:
        ValueError: the two modules' parameter names differ.
    """
    teacher_params = dict(teacher.named_parameters())
    student_params = dict(student.named_parameters())
    if teacher_params.keys() != student_params.keys():
        raise ValueError("teacher and student have different parameters")
    targets = list(teacher_params.values())
    sources = [student_params[name].detach() for name in teacher_params]
    if all(t.dtype == torch.float32 and s.dtype == torch.float32 and t.device == s.device
           for t, s in zip(targets, sources)):
        torch._foreach_lerp_(targets, sources, 1.0 - decay)  # target + (1 - decay) * (source - target)
    else:
        for target, source in zip(targets, sources):
            source = source.to(device=target.device, dtype=torch.float32)
            if target.dtype == torch.float32:
                target.lerp_(source, 1.0 - decay)
            else:  # a teacher kept in lower precision still averages in fp32
                target.copy_(target.float().lerp_(source, 1.0 - decay))
    student_buffers = dict(student.named_buffers())
    for name, buffer in teacher.named_buffers():
        if name in student_buffers:
            buffer.copy_(student_buffers[name])
