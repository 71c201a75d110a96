"""Ensembles inside an experiment: the scored variants of one seed fused into one more system.

`EnsembleSpec` names member variants and their fusion weights (ensemble report, sec. 2): equal, given, or
"acp": searched by Adaptive Combination Perturbation on the labelled test clips of some machine types and
applied unchanged to all, so the other machine types are a held-out measure. `run_ensemble_stage` fuses the
members' scores folders with `asdlab.pipeline.ensemble.run_ensemble`, cached as a stage keyed by the spec
and the members' score-stage keys.
"""

from __future__ import annotations

import json

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
from asdlab._io import atomic_write_text
from asdlab.pipeline.ensemble import EnsembleNormalization, load_system, run_ensemble, tune_weights

__all__ = ["EnsembleSpec", "check_ensembles", "run_ensemble_stage"]


@dataclass(frozen=True)
class EnsembleSpec:
    """One ensemble of an experiment's variants.

    Attributes:
        members: the variants fused (at least two, distinct).
        weights: "equal", {member: weight} (non-negative, not all zero), or "acp": searched (ACP, the
            official score of the fused scores) on the test clips of `tune_machines` only. Weights tuned
            on all scored clips would be judged on the clips they were tuned on: the machine types not
            tuned on are the honest measure (at full scale, the evaluation set's: DCASE's "Eval" column).
        tune_machines: "acp": the machine types to tune on; empty = the development set's (every machine
            type not under an `eval_data` folder).
        search_steps: "acp": perturbation steps of the search (`asdlab.backends.search_weights`).
        normalization: each member's per machine/section normalisation, fitted on its training scores.
        threshold: the decision threshold method, applied to the fused training scores.
    """

    members: tuple[str, ...] = ()
    weights: Literal["equal", "acp"] | dict[str, float] = "equal"
    tune_machines: tuple[str, ...] = ()
    search_steps: int = 200
    normalization: EnsembleNormalization = "zscore"
    threshold: ThresholdMethod = "gamma"

    def fusion_weights(self) -> FusionWeights:
        """The weights by member name (raises ConfigError for invalid ones); "acp" starts from equal ones."""
        if self.weights in ("equal", "acp"):
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
        if spec.weights != "acp" and (spec.tune_machines or spec.search_steps != EnsembleSpec.search_steps):
            raise ConfigError(f"{at}: tune_machines and search_steps apply to weights: acp only")
        if spec.weights not in ("equal", "acp") and set(spec.weights) != set(spec.members):
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
    eval_machines: set[str] | None = None,
) -> tuple[StageRun, EvaluationSummary | None]:
    """Fuse the members' scores folders of one seed into `<stage folder>/scores` (cached).

    Args:
        spec: the ensemble.
        members: member name -> its score stage (scores in `<directory>/scores`).
        cache_root: where stage folders live.
        ground_truth: the dataset root to evaluate on, or None when the members were not evaluated.
        eval_machines: machine types of the evaluation set ("acp" without `tune_machines` tunes on the others).

    Returns:
        The stage and the ensemble's evaluation (None without ground truth).

    Raises:
        ConfigError: "acp" without labels, or with no machine type left out of (or in) the tuning.
    """
    names = list(spec.members)
    computed: dict[str, EvaluationSummary | None] = {}

    def build(directory: Path) -> None:
        weights = spec.fusion_weights()
        if spec.weights == "acp":
            weights = _acp_weights(spec, [members[m].directory / "scores" for m in names], names, ground_truth,
                                   eval_machines or set(), directory)
        result = run_ensemble([members[m].directory / "scores" for m in names], directory / "scores", names=names,
                              weights=weights, ground_truth=ground_truth,
                              normalization=spec.normalization, threshold_method=spec.threshold)
        computed["summary"] = result.summary

    run = run_stage(cache_root, "ensemble", build, settings=spec, inputs=tuple(members[m].key for m in names))
    if "summary" in computed:
        return run, computed["summary"]
    scores = run.directory / "scores"  # a cached stage: evaluate its score files again
    if ground_truth is None or not (scores / "evaluation.csv").exists():
        return run, None
    return run, evaluate_scores_dir(scores, ground_truth, confidence_interval=False)


def _acp_weights(spec: EnsembleSpec, score_dirs: list[Path], names: list[str], ground_truth: Path | None,
                 eval_machines: set[str], directory: Path) -> FusionWeights:
    """ACP weights searched on the tuning machine types' test clips; written to `<directory>/acp.json`."""
    if ground_truth is None:
        raise ConfigError("ensemble weights: acp needs labelled test clips to tune on")
    systems = [load_system(d, name=n) for d, n in zip(score_dirs, names, strict=True)]
    scored = sorted({m for m, _ in systems[0].train})
    tune = sorted(spec.tune_machines) if spec.tune_machines else [m for m in scored if m not in eval_machines]
    held_out = [m for m in scored if m not in tune]
    if not tune or not held_out:
        raise ConfigError(f"ensemble weights: acp tunes on {tune} and holds out {held_out}: both must be non-empty "
                          f"(machine types scored: {scored}; name them in tune_machines)")
    tuning = tune_weights(systems, ground_truth, normalization=spec.normalization, n_iter=spec.search_steps,
                          machines=tune)
    record = {"tune_machines": tune, "held_out_machines": held_out, "weights": tuning.search.weights.as_dict(),
              "official_score_tuned": tuning.search.objective,
              "official_score_tuned_equal_weights": tuning.search.initial_objective,
              "member_official_scores_tuned": dict(tuning.member_scores)}
    atomic_write_text(directory / "acp.json", json.dumps(record, indent=2) + "\n")
    return tuning.search.weights
