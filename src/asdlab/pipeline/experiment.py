"""A whole experiment from one configuration: data -> DAP -> pseudo-labels -> fine-tuning -> scores.

`ExperimentConfig` nests one settings dataclass per stage (None = stage off). `run_experiment` runs
every variant x seed; each stage's output is cached under `<out>/cache/<stage>-<key>/`, keyed by its
settings and its inputs' keys, so a rerun skips finished stages and a changed setting reruns only what
depends on it. `build_system` (the stages up to the embedding model) is also what `asdlab fit` uses.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

import numpy as np

from asdlab import __version__
from asdlab._io import atomic_write_text
from asdlab.data.index import index_dataset
from asdlab.data.synth import generate_dataset, generator_fingerprint
from asdlab.encoders.pretrained import resolve_weights
from asdlab.errors import ConfigError
from asdlab.metrics.dcase import EvaluationSummary
from asdlab.pipeline.backbones import BackboneSpec
from asdlab.pipeline.cache import StageRun, run_stage
from asdlab.pipeline.config_io import apply_overrides, from_dict, parse_override, read_yaml, to_dict
from asdlab.pipeline.experiment_ensembles import EnsembleSpec, check_ensembles, run_ensemble_stage
from asdlab.pipeline.experiment_results import (
    COLUMNS,
    ExperimentResult,
    VariantResult,
    format_results_table,
    pseudo_agreement,
    score_columns,
    summary_rows,
    write_results_csv,
)
from asdlab.pipeline.finetune import FinetuneSettings, run_finetuning
from asdlab.pipeline.pretrain import PretrainSettings, run_pretraining
from asdlab.pipeline.pseudo_label import PseudoLabelSettings, run_pseudo_labeling
from asdlab.pipeline.scoring import ScoreSettings

__all__ = [
    "DataConfig",
    "EnsembleSpec",
    "ExperimentConfig",
    "SystemBuild",
    "VariantResult",
    "ExperimentResult",
    "load_experiment_config",
    "build_system",
    "prepare_data",
    "run_experiment",
    "provenance",
    "summary_rows",
    "format_results_table",
]

logger = logging.getLogger(__name__)

Log = Callable[[str], None]


@dataclass(frozen=True)
class DataConfig:
    """Where the clips come from.

    Attributes:
        root: a DCASE-layout dataset root (dev and/or eval data; each machine's `train/` and `test/`).
        synthetic: generate the project's synthetic dataset instead (the settings below), cached.
        machines, train_source, train_target, test_per_group, duration_s, hide_attributes,
        seed: `asdlab.data.synth.generate_dataset` arguments (synthetic only).
        pretrain_roots: more roots whose train clips DAP also uses ("DAP-full": DCASE 2020-2025).
    """

    root: str | None = None
    synthetic: bool = False
    machines: int = 4
    train_source: int = 120
    train_target: int = 6
    test_per_group: int = 20
    duration_s: float = 2.0
    hide_attributes: int = 0
    seed: int = 0
    pretrain_roots: tuple[str, ...] = ()


@dataclass(frozen=True)
class ExperimentConfig:
    """One experiment (see `recipes/` for examples).

    Attributes:
        name: the experiment's name (output folder).
        seeds: every variant runs once per seed (papers report mean ± std over three).
        data: see `DataConfig`.
        backbone: the general encoder: the system itself when nothing is trained, the GP embedding
            source for pseudo-labels, and the initial weights of fine-tuning without DAP.
        pretrain: DAP settings; None = no DAP.
        pseudo: pseudo-labelling settings for attribute-less machines; None = no pseudo-labels ("N/A").
        pseudo_source: embeddings to cluster: "dap" (the DAP encoder), "gp" (`backbone`), "ft"
            (a model fine-tuned with each attribute-less machine as one class), or "own" (the encoder
            the pseudo section names itself: `pseudo.backbone` / `pseudo.weights`, e.g. logmel-stats
            or the AudioSet MobileNet for a CNN trained from scratch, whose `backbone` is untrained).
        finetune: model-adaptation settings; None = score with the (DAP or general) encoder directly.
        finetune_from: initial encoder of fine-tuning: "dap" (needs `pretrain`) or "backbone".
        scoring: backend, normalisation and decision threshold.
        report: write the HTML report.
        variants: named overrides of this configuration ({"GP": {"pseudo_source": "gp"}}); none = one
            variant named after the experiment.
        ensembles: named fusions of variants, scored per seed like one more variant (`EnsembleSpec`).
        small_scale: the overrides that make the recipe run in minutes on a CPU with the synthetic
            dataset (`asdlab run RECIPE --synthetic`; the tests and the demo use them).
    """

    name: str = "experiment"
    seeds: tuple[int, ...] = (0,)
    data: DataConfig = field(default_factory=DataConfig)
    backbone: BackboneSpec = field(default_factory=BackboneSpec)
    pretrain: PretrainSettings | None = None
    pseudo: PseudoLabelSettings | None = None
    pseudo_source: Literal["dap", "gp", "ft", "own"] = "dap"
    finetune: FinetuneSettings | None = None
    finetune_from: Literal["dap", "backbone"] = "backbone"
    scoring: ScoreSettings = field(default_factory=ScoreSettings)
    report: bool = True
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)
    ensembles: dict[str, EnsembleSpec] = field(default_factory=dict)
    small_scale: dict[str, Any] = field(default_factory=dict)

    def variant_names(self) -> list[str]:
        """The variants' names (the experiment's own name when it has no variants)."""
        return list(self.variants) or [self.name]

    def variant(self, name: str) -> ExperimentConfig:
        """The configuration of one variant (its overrides applied, no variants left)."""
        if not self.variants:
            return self
        if name not in self.variants:
            raise ConfigError(f"{self.name}: no variant {name!r}; choose one of {', '.join(self.variants)}")
        base = {k: v for k, v in to_dict(self).items() if k not in ("variants", "ensembles", "small_scale")}
        return from_dict(ExperimentConfig, apply_overrides(base, self.variants[name]), where=f"variant {name}")


RECIPES_DIR = Path(__file__).parent / "recipes"


def list_recipes() -> list[str]:
    """Names of the recipes shipped with asdlab (`asdlab/pipeline/recipes/*.yaml`)."""
    return sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))


def load_experiment_config(
    name_or_path: str | os.PathLike,
    *,
    overrides: Sequence[str] | Mapping[str, Any] = (),
    small_scale: bool = False,
) -> ExperimentConfig:
    """Read a configuration file, or a shipped recipe by name, with `--set key=value` overrides.

    With `small_scale`, the file's `small_scale` overrides and `data.synthetic: true` are applied
    first (then `overrides`).

    Raises:
        ConfigError: unknown recipe, unreadable file, unknown key or wrong type (naming file and key),
            or an ensemble of unknown or too few variants.
    """
    path = Path(name_or_path)
    if not path.suffix and not path.exists():
        path = RECIPES_DIR / f"{name_or_path}.yaml"
        if not path.exists():
            raise ConfigError(f"unknown recipe {str(name_or_path)!r}; shipped recipes: {', '.join(list_recipes())}")
    data = read_yaml(path)
    if small_scale:
        small = data.get("small_scale") or {}
        if not isinstance(small, Mapping):
            raise ConfigError(f"{path}: small_scale must be a mapping of KEY: VALUE overrides")
        data = apply_overrides(data, {"data.synthetic": True, **small})
    if not isinstance(overrides, Mapping):
        overrides = dict(parse_override(item) for item in overrides)
    data = apply_overrides(data, overrides)
    data.setdefault("name", path.stem)
    config = from_dict(ExperimentConfig, data, where=str(path))
    check_ensembles(config.ensembles, config.variant_names(), where=str(path))
    return config


def provenance() -> dict[str, Any]:
    """Versions, platform and git commit, saved beside every result."""
    versions = {}
    for package in ("asdlab", "torch", "numpy", "scipy", "scikit-learn", "lightning", "faiss-cpu", "peft"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    commit = None
    try:
        source = Path(__file__).resolve().parent
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=source, capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        pass
    return {"versions": versions, "python": sys.version.split()[0], "platform": platform.platform(),
            "git_commit": commit, "asdlab": __version__}


# ----------------------------------------------------------------------------------------------
# Stages


def prepare_data(config: DataConfig, cache_root: Path, log: Log = logger.info) -> tuple[Path, str]:
    """The dataset root and its cache key (the synthetic dataset is generated once, then reused)."""
    if not config.synthetic:
        if config.root is None:
            raise ConfigError("data.root is not set (or set data.synthetic: true for the synthetic dataset)")
        root = Path(config.root)
        if not root.is_dir():
            raise ConfigError(f"data.root {root}: no such folder")
        return root, f"root:{root.resolve()}"
    settings = {k: v for k, v in to_dict(config).items() if k not in ("root", "synthetic", "pretrain_roots")}
    settings["generator"] = generator_fingerprint()  # a new generator makes new clips

    def build(directory: Path) -> None:
        generate_dataset(directory / "data", machines=config.machines, train_source=config.train_source,
                         train_target=config.train_target, test_per_group=config.test_per_group,
                         duration_s=config.duration_s, hide_attributes=config.hide_attributes, seed=config.seed,
                         overwrite=True)

    run = run_stage(cache_root, "synth", build, settings=settings)
    log(f"data: synthetic dataset {'reused' if run.cached else 'generated'} ({run.directory / 'data'})")
    return run.directory / "data", run.key


@dataclass(frozen=True)
class SystemBuild:
    """The stages of one variant and seed up to the embedding model."""

    backbone: BackboneSpec
    stages: tuple[StageRun, ...]
    key: str
    pseudo_dir: Path | None = None  # the pseudo-label stage's folder (clustering.json, maps)


def _stage_log(log: Log, run: StageRun) -> None:
    state = "cached" if run.cached else f"done in {run.wall_s:.1f} s"
    log(f"  {run.stage}: {state} ({run.directory.name})")


def build_system(
    config: ExperimentConfig,
    data_root: Path,
    data_key: str,
    *,
    seed: int,
    cache_root: Path,
    log: Log = logger.info,
    progress: Callable[[Any], None] | None = None,
) -> SystemBuild:
    """Run DAP, pseudo-labelling and fine-tuning as configured (cached) and say which model embeds.

    Args:
        config: one variant's configuration.
        data_root: the dataset (train clips are used; test clips never).
        data_key: its cache key.
        seed: the run's seed (training initialisation, data order, masks, clustering).
        cache_root: where stage folders live.
        log: one-line stage reports.
        progress: training progress callback (`TrainProgress`).
    """
    # "pretrained" becomes the released file's path here, so every stage and an exported detector get a file.
    weights = resolve_weights(config.backbone.preset, config.backbone.weights)
    config = replace(config, backbone=replace(config.backbone, weights=weights))
    stages: list[StageRun] = []
    dap_spec: BackboneSpec | None = None
    dap_key = ""
    if config.pretrain is not None:
        settings = replace(config.pretrain, seed=seed)
        roots = [str(data_root), *config.data.pretrain_roots]
        run = run_stage(cache_root, "pretrain",
                        lambda d: run_pretraining(roots, d, settings, resume=True, progress=progress),
                        settings=settings, inputs=(data_key, *config.data.pretrain_roots))
        stages.append(run)
        _stage_log(log, run)
        dap_spec = BackboneSpec(preset=settings.preset, weights=str(run.directory / "encoder.safetensors"),
                                level=settings.level)
        dap_key = run.key

    def finetune_stage(pseudo_csv: Path | None, inputs: tuple[str, ...]) -> StageRun:
        assert config.finetune is not None
        settings = replace(config.finetune, seed=seed)
        if config.finetune_from == "dap":
            if dap_spec is None:
                raise ConfigError("finetune_from: dap needs a pretrain section (or finetune_from: backbone)")
            init, init_key = dap_spec.weights, dap_key
        else:
            init, init_key = config.backbone.weights, to_dict(config.backbone)
        run = run_stage(
            cache_root, "finetune",
            lambda d: run_finetuning(data_root, d, settings, init_weights=init, pseudo_attributes=pseudo_csv,
                                     resume=True, progress=progress),
            settings=settings, inputs=(data_key, json.dumps(init_key, sort_keys=True, default=str), *inputs),
        )
        _stage_log(log, run)
        return run

    pseudo_dir = None
    pseudo_key = ""
    if config.pseudo is not None and not _needs_pseudo_labels(data_root, config.pseudo):
        log("  pseudo: skipped (every machine type's training clips carry attributes)")
    elif config.pseudo is not None:
        if config.pseudo_source == "own":
            source = BackboneSpec(preset=config.pseudo.backbone, weights=config.pseudo.weights)
            source_key = json.dumps(to_dict(source), sort_keys=True)
        elif config.pseudo_source == "dap":
            if dap_spec is None:
                raise ConfigError("pseudo_source: dap needs a pretrain section")
            source, source_key = dap_spec, dap_key
        elif config.pseudo_source == "gp":
            source, source_key = config.backbone, json.dumps(to_dict(config.backbone), sort_keys=True)
        else:
            if config.finetune is None:
                raise ConfigError("pseudo_source: ft needs a finetune section")
            one_class = finetune_stage(None, ("one-class",))
            stages.append(one_class)
            source, source_key = BackboneSpec(model_dir=str(one_class.directory)), one_class.key
        if config.pseudo_source == "own":
            settings = replace(config.pseudo, seed=seed)
        elif source.model_dir is None:
            settings = replace(config.pseudo, seed=seed, backbone=source.preset, weights=source.weights)
        else:  # embedded below with the fine-tuned model; its folder names them in clustering.json and the maps
            settings = replace(config.pseudo, seed=seed, backbone="fine-tuned", weights=source.model_dir)

        def pseudo_build(directory: Path) -> None:
            embeddings = None
            if source.model_dir is not None:
                from asdlab.embeddings.extract import extract_embeddings
                from asdlab.pipeline.backbones import load_backbone

                backbone = load_backbone(source)
                records = index_dataset(data_root, splits=("train",))
                embeddings = extract_embeddings(records, backbone, sample_rate=backbone.sample_rate).table
            run_pseudo_labeling(data_root, directory, settings, embeddings=embeddings)

        run = run_stage(cache_root, "pseudo", pseudo_build, settings=settings, inputs=(data_key, source_key))
        stages.append(run)
        _stage_log(log, run)
        pseudo_dir, pseudo_key = run.directory, run.key

    if config.finetune is not None:
        csv_path = None if pseudo_dir is None else pseudo_dir / "pseudo_attributes.csv"
        run = finetune_stage(csv_path, (pseudo_key,))
        stages.append(run)
        backbone = replace(config.backbone, preset="", weights=None, model_dir=str(run.directory))
    elif dap_spec is not None:
        backbone = replace(config.backbone, preset=dap_spec.preset, weights=dap_spec.weights)
    else:
        backbone = replace(config.backbone, seed=seed)
    key = "-".join(s.key for s in stages) or json.dumps(to_dict(backbone), sort_keys=True)
    return SystemBuild(backbone=backbone, stages=tuple(stages), key=key, pseudo_dir=pseudo_dir)


def _needs_pseudo_labels(data_root: Path, settings: PseudoLabelSettings) -> bool:
    """Whether the pseudo-label stage has a machine type to cluster (attribute-less, or hidden on request)."""
    if settings.hide_attributes:
        return True
    records = index_dataset(data_root, splits=settings.splits)
    with_attributes = {r.machine for r in records if r.has_attributes}
    return any(r.machine not in with_attributes for r in records)


# ----------------------------------------------------------------------------------------------
# Scoring, tables, the whole experiment


def _machine_groups(data_root: Path) -> tuple[set[str], set[str]]:
    """(machines of the eval set, machines whose train clips carry no attribute)."""
    records = index_dataset(data_root, splits=("train",))
    eval_machines = {r.machine for r in records if "eval_data" in Path(r.path).parts}
    by_machine: dict[str, set[str]] = {}
    for r in records:
        by_machine.setdefault(r.machine, set()).add(r.attributes)
    no_attribute = {m for m, attrs in by_machine.items() if attrs <= {"noAttribute", ""}}
    return eval_machines, no_attribute


def score_system(
    build: SystemBuild,
    scoring: ScoreSettings,
    data_root: Path,
    data_key: str,
    *,
    cache_root: Path,
    log: Log = logger.info,
) -> tuple[StageRun, EvaluationSummary | None]:
    """Embed train and test clips with the built model and score them (cached)."""
    from asdlab.embeddings.extract import extract_embeddings
    from asdlab.metrics.files import evaluate_scores_dir
    from asdlab.pipeline.backbones import load_backbone
    from asdlab.pipeline.scoring import score_embeddings

    computed: dict[str, EvaluationSummary | None] = {}

    def build_scores(directory: Path) -> None:
        backbone = load_backbone(build.backbone)
        records = index_dataset(data_root, splits=("train", "test"))
        extraction = extract_embeddings(records, backbone, sample_rate=backbone.sample_rate)
        for failure in extraction.failures:
            log(f"  skipped {failure.path}: {failure.problem}")
        extraction.table.save(directory / "embeddings.npz")
        test = extraction.table.label[extraction.table.split == "test"]
        labelled = bool(np.isin(test, ("normal", "anomaly")).all())
        result = score_embeddings(extraction.table, directory / "scores", scoring,
                                  ground_truth=data_root if labelled else None)
        computed["summary"] = result.summary

    run = run_stage(cache_root, "scores", build_scores, settings=scoring,
                    inputs=(data_key, build.key, json.dumps(to_dict(build.backbone), sort_keys=True)))
    _stage_log(log, run)
    if "summary" in computed:
        return run, computed["summary"]
    scores = run.directory / "scores"  # a cached stage: evaluate its score files again
    summary = None
    if (scores / "evaluation.csv").exists():
        summary = evaluate_scores_dir(scores, data_root, confidence_interval=False)
    return run, summary


@dataclass(frozen=True)
class _Run:
    """What every variant and seed of one `run_experiment` call shares."""

    data_root: Path
    data_key: str
    cache_root: Path
    eval_machines: set[str]
    no_attribute: set[str]
    log: Log
    progress: Callable[[Any], None] | None

    def columns(self, summary: EvaluationSummary | None) -> dict[str, float | None]:
        if summary is None:
            return {}
        return score_columns(summary, eval_machines=self.eval_machines, no_attribute=self.no_attribute)


def _run_variant(name: str, config: ExperimentConfig, seed: int, run: _Run) -> tuple[VariantResult, StageRun]:
    """Build, score and evaluate one variant at one seed; also returns its score stage (for ensembles)."""
    run.log(f"{name} (seed {seed})")
    build = build_system(config, run.data_root, run.data_key, seed=seed, cache_root=run.cache_root, log=run.log,
                         progress=run.progress)
    scores, summary = score_system(build, config.scoring, run.data_root, run.data_key, cache_root=run.cache_root,
                                   log=run.log)
    logs = {f"{s.stage} ({name}, seed {seed})": s.directory / "train_log.csv" for s in build.stages
            if (s.directory / "train_log.csv").exists()}
    maps = tuple(sorted(build.pseudo_dir.glob("*.png"))) if build.pseudo_dir is not None else ()
    result = VariantResult(variant=name, seed=seed, scores_dir=scores.directory / "scores", summary=summary,
                           columns=run.columns(summary), pseudo_agreement=pseudo_agreement(build.pseudo_dir),
                           training_logs=logs, maps=maps)
    return result, scores


def _run_seed(
    config: ExperimentConfig, variants: Mapping[str, ExperimentConfig], seed: int, run: _Run
) -> list[VariantResult]:
    """Every variant at one seed, then every ensemble of those variants' scores."""
    scored = {name: _run_variant(name, variant_config, seed, run) for name, variant_config in variants.items()}
    results = [result for result, _ in scored.values()]
    for name, spec in config.ensembles.items():
        run.log(f"{name} (seed {seed}): ensemble of {', '.join(spec.members)}")
        # evaluate the ensemble where its members were evaluated (labelled test clips)
        evaluated = all(scored[m][0].summary is not None for m in spec.members)
        stage, summary = run_ensemble_stage(spec, {m: scored[m][1] for m in spec.members}, cache_root=run.cache_root,
                                            ground_truth=run.data_root if evaluated else None,
                                            eval_machines=run.eval_machines)
        _stage_log(run.log, stage)
        results.append(VariantResult(variant=name, seed=seed, scores_dir=stage.directory / "scores", summary=summary,
                                     columns=run.columns(summary)))
    return results


def run_experiment(
    config: ExperimentConfig,
    out_dir: str | os.PathLike,
    *,
    log: Log = logger.info,
    progress: Callable[[Any], None] | None = None,
) -> ExperimentResult:
    """Run every variant x seed of `config`, and its ensembles; write tables, the resolved config and provenance.

    Seed by seed, every variant is built and scored, then each ensemble fuses its members' scores of
    that seed and is evaluated like one more variant. Writes `<out>/config.yaml` (resolved),
    `<out>/provenance.json`, `<out>/results.csv` (one row per variant or ensemble and seed),
    `<out>/results.md` (mean ± std), stage folders under `<out>/cache/`, and the HTML report under
    `<out>/report/` when `config.report`.

    Raises:
        ConfigError: an invalid variant or ensemble, or a stage's invalid settings.
    """
    import yaml

    check_ensembles(config.ensembles, config.variant_names(), where=config.name)
    variants = {name: config.variant(name) for name in config.variant_names()}  # bad overrides fail before any work
    out_dir = Path(out_dir)
    cache_root = out_dir / "cache"
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "config.yaml", yaml.safe_dump(to_dict(config), sort_keys=False))
    atomic_write_text(out_dir / "provenance.json", json.dumps(provenance(), indent=2) + "\n")
    data_root, data_key = prepare_data(config.data, cache_root, log)
    eval_machines, no_attribute = _machine_groups(data_root)
    run = _Run(data_root, data_key, cache_root, eval_machines, no_attribute, log, progress)
    per_seed = [result for seed in config.seeds for result in _run_seed(config, variants, seed, run)]
    order = {name: i for i, name in enumerate([*variants, *config.ensembles])}
    results = sorted(per_seed, key=lambda r: order[r.variant])  # stable: by variant, then seed
    table = format_results_table(results)
    atomic_write_text(out_dir / "results.md", table + "\n")
    write_results_csv(results, out_dir / "results.csv")
    report_path = None
    if config.report:
        report_path = write_experiment_report(config, results, out_dir / "report", data_root=data_root)
    return ExperimentResult(out_dir=out_dir, results=tuple(results), table_path=out_dir / "results.md",
                            report_path=report_path)


def write_experiment_report(
    config: ExperimentConfig,
    results: Sequence[VariantResult],
    out_dir: Path,
    *,
    data_root: Path,
) -> Path:
    """The HTML report of an experiment: results table, per-system ROC/histograms, curves, maps."""
    from asdlab.report.html import ReportImage, ReportSystem, ReportTable, write_report

    present = [c for c in COLUMNS if any(r.columns.get(c) is not None for r in results)]
    rows = [[r.variant, r.seed, *(r.columns.get(c) for c in present)] for r in results]
    summary_columns, summary = summary_rows(results)
    tables = [ReportTable(title="Official score (%), mean ± std over seeds", columns=summary_columns, rows=summary),
              ReportTable(title="Official score (%) per variant and seed", columns=["variant", "seed", *present],
                          rows=rows)]
    agreement_rows = [
        [r.variant, r.seed, group, a["k"], a["true_k"], a["ari"], a["nmi"]]
        for r in results for group, a in sorted(r.pseudo_agreement.items())
    ]
    if agreement_rows:
        tables.append(ReportTable(title="Pseudo-attributes against the true attributes",
                                  columns=["variant", "seed", "machine/section", "K", "true K", "ARI", "NMI"],
                                  rows=agreement_rows))
    systems = [ReportSystem(name=f"{r.variant} (seed {r.seed})", scores_dir=r.scores_dir, ground_truth_root=data_root)
               for r in results if r.summary is not None]
    logs = {name: path for r in results for name, path in r.training_logs.items()}
    images = [ReportImage(title=f"{r.variant} (seed {r.seed}): {p.stem}", path=p) for r in results for p in r.maps]
    notes = f"Experiment {config.name}; data {data_root}."
    return write_report(out_dir, title=f"asdlab: {config.name}", systems=systems, tables=tables,
                        training_logs=logs, images=images, notes=notes)
