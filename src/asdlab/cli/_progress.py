"""A progress line for long loops: items done, rate, ETA (stderr, throttled)."""

from __future__ import annotations

import sys
import time


class ProgressPrinter:
    """Callable `progress(done, total)` printing `label: done/total (rate/s, ETA)` at most twice a second."""

    def __init__(self, label: str, *, stream=None, min_interval_s: float = 0.5):
        self.label = label
        self._stream = stream
        self.min_interval_s = min_interval_s
        self._start: float | None = None
        self._last_print = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.perf_counter()
        if self._start is None or done < self._last_done:
            # The rate counts from the first report: a resumed job starts at done > 0.
            self._start, self._start_done = now, done
        self._last_done = done
        if done == self._start_done:
            return
        finished = done >= total
        if not finished and now - self._last_print < self.min_interval_s:
            return
        self._last_print = now
        elapsed = max(now - self._start, 1e-9)
        rate = (done - self._start_done) / elapsed
        eta = (total - done) / rate if rate > 0 else float("inf")
        end = "\n" if finished else ""
        self.stream.write(f"\r{self.label}: {done}/{total} ({rate:.1f}/s, ETA {eta:.0f} s)   {end}")
        self.stream.flush()

    _last_done = 0
    _start_done = 0

    @property
    def stream(self):
        """The given stream, else the current sys.stderr (looked up late: tests replace it)."""
        return self._stream if self._stream is not None else sys.stderr


class TrainingProgressPrinter:
    """Callable taking `asdlab.training.loop.TrainProgress`: one line per report with losses, lr, speed, ETA."""

    def __init__(self, *, stream=None, label: str = "train"):
        self._stream = stream
        self.label = label

    def __call__(self, report) -> None:
        logs = " ".join(f"{k} {v:.4g}" for k, v in report.logs.items() if k != "grad_norm")
        stream = self._stream if self._stream is not None else sys.stderr
        stream.write(
            f"{self.label} step {report.step}/{report.max_steps} | {logs} | lr {report.lr:.3g} | "
            f"{report.clips_per_s:.1f} clips/s | ETA {report.eta_s:.0f} s\n"
        )
        stream.flush()
