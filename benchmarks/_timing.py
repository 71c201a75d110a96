"""Timing pieces the throughput benchmarks share: device sync, a square-matmul peak, warm-up then timed steps."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

__all__ = ["sync", "matmul_peak_flops", "warm_then_time"]


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on the CPU), so wall times cover it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak_flops(*, size: int, dtype: torch.dtype, device: torch.device, repeats: int) -> float:
    """Best FLOP/s of a square `size` x `size` matmul of `dtype` on `device` (what MFU is taken against)."""
    a = torch.randn(size, size, dtype=dtype, device=device)
    b = torch.randn(size, size, dtype=dtype, device=device)
    torch.mm(a, b)
    sync(device)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def warm_then_time(step: Callable[[int], None], *, warmup: int, steps: int, device: torch.device,
                   warmup_start: float | None = None) -> tuple[float, list[float]]:
    """Run `step(1..warmup)`, then time `step(warmup + 1 .. warmup + steps)` one by one.

    Returns:
        (seconds of the warm-up, counted from `warmup_start` when given; seconds of each timed step).
    """
    warmup_start = time.perf_counter() if warmup_start is None else warmup_start
    for i in range(warmup):
        step(i + 1)
    sync(device)
    warmup_s = time.perf_counter() - warmup_start
    times = []
    for i in range(steps):
        start = time.perf_counter()
        step(warmup + i + 1)
        sync(device)
        times.append(time.perf_counter() - start)
    return warmup_s, times
