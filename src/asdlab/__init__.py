"""asdlab: anomalous machine sound detection (DCASE Task 2) in plain PyTorch.

The public API mirrors the CLI:

- `fit(data_root, model_dir, recipe=...)` trains a detector on every machine's `train/` clips
  (`asdlab fit`) and returns a `Detector`; `load_detector(model_dir)` reads one back (a folder, or the
  one-file `.asdlab` export of `asdlab export`).
- `score(model_dir, data_root, out_dir)` writes DCASE `anomaly_score_*` / `decision_result_*` files
  for every `test/` clip (`asdlab score`), evaluated when the clips carry labels.
- `evaluate(scores_dir, ground_truth)` computes the official DCASE metric of score files.
- `run_experiment` / `load_experiment_config` run a whole configured experiment (`asdlab run`).

Heavy modules (torch) load on first use, so `import asdlab` stays fast.
"""

from __future__ import annotations

import os
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("asdlab")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

if TYPE_CHECKING:
    from asdlab.detector import Detector
    from asdlab.metrics.dcase import EvaluationSummary
    from asdlab.pipeline.scoring import ScoringResult

__all__ = [
    "__version__",
    "fit",
    "score",
    "evaluate",
    "Detector",
    "load_detector",
    "run_experiment",
    "load_experiment_config",
]

_LAZY = {
    "Detector": "asdlab.detector",
    "load_detector": "asdlab.detector",
    "run_experiment": "asdlab.pipeline.experiment",
    "load_experiment_config": "asdlab.pipeline.experiment",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'asdlab' has no attribute {name!r}")


def fit(
    data_root: str | os.PathLike,
    model_dir: str | os.PathLike,
    *,
    recipe: str | os.PathLike | None = None,
    overrides: list[str] | dict[str, Any] | None = None,
    seed: int = 0,
) -> Detector:
    """Train a detector on the normal `train/` clips of every machine type under `data_root`.

    Args:
        data_root: `<root>/<Machine>/train/*.wav` or a DCASE root (`dev_data/raw/<Machine>/train`).
        model_dir: detector folder to write.
        recipe: shipped recipe name or YAML file; None = the default recipe ("mn04-arcface", `asdlab.pipeline.fit.DEFAULT_RECIPE`).
        overrides: recipe changes, e.g. `["finetune.max_steps=200"]`.
        seed: training seed.

    Returns:
        the fitted `Detector` (also saved in `model_dir`).
    """
    from asdlab.pipeline.fit import DEFAULT_RECIPE, fit_detector

    return fit_detector(data_root, model_dir, recipe=recipe or DEFAULT_RECIPE, overrides=overrides or (), seed=seed)


def score(
    model_dir: str | os.PathLike | Detector,
    data_root: str | os.PathLike,
    out_dir: str | os.PathLike,
) -> ScoringResult:
    """Score every `test/` clip under `data_root` with a detector; write the DCASE score and decision files.

    Returns:
        the `ScoringResult` (its `summary` holds the official metric when the clips carry labels).
    """
    from asdlab.detector import Detector, load_detector

    detector = model_dir if isinstance(model_dir, Detector) else load_detector(model_dir)
    return detector.score(data_root, out_dir)


def evaluate(scores_dir: str | os.PathLike, ground_truth: str | os.PathLike) -> EvaluationSummary:
    """The official DCASE metric of a folder of `anomaly_score_*` files against a dataset root or evaluator folder."""
    from asdlab.metrics.files import evaluate_scores_dir

    return evaluate_scores_dir(scores_dir, ground_truth)
