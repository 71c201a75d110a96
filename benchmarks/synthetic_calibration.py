"""Does the synthetic default rank detectors as real DCASE recordings do? Issue 15's calibration.

On the default dataset (`generate_dataset`, 4 machines, seeds 0 1 2), mean ± std over seeds:

- the `baseline` recipe (log-mel statistics + kNN): targets official score <= 0.60, AUC source <= 0.70;
- clip level only (`clip-level` + Euclidean kNN): target at chance, 0.45-0.55;
- the two-branch CNN at its default steps (the previous `asdlab fit` default): target AUC source >= 0.80;
- per fault kind, an oracle detector (a feature written for that kind, `_fault_oracles.py`, scored by
  Euclidean kNN per domain on the normal training clips): target AUC >= 0.90 for each kind alone
  (normal test clips of the machines that have the kind against that kind's anomalies);
- the domain shift and the faults in long-term log-mel spectra (dB, RMS over bins).

    python benchmarks/synthetic_calibration.py [--seeds 0 1 2] [--rows baseline clip-level cnn oracles shift]
        [--work runs/synthetic_calibration] [--out benchmarks/results/synthetic_calibration.md]

Each (row, seed) result is saved in --work, keyed by a hash of the generator's source: run one process
per seed (`--seeds 0`, `--seeds 1`, ...) side by side, then `--seeds 0 1 2 --out ...` collects them.

Reuse from another script (e.g. to compare recipes on the same datasets; those rows are not
calibration targets):

    import runpy; cal = runpy.run_path("benchmarks/synthetic_calibration.py")
    root = cal["calibration_dataset"](Path("runs/cal"), seed=0)
    result = cal["evaluate_recipe"](root, Path("runs/cal/x"), "two-branch-cnn", seed=0, overrides={...})
    result.summary.official_score, result.kind_auc   # EvaluationSummary, {kind: {machine: AUC}}
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import platform
import statistics
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from sklearn.metrics import roc_auc_score

import asdlab
from asdlab.backends.knn import KNNBackend
from asdlab.data import synth
from asdlab.data.synth import generate_dataset
from asdlab.encoders.registry import create_encoder
from asdlab.metrics.dcase import EvaluationSummary
from asdlab.metrics.files import find_score_files, read_anomaly_scores

sys.path.insert(0, str(Path(__file__).parent))  # the oracles live beside this script
from _fault_oracles import ORACLES  # noqa: E402

ROWS = ("baseline", "clip-level", "cnn", "oracles", "shift")
_DEFAULTS = synth.make_config()


def calibration_dataset(work: Path, seed: int, **kwargs) -> Path:
    """The default synthetic dataset for `seed` (other `generate_dataset` arguments in kwargs), cached."""
    tag = "-".join(f"{k}{v}" for k, v in sorted(kwargs.items()))
    root = work / f"data-{synth.generator_fingerprint()}-seed{seed}{'-' + tag if tag else ''}"
    if not (root / "synth.json").exists():
        summary = generate_dataset(root, seed=seed, overwrite=True, **kwargs)
        print(f"generated {summary.n_clips} clips in {summary.elapsed_s:.1f} s -> {root}", flush=True)
        (root / "generation_s.txt").write_text(f"{summary.elapsed_s:.2f}\n")
    return root


@dataclass(frozen=True)
class Clip:
    machine: str
    name: str  # file name as in the score files
    path: Path
    split: str
    domain: str
    label: str
    attributes: dict[str, str]
    kind: str


def read_truth(root: Path) -> list[Clip]:
    """Every clip of a synthetic dataset with its true attributes and fault kind (`synth_clips.csv`)."""
    clips = []
    with open(root / "synth_clips.csv", newline="") as f:
        for row in csv.DictReader(f):
            parts = row["attributes"].split("_")
            clips.append(Clip(row["machine"], Path(row["file_name"]).name, root / "dev_data" / "raw" / row["file_name"],
                              row["split"], row["domain"], row["label"], dict(zip(parts[::2], parts[1::2])),
                              row["anomaly_kind"]))
    return clips


def kind_aucs(scores: Mapping[tuple[str, str], float], clips: Sequence[Clip]) -> dict[str, dict[str, float]]:
    """{kind: {machine: AUC of all normal test clips of the machine against that kind's anomalies}}."""
    out: dict[str, dict[str, float]] = {}
    test = [c for c in clips if c.split == "test"]
    for machine in sorted({c.machine for c in test}):
        mine = [c for c in test if c.machine == machine]
        normals = [scores[(machine, c.name)] for c in mine if c.label == "normal"]
        for kind in sorted({c.kind for c in mine if c.kind}):
            faulty = [scores[(machine, c.name)] for c in mine if c.kind == kind]
            y = [0] * len(normals) + [1] * len(faulty)
            out.setdefault(kind, {})[machine] = float(roc_auc_score(y, normals + faulty))
    return out


def read_scores(scores_dir: Path) -> dict[tuple[str, str], float]:
    """{(machine, file name): anomaly score} from a folder of DCASE score files."""
    scores = {}
    for (machine, _), paths in find_score_files(scores_dir).items():
        names, values = read_anomaly_scores(paths[0])
        scores.update({(machine, name): float(v) for name, v in zip(names, values)})
    return scores


def source_auc_parts(scores: Mapping[tuple[str, str], float], clips: Sequence[Clip]) -> dict[str, dict[str, float]]:
    """What AUC source is made of, per machine: source normals against the source anomalies alone
    ("source faults") and against the target anomalies alone ("target clips")."""
    out = {}
    test = [c for c in clips if c.split == "test"]
    for machine in sorted({c.machine for c in test}):
        normal = [scores[(machine, c.name)] for c in test if (c.machine, c.domain, c.label) == (machine, "source", "normal")]
        parts = {}
        for name, domain in (("source faults", "source"), ("target clips", "target")):
            faulty = [scores[(machine, c.name)] for c in test
                      if (c.machine, c.domain, c.label) == (machine, domain, "anomaly")]
            parts[name] = float(roc_auc_score([0] * len(normal) + [1] * len(faulty), normal + faulty))
        out[machine] = parts
    return out


@dataclass(frozen=True)
class SystemResult:
    summary: EvaluationSummary
    kind_auc: dict[str, dict[str, float]]
    fit_s: float

    def as_dict(self) -> dict:
        """The numbers the tables need (JSON-ready): official score, harmonic means, per machine rows."""
        hm = self.summary.harmonic_mean
        return {"official": self.summary.official_score,
                "hmean": {"auc_source": hm.auc_source, "auc_target": hm.auc_target, "pauc": hm.pauc},
                "machines": {r.machine: {"auc_source": r.auc_source, "auc_target": r.auc_target, "pauc": r.pauc}
                             for r in self.summary.rows},
                "kind_auc": self.kind_auc, "fit_s": self.fit_s}


def evaluate_recipe(root: Path, out: Path, recipe: str, *, seed: int = 0,
                    overrides: Mapping[str, object] | Sequence[str] = ()) -> SystemResult:
    """`asdlab fit` with `recipe` on the train clips, `asdlab score` on the test clips, official metric
    and per-kind AUCs."""
    start = time.perf_counter()
    detector = asdlab.fit(root, out / "model", recipe=recipe, overrides=overrides, seed=seed)
    fit_s = time.perf_counter() - start
    result = detector.score(root, out / "scores")
    scores = read_scores(out / "scores")
    assert result.summary is not None
    return SystemResult(result.summary, kind_aucs(scores, read_truth(root)), fit_s)


def oracle_aucs(root: Path) -> dict[str, dict[str, float]]:
    """Per kind and machine: AUC of the kind's oracle feature (kNN per domain) on that kind alone."""
    clips = read_truth(root)
    waves = {c.path: sf.read(c.path, dtype="float64")[0] for c in clips}
    out: dict[str, dict[str, float]] = {}
    for machine in sorted({c.machine for c in clips}):
        mine = [c for c in clips if c.machine == machine]
        for kind in sorted({c.kind for c in mine if c.kind}):
            feature = ORACLES[kind][1]
            train = [c for c in mine if c.split == "train"]
            test = [c for c in mine if c.split == "test" and (c.label == "normal" or c.kind == kind)]
            X = {c.path: feature(waves[c.path], machine, c.attributes) for c in train + test}
            ref = np.stack([X[c.path] for c in train])
            # each feature in units of its spread among training clips of one domain and attribute set
            groups = [[i for i, c in enumerate(train) if (c.domain, tuple(c.attributes.items())) == key]
                      for key in sorted({(c.domain, tuple(c.attributes.items())) for c in train})]
            deviations = np.concatenate([ref[g] - ref[g].mean(axis=0) for g in groups if len(g) > 1])
            scale = np.sqrt(np.mean(deviations**2, axis=0)) + 1e-9
            backend = KNNBackend(metric="euclidean").fit(ref / scale, domains=[c.domain for c in train])
            scores = backend.score_samples(np.stack([X[c.path] for c in test]) / scale)
            out.setdefault(kind, {})[machine] = float(roc_auc_score([c.label == "anomaly" for c in test], scores))
    return out


def spectrum_shifts(root: Path) -> dict[str, dict[str, float]]:
    """Per machine, long-term log-mel spectrum differences (dB, RMS over 64 bins, gain removed):
    source vs target normals, each kind's anomalies vs the normals of their domain (largest over
    kinds), and two halves of the source normals (the sampling floor)."""
    encoder = create_encoder("logmel-stats")
    clips = [c for c in read_truth(root) if c.split == "test"]
    with torch.no_grad():
        spectra = {c.path: encoder(torch.from_numpy(sf.read(c.path, dtype="float32")[0])[None])[0, :64].numpy()
                   for c in clips}
    to_db = 10 / np.log(10)  # Kaldi fbank energies are natural logs

    def gap(a: list[Clip], b: list[Clip]) -> float:
        mean_a = np.mean([spectra[c.path] for c in a], axis=0)
        mean_b = np.mean([spectra[c.path] for c in b], axis=0)
        return float(to_db * np.sqrt(np.mean((mean_a - mean_b) ** 2)))

    out = {}
    for machine in sorted({c.machine for c in clips}):
        normal = {d: [c for c in clips if c.machine == machine and c.domain == d and c.label == "normal"]
                  for d in ("source", "target")}
        kinds = sorted({c.kind for c in clips if c.machine == machine and c.kind})
        faults = [gap([c for c in clips if c.machine == machine and c.kind == k and c.domain == d], normal[d])
                  for k in kinds for d in ("source", "target")]
        half = len(normal["source"]) // 2
        out[machine] = {"domain shift": gap(normal["source"], normal["target"]), "largest fault": max(faults),
                        "normal halves": gap(normal["source"][:half], normal["source"][half:])}
    return out


# ----------------------------------------------------------------------------------------------
# Tables


def mean_std(values: Sequence[float], scale: float = 100.0, digits: int = 1) -> str:
    values = [scale * v for v in values]
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.{digits}f} ± {spread:.{digits}f}"


def system_table(systems: dict[str, list[dict]]) -> list[str]:
    targets = {"baseline": "Ω ≤ 60, AUC source ≤ 70", "clip-level": "all in 45-55", "cnn": "AUC source ≥ 80"}
    names = {"baseline": "`baseline` recipe (log-mel statistics + kNN)", "clip-level": "clip level only (kNN)",
             "cnn": "two-branch CNN, default 300 steps (the previous `asdlab fit` default)"}
    lines = ["| system | official Ω | AUC source | AUC target | pAUC | target |", "|---|---|---|---|---|---|"]
    for key, results in systems.items():
        hm = [r["hmean"] for r in results]
        lines.append(
            f"| {names.get(key, key)} | {mean_std([r['official'] for r in results])} | "
            f"{mean_std([h['auc_source'] for h in hm])} | {mean_std([h['auc_target'] for h in hm])} | "
            f"{mean_std([h['pauc'] for h in hm])} | {targets.get(key, '(not a target)')} |")
    return lines


def machine_table(systems: dict[str, list[dict]]) -> list[str]:
    """Per machine and system: AUC source / target, mean over seeds."""
    machines = sorted(next(iter(systems.values()))[0]["machines"])
    lines = ["| system | " + " | ".join(machines) + " |", "|---" * (len(machines) + 1) + "|"]
    for key, results in systems.items():
        cells = [f"{100 * statistics.mean(r['machines'][m]['auc_source'] for r in results):.1f} / "
                 f"{100 * statistics.mean(r['machines'][m]['auc_target'] for r in results):.1f}" for m in machines]
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    return lines


def parts_table(systems: dict[str, list[dict]]) -> list[str]:
    """AUC source split into its two halves, harmonic mean over machines, mean ± std over seeds."""
    lines = ["| system | source normals vs source anomalies | source normals vs target anomalies |", "|---|---|---|"]
    for key, results in systems.items():
        cells = []
        for part in ("source faults", "target clips"):
            per_seed = [statistics.harmonic_mean([max(m[part], 1e-9) for m in r["source_parts"].values()])
                        for r in results]
            cells.append(mean_std(per_seed))
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    return lines


def kind_table(columns: dict[str, list[dict[str, dict[str, float]]]]) -> list[str]:
    """Rows: fault kinds; columns: systems; cells: mean over machines, mean ± std over seeds."""
    kinds = [k for k in synth.ANOMALY_KINDS if any(k in runs[0] for runs in columns.values())]
    lines = ["| fault kind | machines | " + " | ".join(columns) + " |", "|---" * (len(columns) + 2) + "|"]
    for kind in kinds:
        machines = sorted(next(runs[0][kind] for runs in columns.values() if kind in runs[0]))
        cells = []
        for runs in columns.values():
            per_seed = [statistics.mean(run[kind].values()) for run in runs if kind in run]
            worst = min(min(run[kind].values()) for run in runs if kind in run) if per_seed else float("nan")
            cells.append(f"{mean_std(per_seed)} (min {100 * worst:.0f})" if per_seed else "")
        lines.append(f"| {kind} | {', '.join(m.removeprefix('Syn') for m in machines)} | " + " | ".join(cells) + " |")
    return lines


def shift_table(shifts: list[dict[str, dict[str, float]]]) -> list[str]:
    lines = ["| machine | domain shift (dB) | largest fault (dB) | two halves of source normals (dB) |",
             "|---|---|---|---|"]
    for machine in shifts[0]:
        cells = [mean_std([s[machine][key] for s in shifts], scale=1.0, digits=2)
                 for key in ("domain shift", "largest fault", "normal halves")]
        lines.append(f"| {machine} | " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--rows", nargs="+", choices=ROWS, default=list(ROWS))
    parser.add_argument("--work", type=Path, default=Path("runs/synthetic_calibration"))
    parser.add_argument("--out", type=Path, default=None, help="write the markdown tables here")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)

    systems: dict[str, list[dict]] = {}
    oracles: list[dict[str, dict[str, float]]] = []
    shifts = []
    wall = {}
    for seed in args.seeds:
        root = calibration_dataset(args.work, seed)
        wall.setdefault("generate", []).append(float((root / "generation_s.txt").read_text()))
        fingerprint = synth.generator_fingerprint()
        recipes = {"baseline": ("baseline", {}),
                   "clip-level": ("baseline", {"backbone.preset": "clip-level", "scoring.params": {"metric": "euclidean"}}),
                   "cnn": ("two-branch-cnn", {})}
        for key in ROWS:
            if key not in args.rows:
                continue
            # each (row, seed) is saved: seeds can run in parallel processes, then one run collects them
            saved = args.work / f"result-{fingerprint}-seed{seed}-{key}.json"
            if saved.exists():
                result = json.loads(saved.read_text())
            elif key in recipes:
                recipe, overrides = recipes[key]
                result = evaluate_recipe(root, args.work / f"{key}-{fingerprint}-seed{seed}", recipe, seed=seed,
                                         overrides=overrides).as_dict()
            else:
                result = oracle_aucs(root) if key == "oracles" else spectrum_shifts(root)
            saved.write_text(json.dumps(result, indent=1))
            if key in recipes:
                result["source_parts"] = source_auc_parts(
                    read_scores(args.work / f"{key}-{fingerprint}-seed{seed}" / "scores"), read_truth(root))
                systems.setdefault(key, []).append(result)
                wall.setdefault(key, []).append(result["fit_s"])
                hm = result["hmean"]
                print(f"seed {seed} {key:10s} official {100 * result['official']:6.2f}  AUC source "
                      f"{100 * hm['auc_source']:6.2f}  target {100 * hm['auc_target']:6.2f}  pAUC "
                      f"{100 * hm['pauc']:6.2f}  (fit {result['fit_s']:.0f} s)", flush=True)
            elif key == "oracles":
                oracles.append(result)
                print(f"seed {seed} oracles " + ", ".join(f"{k} {100 * statistics.mean(v.values()):.0f}"
                                                         for k, v in result.items()), flush=True)
            else:
                shifts.append(result)

    lines = [f"# Synthetic default calibration (issue 15)", "",
             f"Default dataset (`generate_dataset` defaults: 4 machines, {_DEFAULTS.train_source} + "
             f"{_DEFAULTS.train_target} training and {4 * _DEFAULTS.test_per_group} test clips each, "
             f"{_DEFAULTS.duration_s:g} s), seeds {args.seeds}, generator {synth.generator_fingerprint()}; mean ± std over seeds, in %. "
             f"`python benchmarks/synthetic_calibration.py --seeds {' '.join(map(str, args.seeds))}`; "
             f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {args.threads} thread(s).", ""]
    if systems:
        lines += ["## Detectors (official metric; harmonic means over machines)", "", *system_table(systems), "",
                  "Per machine, AUC source / target (mean over seeds):", "", *machine_table(systems), "",
                  "AUC source pools the source normals against the anomalies of both domains; its halves "
                  "(harmonic mean over machines):", "", *parts_table(systems), ""]
    columns = {key: [r["kind_auc"] for r in results] for key, results in systems.items()}
    if oracles:
        columns = {"oracle": oracles, **columns}
    if columns:
        lines += ["## AUC per fault kind (normal test clips vs that kind's anomalies; mean over machines, "
                  "min over machines and seeds in brackets)", "", *kind_table(columns), ""]
        lines += ["Oracle features: " + "; ".join(f"{k}: {v[0]}" for k, v in ORACLES.items()), ""]
    if shifts:
        lines += ["## Long-term log-mel spectra (dB, RMS over 64 bins, clip gain removed)", "", *shift_table(shifts), ""]
    lines += ["Wall time per seed (s, this machine, noisy): " + ", ".join(
        f"{k} {statistics.mean(v):.0f}" for k, v in wall.items()), ""]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
