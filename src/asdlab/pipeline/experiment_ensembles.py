"""Ensembles inside an experiment: the scored variants of one seed fused into one more system.

`EnsembleSpec` names member variants and their fusion weights (ensemble report, sec. 2);
`run_ensemble_stage` fuses the members' scores folders with `asdlab.pipeline.ensemble.run_ensemble`,
cached as a stage keyed by the spec and the members' score-stage keys.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from asdlab.backends.ensemble import FusionWeights
from asdlab.backends.thresholds import ThresholdMethod
from asdlab.errors import ConfigError
from asdlab.metrics.dcase import EvaluationSummary
from asdlab.metrics.files import evaluate_scores_dir
from asdlab.pipeline.cache import StageRun, run_stage
from asdlab.pipeline.ensemble import EnsembleNormalization, run_ensemble

__all__ = ["EnsembleSpec", "check_ensembles", "run_ensemble_stage"]


@dataclass(frozen=True)
class EnsembleSpec:
    """One ensemble of an experiment's variants.

    Attributes:
        members: the variants fused (at least two, distinct).
        weights: "equal", or {member: weight} (non-negative, not all zero). Weights tuned on the scored
            set itself would be judged on the clips they were tuned on; tune them on a separate labelled
            development set (`asdlab ensemble --tune-on`) and write them here.
        normalization: each member's per machine/section normalisation, fitted on its training scores.
        threshold: the decision threshold method, applied to the fused training scores.
    """

    members: tuple[str, ...] = ()
    weights: Literal["equal"] | dict[str, float] = "equal"
    normalization: EnsembleNormalization = "zscore"
    threshold: ThresholdMethod = "gamma"

    def fusion_weights(self) -> FusionWeights:
        """The weights by member name (raises ConfigError for invalid ones)."""
        if self.weights == "equal":
            return FusionWeights.uniform(self.members)
        return FusionWeights.from_dict({m: self.weights[m] for m in self.members})


def check_ensembles(ensembles: Mapping[str, EnsembleSpec], variants: Sequence[str], *, where: str) -> None:
    """Check that every ensemble fuses two or more distinct variants with weights for exactly those.

    Args:
        ensembles: name -> spec, as in `ExperimentConfig.ensembles`.
        variants: the experiment's variant names.
        where: the file or experiment named in error messages.

    Raises:
        ConfigError: naming the ensemble and the member or weight at fault.
    """
    for name, spec in ensembles.items():
        at = f"{where}: ensembles.{name}"
        if name in variants:
            raise ConfigError(f"{at}: {name!r} is also a variant's name; results are listed by name")
        if len(spec.members) < 2:
            raise ConfigError(f"{at}: an ensemble needs at least 2 members, got {list(spec.members)}")
        if len(set(spec.members)) != len(spec.members):
            raise ConfigError(f"{at}: members must be distinct, got {list(spec.members)}")
        for member in spec.members:
            if member not in variants:
                raise ConfigError(f"{at}: member {member!r} is not a variant (variants: {', '.join(variants)})")
        if spec.weights != "equal" and set(spec.weights) != set(spec.members):
            raise ConfigError(f"{at}: weights name {sorted(spec.weights)} but the members are {sorted(spec.members)}")
        try:
            spec.fusion_weights()
        except ConfigError as error:
            raise ConfigError(f"{at}.weights: {error}") from None


def run_ensemble_stage(
    spec: EnsembleSpec,
    members: Mapping[str, StageRun],
    *,
    cache_root: Path,
    ground_truth: Path | None,
) -> tuple[StageRun, EvaluationSummary | None]:
    """Fuse the members' scores folders of one seed into `<stage folder>/scores` (cached).

    Args:
        spec: the ensemble.
        members: member name -> its score stage (scores in `<directory>/scores`).
        cache_root: where stage folders live.
        ground_truth: the dataset root to evaluate on, or None when the members were not evaluated.

    Returns:
        The stage and the ensemble's evaluation (None without ground truth).
    """
    names = list(spec.members)
    computed: dict[str, EvaluationSummary | None] = {}

    def build(directory: Path) -> None:
        result = run_ensemble([members[m].directory / "scores" for m in names], directory / "scores", names=names,
                              weights=spec.fusion_weights(), ground_truth=ground_truth,
                              normalization=spec.normalization, threshold_method=spec.threshold)
        computed["summary"] = result.summary

    run = run_stage(cache_root, "ensemble", build, settings=spec, inputs=tuple(members[m].key for m in names))
    if "summary" in computed:
        return run, computed["summary"]
    scores = run.directory / "scores"  # a cached stage: evaluate its score files again
    if ground_truth is None or not (scores / "evaluation.csv").exists():
        return run, None
    return run, evaluate_scores_dir(scores, ground_truth, confidence_interval=False)
