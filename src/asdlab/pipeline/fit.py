"""Train a detector for one's own machines: every machine type's `train/` clips -> a detector folder.

`fit_detector` runs a recipe's stages (DAP, pseudo-labels, fine-tuning; cached in a work folder
beside the detector so an interrupted fit resumes) on the train clips only, embeds them, and saves
a self-contained detector (`asdlab.detector`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from asdlab.data.index import index_dataset
from asdlab.detector import Detector, save_detector
from asdlab.errors import ConfigError, DataError
from asdlab.pipeline.config_io import to_dict
from asdlab.pipeline.experiment import build_system, load_experiment_config, prepare_data, provenance

__all__ = ["DEFAULT_RECIPE", "fit_detector", "work_dir_for"]

logger = logging.getLogger(__name__)

# Chosen on real fan folds and synthetic seeds, attributes shown and hidden, against the two-branch CNN,
# the frozen mn04, log-mel statistics and their ensembles x every backend
# (benchmarks/results/detector_candidates.md, detector_default.md); fits 45 ten-second clips in about a minute.
DEFAULT_RECIPE = "mn04-arcface"


def work_dir_for(model_dir: str | os.PathLike) -> Path:
    """Where `fit_detector` keeps its stage outputs for `model_dir` (safe to delete after fitting)."""
    model_dir = Path(model_dir)
    return model_dir.with_name(f"{model_dir.name}.work")


def fit_detector(
    data_root: str | os.PathLike,
    model_dir: str | os.PathLike,
    *,
    recipe: str | os.PathLike = DEFAULT_RECIPE,
    overrides: Sequence[str] | Mapping[str, Any] = (),
    seed: int = 0,
    work_dir: str | os.PathLike | None = None,
    log: Callable[[str], None] = logger.info,
    progress: Callable[[Any], None] | None = None,
    device: str = "auto",
) -> Detector:
    """Train a detector on the normal `train/` clips under `data_root` and save it to `model_dir`.

    Args:
        data_root: a DCASE-layout root: `<root>/<Machine>/train/*.wav` or `<root>/dev_data/raw/<Machine>/train`.
            File names follow the DCASE grammar (section, domain, attributes), or, in a machine folder
            without any DCASE name, are arbitrary (own recordings, see `index_dataset`); test clips are ignored.
        model_dir: the detector folder to write (replaced if it exists).
        recipe: a shipped recipe name (`asdlab.pipeline.experiment.list_recipes()`) or a YAML file.
        overrides: `key=value` changes of the recipe (e.g. `finetune.max_steps=200`).
        seed: training seed.
        work_dir: stage cache; default `<model_dir>.work` beside it.
        log: one-line stage reports.
        progress: training progress callback.
        device: where the training clips are embedded ("auto": the GPU when there is one, in bf16);
            the recipe's training stages choose theirs (`accelerator`, `precision`, "auto" by default).

    Raises:
        ConfigError: unknown recipe, a recipe with several variants, bad overrides.
        DataError: no training clips under `data_root`; a machine with too few for the scoring backend
            (at least 2; density-normalised backends at least 3 in one domain), named.
    """
    config = load_experiment_config(recipe, overrides=overrides)
    if config.variants:
        raise ConfigError(f"recipe {config.name!r} defines variants ({', '.join(config.variants)}); "
                          "`fit` takes a single-system recipe")
    config = replace(config, data=replace(config.data, root=str(data_root), synthetic=False), seeds=(seed,))
    cache_root = Path(work_dir) if work_dir is not None else work_dir_for(model_dir)
    root, data_key = prepare_data(config.data, cache_root, log)
    records = index_dataset(root, splits=("train",))
    if not records:
        raise DataError(f"{root}: no training clips (expected <root>/<Machine>/train/*.wav or dev_data/raw/<Machine>/train)")
    build = build_system(config, root, data_key, seed=seed, cache_root=cache_root, log=log, progress=progress)
    from asdlab.embeddings.extract import extract_embeddings
    from asdlab.pipeline.backbones import load_backbone

    backbone = load_backbone(build.backbone)
    extraction = extract_embeddings(records, backbone, sample_rate=backbone.sample_rate, device=device)
    if extraction.failures:  # each one was logged once, with its reason, when it was met
        log(f"{len(extraction.failures)} training clip(s) could not be used and were left out")
    # a detector that cannot score (e.g. too few clips for the backend) is refused here, not at its first use
    Detector(Path(model_dir), build.backbone, config.scoring, extraction.table).fit_references()
    info = {"data_root": str(Path(root).resolve()), "seed": seed, "config": to_dict(config), **provenance()}
    detector = save_detector(model_dir, backbone=build.backbone, train=extraction.table, scoring=config.scoring,
                             recipe=config.name, info=info)
    log(f"detector for {len(detector.machines)} machine/section(s) -> {model_dir}")
    return detector
