"""Fit a recipe once per dataset root, keep its train + test embeddings, score them with every backend.

Shared by `real_clips.py` and `detector_candidates.py`. A system is a recipe with overrides (optionally
the recipe's own `small_scale` sizes); `embed_system` fits it with `asdlab.fit`'s code path
(`fit_detector`), embeds the root's test clips with the fitted detector and caches the table, so
backends (`score_table`) and ensembles (`score_ensemble`) re-score stored embeddings without training.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from asdlab.data.index import index_dataset
from asdlab.embeddings.table import EmbeddingTable
from asdlab.pipeline.config_io import read_yaml
from asdlab.pipeline.ensemble import run_ensemble
from asdlab.pipeline.experiment import RECIPES_DIR
from asdlab.pipeline.fit import fit_detector
from asdlab.pipeline.scoring import ScoreSettings, score_embeddings

log = logging.getLogger("benchmarks")

METRICS = ("auc_source", "auc_target", "pauc", "omega")


@dataclass(frozen=True)
class System:
    """A trainable detector: a recipe (shipped name or YAML path) with `--set`-style overrides."""

    name: str
    recipe: str
    overrides: Mapping[str, Any] = field(default_factory=dict)
    small_scale: bool = False  # apply the recipe file's `small_scale` overrides (its data.* keys excepted)

    def resolved_overrides(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.small_scale:
            path = Path(self.recipe) if Path(self.recipe).suffix else RECIPES_DIR / f"{self.recipe}.yaml"
            small = read_yaml(path).get("small_scale") or {}
            out.update({k: v for k, v in small.items() if not k.startswith("data.") and k != "seeds"})
        out.update(self.overrides)
        return out


def _key(*parts: Any) -> str:
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def embed_system(system: System, root: Path, work: Path, *, seed: int) -> tuple[EmbeddingTable, float]:
    """Train `system` on `root`'s train clips, embed train + test clips; cached under `work`.

    Returns:
        the table (train rows from the detector, test rows embedded by it) and the fit time in s
        (of the run that made the cache).
    """
    marker = json.loads((root / "fold.json").read_text()) if (root / "fold.json").is_file() else str(root)
    folder = work / f"{system.name}-{_key(system.recipe, system.resolved_overrides(), marker, seed)}"
    table_path, info_path = folder / "embeddings.npz", folder / "info.json"
    if table_path.is_file() and info_path.is_file():
        return EmbeddingTable.load(table_path), float(json.loads(info_path.read_text())["fit_s"])
    folder.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    detector = fit_detector(root, folder / "detector", recipe=system.recipe, overrides=system.resolved_overrides(),
                            seed=seed, work_dir=folder / "stages", log=log.info)
    fit_s = time.perf_counter() - start
    test = detector.embed(index_dataset(root, splits=("test",)))
    table = EmbeddingTable.concat([detector.train, test])
    table.save(table_path)
    info = {"system": asdict(system), "overrides": system.resolved_overrides(), "seed": seed, "root": str(root),
            "fit_s": fit_s, "embed_s": time.perf_counter() - start - fit_s}
    info_path.write_text(json.dumps(info, indent=1, default=str) + "\n")
    return table, fit_s


def _metrics(summary) -> dict[str, float]:
    mean = summary.harmonic_mean
    return {"auc_source": mean.auc_source, "auc_target": mean.auc_target, "pauc": mean.pauc,
            "omega": summary.official_score}


def score_table(table: EmbeddingTable, root: Path, out: Path, backend: str,
                params: Mapping[str, Any] | None = None) -> dict[str, float]:
    """Score stored embeddings with one backend (files under `out`); the harmonic means over machines and Ω."""
    settings = ScoreSettings(backend=backend, params=dict(params or {}), threshold="percentile")
    result = score_embeddings(table, out, settings, ground_truth=root, confidence_interval=False)
    return _metrics(result.summary)


def parse_backend(spec: str) -> tuple[str, dict[str, Any], str]:
    """`"domain-norm-knn:method=ratio,min_std=0.5"` -> (name, params, a folder-safe label)."""
    name, _, text = spec.partition(":")
    params = {}
    for item in filter(None, text.split(",")):
        key, _, value = item.partition("=")
        params[key] = yaml.safe_load(value)
    return name, params, spec.replace(":", "_").replace("=", "-").replace(",", "_")


def score_ensemble(members: Sequence[Path], root: Path, out: Path) -> dict[str, float]:
    """Equal-weight fusion of scored systems' z-scores (each from its own out-of-fold training scores)."""
    names = [f"m{i}" for i in range(len(members))]
    result = run_ensemble(members, out, names=names, ground_truth=root, threshold_method="percentile",
                          confidence_interval=False)
    return _metrics(result.summary)


def mean_std(values: Sequence[float]) -> str:
    """`0.812 ± 0.034` (sample std over folds / seeds; a single value alone)."""
    values = [v for v in values if v is not None and np.isfinite(v)]
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{np.mean(values):.3f} ± {np.std(values, ddof=1):.3f}"
