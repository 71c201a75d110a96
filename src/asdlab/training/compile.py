"""`torch.compile` for a task's forward computation, with a fall-back to eager when compiling fails.

Compiling needs a working compiler tool chain (Triton on a GPU, a C++ compiler on a CPU) and may meet
operations it cannot trace; a training run should then go on, eagerly, with a warning, not stop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch

__all__ = ["CompiledCall"]

logger = logging.getLogger(__name__)


class CompiledCall:
    """Call `function` compiled with `backend` ("inductor", ...); eager when `backend` is None or when
    the first call fails to compile. Failures after a first successful call propagate.

    Attributes:
        worked: the compiled version has run.
        failed: compiling failed; calls run eagerly.
    """

    def __init__(self, function: Callable[..., Any], backend: str | Callable | None, *, what: str):
        self.function, self.backend, self.what = function, backend, what
        self.compiled: Callable[..., Any] | None = None
        self.worked = False
        self.failed = False

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.backend is None or self.failed:
            return self.function(*args, **kwargs)
        if self.worked:
            return self.compiled(*args, **kwargs)
        try:
            if self.compiled is None:
                self.compiled = torch.compile(self.function, backend=self.backend)
            out = self.compiled(*args, **kwargs)
        except Exception as error:  # a missing compiler / Triton, an unsupported op: any of them means eager
            logger.warning("torch.compile(backend=%r) of the %s failed; running eagerly: %s", self.backend,
                           self.what, (str(error).splitlines() or [type(error).__name__])[0])
            self.failed = True
            return self.function(*args, **kwargs)
        self.worked = True
        return out
