"""Frozen vs fine-tuned AudioSet MobileNet (mn04) with kNN and density-kNN, on the synthetic set or the
MIMII fan folds (`_real_folds.py`, attributes hidden): AUC source / target, pAUC (harmonic means over machines) and the
official score Ω, mean ± std over seeds or folds.

    python benchmarks/mn04_eval.py synthetic --seeds 0 1 2 [--set finetune.steps=100] [--out table.md]
    python benchmarks/mn04_eval.py fan --folds 0 1 2 3 4 [--set ...]

Kinds: "frozen" scores the pre-trained network's embeddings (the recipe's backbone, no training);
"fine-tuned" runs the whole recipe (pseudo-attributes for attribute-less machines, fine-tuning; stages
cached under --work). Each kind's clips are embedded once and scored with `knn` and `density-knn`. The weights come
from `ASDLAB_WEIGHTS_DIR` (default: ../shared/models/efficientat-mn04).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _real_folds import fold_root  # noqa: E402

N_FOLDS = 5

from asdlab.data.index import index_dataset  # noqa: E402
from asdlab.embeddings.extract import extract_embeddings  # noqa: E402
from asdlab.pipeline.backbones import load_backbone  # noqa: E402
from asdlab.pipeline.experiment import (  # noqa: E402
    ExperimentConfig,
    build_system,
    load_experiment_config,
    prepare_data,
)
from asdlab.pipeline.scoring import score_embeddings  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BACKENDS = ("knn", "density-knn")


def _kinds(config: ExperimentConfig, kinds: list[str]) -> dict[str, ExperimentConfig]:
    out = {}
    if "frozen" in kinds:
        out["frozen"] = replace(config, finetune=None, pseudo=None)
    if "fine-tuned" in kinds:
        out["fine-tuned"] = config
    return out


def _evaluate(config: ExperimentConfig, kinds: list[str], seed: int, out: Path) -> dict[str, tuple]:
    """{"<kind> / <backend>": (AUC source, AUC target, pAUC, Ω %)}; clips are embedded once per kind."""
    cache = out / "cache"
    root, data_key = prepare_data(config.data, cache, print)
    records = index_dataset(root, splits=("train", "test"))
    rows = {}
    for kind, kind_config in _kinds(config, kinds).items():
        build = build_system(kind_config, root, data_key, seed=seed, cache_root=cache, log=print)
        backbone = load_backbone(build.backbone)
        started = time.perf_counter()
        table = extract_embeddings(records, backbone, sample_rate=backbone.sample_rate).table
        print(f"  {kind}: {len(table)} clips embedded in {time.perf_counter() - started:.0f} s")
        for backend in BACKENDS:
            scores = out / "scores" / f"{kind}-{backend}-seed{seed}"
            result = score_embeddings(table, scores, replace(config.scoring, backend=backend), ground_truth=root,
                                      confidence_interval=False)
            rows[f"{kind} / {backend}"] = _row_values(result.summary)
    return rows


def _row_values(summary) -> tuple[float, float, float, float]:
    h = summary.harmonic_mean
    return h.auc_source, h.auc_target, h.pauc, 100 * summary.official_score


def _format(results: dict[str, list[tuple[float, float, float, float]]], unit: str) -> str:
    lines = [f"| variant | {unit} | AUC source | AUC target | pAUC | Ω (%) |", "|---|---|---|---|---|---|"]
    for name, rows in results.items():
        values = np.array(rows)
        cells = []
        for j in range(4):
            mean, std = values[:, j].mean(), values[:, j].std(ddof=1) if len(values) > 1 else 0.0
            cells.append(f"{mean:.2f} ± {std:.2f}" if j == 3 else f"{mean:.3f} ± {std:.3f}")
        lines.append(f"| {name} | {len(rows)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", choices=("synthetic", "fan"))
    parser.add_argument("--recipe", default="mn04-arcface")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds (synthetic)")
    parser.add_argument("--folds", type=int, nargs="+", default=list(range(N_FOLDS)), help="fan folds")
    parser.add_argument("--kinds", nargs="+", choices=("frozen", "fine-tuned"), default=["frozen", "fine-tuned"])
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--work", default="runs/mn04_eval", help="experiment folders (stages are cached)")
    parser.add_argument("--shared", default=str(REPO.parent / "shared"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=None, help="also write the table (markdown) here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault("ASDLAB_WEIGHTS_DIR", str(Path(args.shared) / "models" / "efficientat-mn04"))

    results: dict[str, list] = {}
    started = time.perf_counter()
    tag = "-".join([args.recipe, *(o.replace("/", "_") for o in args.overrides)])
    if args.dataset == "synthetic":
        config = load_experiment_config(args.recipe, overrides=args.overrides, small_scale=True)
        runs = [(config, seed, Path(args.work) / "synthetic" / tag) for seed in args.seeds]
        unit = "seeds"
    else:
        runs = []
        for fold in args.folds:
            root = fold_root(Path(args.work) / "fan-data" / f"fold{fold}", fold)
            config = load_experiment_config(args.recipe, overrides=[*args.overrides, f"data.root={root}"])
            runs.append((config, 0, Path(args.work) / "fan" / f"fold{fold}" / tag))
        unit = "folds"
    for config, seed, out in runs:
        print(f"{out} seed {seed}")
        for name, values in _evaluate(config, args.kinds, seed, out).items():
            results.setdefault(name, []).append(values)
    table = _format(results, unit)
    header = (f"{args.dataset}, recipe {args.recipe} {' '.join(args.overrides)}; "
              f"{time.perf_counter() - started:.0f} s on {args.threads} threads")
    print(header + "\n\n" + table)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(header + "\n\n" + table + "\n")


if __name__ == "__main__":
    main()
