"""Evidence for the default detector: every candidate recipe x backend, real fan folds and synthetic seeds, one table.

Candidates and ensembles come from `detector_candidates.yaml` (add a recipe there, e.g. branch h19b's
fine-tuned mn04). Data: the real MIMII fan folds of `real_clips.py` (source id00, target the extra set;
5 folds) and the synthetic default dataset (`generate_dataset` defaults, dataset and training seed
0, 1, 2), each with the attributes shown and hidden (every training name `noAttribute`: the
own-recordings case). Each candidate is fitted once per fold / seed (`asdlab fit`'s code), its train +
test embeddings are stored, and every backend re-scores them; ensembles fuse members' z-scored scores
per backend. Every row: AUC source / target, pAUC (harmonic means over machines) and Ω, mean ± std
over folds / seeds. Results are cached per fold, so a rerun only computes what is new.

    OMP_NUM_THREADS=1 python benchmarks/detector_candidates.py [--datasets fan synthetic] [--candidates ...]
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml

import _real_folds as folds  # benchmarks/ is on sys.path when run as a script
from _systems import METRICS, System, embed_system, mean_std, parse_backend, score_ensemble, score_table
from real_clips import fold_roots

from asdlab import __version__
from asdlab._io import atomic_write_text
from asdlab.backends.registry import available_backends
from asdlab.data.synth import generate_dataset, generator_fingerprint

REPO = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
MN04_DIR = folds.SHARED_DATA.parent / "models" / "efficientat-mn04"
ATTRIBUTES = ("shown", "hidden")


def load_candidates(path: Path) -> tuple[dict[str, tuple[System, str]], dict[str, list[str]]]:
    """{name: (System, "both" | "hidden")} and {ensemble: [member names]} from the YAML list."""
    spec = yaml.safe_load(path.read_text())
    candidates = {}
    for name, entry in spec["candidates"].items():
        overrides = dict(entry.get("overrides") or {})
        recipe = entry["recipe"]
        if recipe.endswith(".yaml") and not Path(recipe).is_absolute():
            recipe = str(HERE / recipe)
        system = System(name, recipe, overrides, small_scale=bool(entry.get("small_scale", False)))
        candidates[name] = (system, entry.get("attributes", "both"))
    return candidates, dict(spec.get("ensembles") or {})


def synthetic_roots(work: Path, seeds: list[int], attributes: bool) -> list[Path]:
    """The default synthetic dataset per seed; hidden = every machine `noAttribute` (truth kept aside).
    Cached per generator version: a changed generator makes new datasets."""
    roots = []
    for seed in seeds:
        root = work / f"synthetic-{generator_fingerprint()}" / f"seed{seed}-{'attr' if attributes else 'noattr'}"
        if not (root / "synth.json").is_file():
            generate_dataset(root, seed=seed, hide_attributes=0 if attributes else 4, overwrite=True)
        roots.append(root)
    return roots


def run_cell(dataset: str, attributes: str, roots: list[Path], seeds: list[int], candidates, ensembles, backends,
             work: Path) -> list[dict]:
    """Every candidate x backend (and ensemble x backend) on one data set and attribute setting; one row per fold."""
    rows = []
    score_dirs: dict[tuple[str, int, str], Path] = {}
    scores = work / "scores" / (roots[0].parent.name if dataset == "synthetic" else dataset)  # per generator version
    for name, (system, when) in candidates.items():
        if when == "hidden" and attributes == "shown":
            continue
        for fold, (root, seed) in enumerate(zip(roots, seeds)):
            start = time.perf_counter()
            table, fit_s = embed_system(system, root, work / "systems" / root.parent.name / root.name, seed=seed)
            print(f"{dataset}/{attributes}/{name} fold {fold}: fit {fit_s:.0f} s "
                  f"(this call {time.perf_counter() - start:.0f} s)", flush=True)
            for backend in backends:
                backend_name, params, label = parse_backend(backend)
                out = scores / attributes / name / f"fold{fold}" / label
                result_path = out / "metrics.json"
                if result_path.is_file():
                    metrics = json.loads(result_path.read_text())
                else:
                    try:
                        metrics = score_table(table, root, out, backend_name, params)
                    except Exception as error:  # a backend that cannot fit these banks: recorded, not fatal
                        metrics = {"error": f"{type(error).__name__}: {error}"}
                    atomic_write_text(result_path, json.dumps(metrics) + "\n")
                if "error" not in metrics:
                    score_dirs[(name, fold, backend)] = out
                rows.append({"dataset": dataset, "attributes": attributes, "system": name, "backend": backend,
                             "fold": fold, "fit_s": fit_s, **metrics})
    for name, members in ensembles.items():
        for fold, root in enumerate(roots):
            for backend in backends:
                dirs = [score_dirs.get((m, fold, backend)) for m in members]
                if None in dirs:
                    continue
                out = scores / attributes / name / f"fold{fold}" / parse_backend(backend)[2]
                metrics = score_ensemble(dirs, root, out)
                rows.append({"dataset": dataset, "attributes": attributes, "system": name, "backend": backend,
                             "fold": fold, "fit_s": None, **metrics})
    return rows


def markdown(rows: list[dict], header: str) -> str:
    lines = [header, "", "| data | attributes | system | backend | n | AUC source | AUC target | pAUC | Ω | fit s |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["dataset"], row["attributes"], row["system"], row["backend"]), []).append(row)
    for (dataset, attributes, system, backend), members in groups.items():
        good = [r for r in members if "error" not in r]
        if not good:
            lines.append(f"| {dataset} | {attributes} | {system} | {backend} | 0 | failed: {members[0]['error'][:80]} |"
                         " | | | |")
            continue
        fits = [r["fit_s"] for r in good if r["fit_s"] is not None]
        cells = [mean_std([r[m] for r in good]) for m in METRICS]
        lines.append(f"| {dataset} | {attributes} | {system} | {backend} | {len(good)} | {' | '.join(cells)} | "
                     f"{np.mean(fits):.0f} |" if fits else
                     f"| {dataset} | {attributes} | {system} | {backend} | {len(good)} | {' | '.join(cells)} | – |")
    return "\n".join(lines) + "\n"


def worst_case(rows: list[dict]) -> str:
    """Ω per (data, attributes) column and its minimum, per system x backend, sorted by the minimum."""
    cells: dict[tuple[str, str], dict[tuple[str, str], list[float]]] = {}
    for row in rows:
        if "error" not in row:
            cell = cells.setdefault((row["system"], row["backend"]), {})
            cell.setdefault((row["dataset"], row["attributes"]), []).append(row["omega"])
    columns = sorted({(r["dataset"], r["attributes"]) for r in rows}, key=lambda c: (c[0], c[1] != "shown"))
    # a system that does not use attributes (or only runs hidden) has the same value in both columns
    lines = ["| system | backend | " + " | ".join(f"{d} {a}" for d, a in columns) + " | min | mean |",
             "|---|---|" + "---|" * (len(columns) + 2)]
    table = []
    for (system, backend), values in cells.items():
        means = {c: float(np.mean(v)) for c, v in values.items()}
        if len(means) < len(columns):
            continue  # not measured on every column
        table.append((min(means.values()), float(np.mean(list(means.values()))), system, backend, means))
    for low, mean, system, backend, means in sorted(table, key=lambda t: (-t[0], -t[1])):
        lines.append(f"| {system} | {backend} | " + " | ".join(f"{means[c]:.3f}" for c in columns)
                     + f" | {low:.3f} | {mean:.3f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["fan", "synthetic"], choices=["fan", "synthetic"])
    parser.add_argument("--attributes", nargs="+", default=list(ATTRIBUTES), choices=ATTRIBUTES)
    parser.add_argument("--list", type=Path, default=HERE / "detector_candidates.yaml")
    parser.add_argument("--candidates", nargs="+", default=None, help="names from the list (default: all)")
    parser.add_argument("--backends", nargs="+", default=[*available_backends(), "domain-norm-knn:method=ratio"],
                        metavar="NAME[:KEY=VALUE,...]", help="registered backends, optionally with parameters "
                        f"(default: every one of {', '.join(available_backends())}, and domain-norm-knn:method=ratio)")
    parser.add_argument("--folds", type=int, default=5, help="real fan folds")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="synthetic seeds")
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "benchmarks" / "real_clips")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "detector_candidates.md")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(1)
    os.environ.setdefault("ASDLAB_WEIGHTS_DIR", str(MN04_DIR))  # `weights: pretrained` without a download
    candidates, ensembles = load_candidates(args.list)
    if args.candidates:
        candidates = {k: v for k, v in candidates.items() if k in args.candidates}
        ensembles = {k: v for k, v in ensembles.items() if set(v) <= set(candidates)}
    rows = []
    start = time.perf_counter()
    for dataset in args.datasets:
        for attributes in args.attributes:
            shown = attributes == "shown"
            if dataset == "fan":
                roots = fold_roots(args.work, n_folds=args.folds, seed=0, attributes=shown, with_dcase2023=False)
                seeds = [0] * len(roots)
            else:
                roots, seeds = synthetic_roots(args.work, args.seeds, shown), list(args.seeds)
            rows += run_cell(dataset, attributes, roots, seeds, candidates, ensembles, args.backends, args.work)
    header = (f"# Detector candidates x backends (asdlab {__version__}, {platform.machine()}, "
              f"{time.perf_counter() - start:.0f} s this run)\n\n"
              "fan: real MIMII fan, source id00 / target extra set, 5 folds (`real_clips.py` protocol). "
              "synthetic: `generate_dataset` defaults, seeds " + ", ".join(map(str, args.seeds)) + ". "
              "hidden: every training name noAttribute. Mean ± std over folds / seeds; fit s = mean fit time "
              "on 2 shared CPU cores (noisy).")
    robust = ("\n## Worst case over the columns (Ω, mean over folds / seeds)\n\nRows measured on every "
              "data set x attribute setting of this run, sorted by their lowest Ω.\n\n" + worst_case(rows))
    atomic_write_text(args.out, markdown(rows, header) + robust)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["dataset", "attributes", "system", "backend", "fold", "fit_s", *METRICS,
                                                "error"], extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(args.out.with_suffix(".csv"), buffer.getvalue())
    print(markdown(rows, header) + robust)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
