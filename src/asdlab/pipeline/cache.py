"""Stage outputs cached on disk, keyed by the hash of the stage's settings and its inputs' keys.

A stage runs in `<root>/<stage>-<key>/`; `stage.json` is written last, so its presence means the
stage finished and a rerun skips it. An unfinished folder is handed back to the stage (training
stages resume from their checkpoint there). A changed setting gives a new key, so only the stages
that depend on it run again.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from asdlab._io import atomic_write_text
from asdlab.pipeline.config_io import config_hash, to_dict

__all__ = ["StageRun", "run_stage", "STAGE_MARKER"]

logger = logging.getLogger(__name__)

STAGE_MARKER = "stage.json"


@dataclass(frozen=True)
class StageRun:
    """One stage's folder and whether this call computed it or found it done."""

    stage: str
    key: str
    directory: Path
    cached: bool
    wall_s: float


def run_stage(
    root: str | os.PathLike,
    stage: str,
    build: Callable[[Path], Any],
    *,
    settings: Any,
    inputs: tuple[str, ...] = (),
) -> StageRun:
    """Run `build(directory)` unless the same stage with the same settings and inputs already finished.

    Args:
        root: the cache folder.
        stage: the stage's name (folder prefix).
        build: writes the stage's outputs into the folder it is given (creating what it needs);
            it may find an unfinished earlier attempt there and resume it.
        settings: the stage's settings (a dataclass or plain values), hashed into the key.
        inputs: keys of the stages (or data) this one reads, hashed into the key.

    Returns:
        `StageRun`; `key` is what downstream stages pass as one of their `inputs`.
    """
    key = config_hash(stage, settings, list(inputs))
    directory = Path(root) / f"{stage}-{key}"
    marker = directory / STAGE_MARKER
    if marker.is_file():
        logger.info("%s: reusing %s", stage, directory)
        return StageRun(stage=stage, key=key, directory=directory, cached=True, wall_s=0.0)
    directory.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    build(directory)
    wall = time.perf_counter() - start
    record = {"stage": stage, "key": key, "inputs": list(inputs), "settings": to_dict(settings), "wall_s": wall}
    atomic_write_text(marker, json.dumps(record, indent=2, default=str) + "\n")
    return StageRun(stage=stage, key=key, directory=directory, cached=False, wall_s=wall)
