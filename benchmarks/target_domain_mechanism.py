"""Why attribute classes hurt the target domain: bank distances of the stored embeddings, shown vs hidden attributes.

Reads (or makes) the embeddings `detector_candidates.py` stores for a system (default: the two-branch
CNN, `asdlab fit`'s default) on the synthetic seeds and the real fan folds, with the attributes shown and
hidden, and measures per machine, in cosine distance (1 - cos) to the normal training clips:
  - d_S, d_T: distance of each test clip to its nearest source / target training clip; the kNN score is
    min(d_S, d_T). Medians per test group (source / target normals, source / target anomalies).
  - "T wins": share of target normals whose nearest bank is the target one.
  - LOO: each training clip's distance to its nearest other clip of the same domain (what a bank's own
    members look like), and "gap" = median d_T of target test normals / median target LOO (how much
    farther an unseen target normal is than the training clips are from each other).
  - spread: mean LOO distance within each attribute class of a domain (shown attributes only).
  - AUC target split into target normals vs target anomalies and vs source anomalies (kNN scores).

    python benchmarks/target_domain_mechanism.py [--system two-branch-cnn] [--datasets synthetic fan]
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from _systems import embed_system  # benchmarks/ is on sys.path when run as a script
from detector_candidates import load_candidates, synthetic_roots
from real_clips import fold_roots

from asdlab.embeddings.table import EmbeddingTable

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
GROUPS = (("source", "normal"), ("target", "normal"), ("source", "anomaly"), ("target", "anomaly"))


def _unit(X: np.ndarray) -> np.ndarray:
    return X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)


def _nearest(Q: np.ndarray, R: np.ndarray, *, exclude_self: bool = False) -> np.ndarray:
    D = 1.0 - _unit(Q) @ _unit(R).T  # (Q, R) cosine distances
    if exclude_self:
        np.fill_diagonal(D, np.inf)
    return D.min(axis=1)


def machine_stats(table: EmbeddingTable, machine: str) -> dict[str, float]:
    """The measures of the module docstring for one machine of one fitted system."""
    rows = table.machine == machine
    train, test = table.select(rows & (table.split == "train")), table.select(rows & (table.split == "test"))
    S, T = train.embeddings[train.domain == "source"], train.embeddings[train.domain == "target"]
    out: dict[str, float] = {"target_train": len(T)}
    d = {}
    for domain, label in GROUPS:
        X = test.embeddings[(test.domain == domain) & (test.label == label)]
        d[(domain, label)] = (_nearest(X, S), _nearest(X, T))
        out[f"dS {domain[0]}{label[0]}"] = float(np.median(d[(domain, label)][0]))
        out[f"dT {domain[0]}{label[0]}"] = float(np.median(d[(domain, label)][1]))
    d_s, d_t = d[("target", "normal")]
    out["T wins"] = float(np.mean(d_t < d_s))
    loo_s, loo_t = _nearest(S, S, exclude_self=True), _nearest(T, T, exclude_self=True)
    out["LOO S"], out["LOO T"] = float(np.median(loo_s)), float(np.median(loo_t))
    out["gap T"] = float(np.median(d_t) / max(np.median(loo_t), 1e-12))
    out["gap S"] = float(np.median(d[("source", "normal")][0]) / max(np.median(loo_s), 1e-12))
    for domain, X, attrs in (("S", S, train.attributes[train.domain == "source"]),
                             ("T", T, train.attributes[train.domain == "target"])):
        classes = [a for a in np.unique(attrs) if (attrs == a).sum() >= 2]
        if classes and not any(a == "noAttribute" for a in classes):
            out[f"spread {domain}"] = float(np.mean([np.mean(_nearest(X[attrs == a], X[attrs == a], exclude_self=True))
                                                     for a in classes]))
            out[f"classes {domain}"] = len(np.unique(attrs))
    score = {g: np.minimum(*d[g]) for g in GROUPS}
    tn = score[("target", "normal")]
    for name, anomalies in (("AUC T vs T-anom", score[("target", "anomaly")]),
                            ("AUC T vs S-anom", score[("source", "anomaly")])):
        out[name] = float(roc_auc_score(np.r_[np.zeros(len(tn)), np.ones(len(anomalies))], np.r_[tn, anomalies]))
    return out


COLUMNS = ("target_train", "classes S", "classes T", "LOO S", "LOO T", "spread S", "spread T", "dS sn", "dS tn", "dT tn",
           "T wins", "gap S", "gap T", "dS sa", "dT sa", "dS ta", "dT ta", "AUC T vs T-anom", "AUC T vs S-anom")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--system", default="two-branch-cnn", help="a candidate of detector_candidates.yaml")
    parser.add_argument("--datasets", nargs="+", default=["synthetic", "fan"], choices=["synthetic", "fan"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "benchmarks" / "real_clips")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    system, when = load_candidates(HERE / "detector_candidates.yaml")[0][args.system]
    print(f"{system.name}: medians of cosine distances (1 - cos) per machine, then averaged over machines and "
          "folds / seeds; columns in the module docstring")
    print("| data | attributes | " + " | ".join(COLUMNS) + " |")
    print("|---|---|" + "---|" * len(COLUMNS))
    for dataset in args.datasets:
        for shown in (True, False) if when == "both" else (False,):
            if dataset == "fan":
                roots = fold_roots(args.work, n_folds=args.folds, seed=0, attributes=shown, with_dcase2023=False)
                seeds = [0] * len(roots)
            else:
                roots, seeds = synthetic_roots(args.work, args.seeds, shown), args.seeds
            rows = []
            for root, seed in zip(roots, seeds):
                table, _ = embed_system(system, root, args.work / "systems" / root.parent.name / root.name, seed=seed)
                rows += [machine_stats(table, m) for m in np.unique(table.machine[table.split == "test"])]
            cells = []
            for column in COLUMNS:
                values = [r[column] for r in rows if column in r]
                cells.append("–" if not values else f"{np.mean(values):.3f}" if column != "target_train"
                             else f"{np.mean(values):.0f}")
            print(f"| {dataset} | {'shown' if shown else 'hidden'} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
