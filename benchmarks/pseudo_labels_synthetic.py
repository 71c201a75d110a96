"""Pseudo-attributes from Ward clustering: how well they recover hidden attributes (issue 5's "must show").

Synthetic: the default dataset (`generate_dataset`, 6 machines, seed 0; the last 2 machines `noAttribute`
with correspondence files, the other 4 hidden on request), training clips only (the default's source
and target training clips per machine; true K = the machine's source and target attribute combinations).
Embeddings of the training clips, cached once per backbone: logmel-stats (hand-made reference),
mobilenet-mn04 with its real AudioSet weights (global mean; and "mn04-band10", layer 10 band-mean of
level-normalised clips, what `asdlab fit`'s default clusters) and eat-base randomly initialised (the two "GP-like" sources; EAT with all frames,
mean of patch tokens). Every automatic cluster-count rule x {none, l2} x {all clips clustered together,
each domain on its own} goes through `run_pseudo_labeling(..., embeddings=table)`; maps are drawn for the
default settings.
Real: the DCASE 2023 clips in ../shared (2-4 clips per machine type), every attribute hidden.

    python benchmarks/pseudo_labels_synthetic.py [--work runs/benchmarks/pseudo_labels_synthetic] [--threads 2]
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np
import torch

from asdlab.data.index import index_dataset
from asdlab.data.synth import generate_dataset, generator_fingerprint
from asdlab.embeddings.extract import extract_embeddings
from asdlab.embeddings.table import EmbeddingTable
from asdlab.encoders.backbone import build_backbone
from asdlab.pipeline.pseudo_label import PseudoLabelResult, PseudoLabelSettings, run_pseudo_labeling
from asdlab.pseudo.count import AUTO_RULES

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
MN04 = sorted((SHARED / "models" / "efficientat-mn04").glob("*.pt"))
DEFAULT = PseudoLabelSettings()
# name -> preset and build_backbone keywords (weights None = random initialisation, seed 0);
# "mn04-band10" is what `asdlab fit`'s default recipe (mn04-arcface) clusters: layer 10, band-mean
_MN04 = str(MN04[0]) if MN04 else None
BACKBONES: dict[str, dict] = {
    "logmel-stats": {"preset": "logmel-stats"},
    "mobilenet-mn04": {"preset": "mobilenet-mn04", "weights": _MN04, "pooling": "mean"},
    "mn04-band10": {"preset": "mobilenet-mn04", "weights": _MN04, "pooling": "band-mean",
                    "encoder_options": {"embed_layer": 10}, "level": "rms"},
    "eat-base": {"preset": "eat-base", "pooling": "mean", "target_frames": None},
}


def _table(root: Path, work: Path, name: str) -> EmbeddingTable:
    path = work / f"train_{name}-{root.name}.npz"  # the embeddings of this dataset (generator version)
    if path.is_file():
        return EmbeddingTable.load(path)
    options = {k: v for k, v in BACKBONES[name].items() if k not in ("preset", "encoder_options")}
    backbone = build_backbone(BACKBONES[name]["preset"], seed=0, **options,
                              **BACKBONES[name].get("encoder_options", {}))
    start = time.perf_counter()
    table = extract_embeddings(index_dataset(root, splits=["train"]), backbone, sample_rate=backbone.sample_rate).table
    print(f"embedded {len(table)} clips with {name} in {time.perf_counter() - start:.0f} s")
    table.save(path)
    return table


def _settings(name: str, **changes) -> PseudoLabelSettings:
    options = BACKBONES[name]
    base = dict(backbone=options["preset"], weights=options.get("weights"), pooling=options.get("pooling", "mean"),
                target_frames=options.get("target_frames", DEFAULT.target_frames), hide_attributes="all",
                encoder_options=options.get("encoder_options", {}), level=options.get("level", DEFAULT.level))
    return PseudoLabelSettings(**{**base, **changes})


def _group_table(title: str, result: PseudoLabelResult) -> None:
    print(f"\n{title}")
    print(f"  {'machine':14s} {'hidden by':11s} {'clips':>5s} {'K rule':>6s} {'K out':>5s} {'true K':>6s} "
          f"{'ARI':>6s} {'NMI':>6s} {'homog':>6s} {'compl':>6s} {'ARI src':>7s}")
    for g in result.groups:
        a, s = g.agreement, g.agreement_source
        print(f"  {g.machine:14s} {g.hidden_by:11s} {g.n_clips:5d} {g.choice.k:6d} {g.n_clusters:5d} {g.true_k:6d} "
              f"{a.ari:6.3f} {a.nmi:6.3f} {a.homogeneity:6.3f} {a.completeness:6.3f} "
              f"{'' if s is None else f'{s.ari:7.3f}'}")
    ari = [g.agreement.ari for g in result.groups]
    nmi = [g.agreement.nmi for g in result.groups]
    print(f"  {'mean':14s} {'':11s} {'':5s} {'':6s} {'':5s} {'':6s} {np.mean(ari):6.3f} {np.mean(nmi):6.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "benchmarks" / "pseudo_labels_synthetic")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)
    root = args.work / f"data-{generator_fingerprint()}"  # per generator version
    if not (root / "synth.json").is_file():
        generate_dataset(root, machines=6, hide_attributes=2, seed=0, overwrite=True)
    if not MN04:
        print("mobilenet-mn04 weights not found under ../shared/models/efficientat-mn04: skipping it")
        BACKBONES.pop("mobilenet-mn04")
        BACKBONES.pop("mn04-band10")
    tables = {name: _table(root, args.work, name) for name in BACKBONES}

    print(f"default settings: rule {DEFAULT.rule}, normalization {DEFAULT.normalization}, "
          f"min_cluster_size {DEFAULT.min_cluster_size}, K in {DEFAULT.k_min}..{DEFAULT.k_max}, per domain "
          f"{DEFAULT.per_domain} (target min_cluster_size {DEFAULT.target_min_cluster_size})")
    for name, table in tables.items():
        result = run_pseudo_labeling(root, args.work / f"default_{name}", _settings(name), embeddings=table)
        _group_table(f"{name}: default settings, per machine (maps in {result.out_dir})", result)

    print("\nrules: mean over the 6 machines (true K per machine: its source and target attribute combinations).")
    print("  K chosen is the rule's cut (of the source domain when clustered per domain); K out is")
    print("  after merging small clusters (< 5 clips; < 2 in the target domain when per domain).")
    print(f"  {'backbone':15s} {'domains':8s} {'norm':5s} {'rule':18s} {'ARI':>6s} {'NMI':>6s} {'out=K':>5s} "
          f"{'|out-K|':>7s} {'K chosen':20s} K out")
    summary: dict[str, list[float]] = {}
    for name, table in tables.items():
        for domains in ("together", "separate"):
            for norm in ("none", "l2"):
                for rule in AUTO_RULES:
                    result = run_pseudo_labeling(
                        root, args.work / "rules" / f"{name}_{domains}_{norm}_{rule}",
                        _settings(name, rule=rule, normalization=norm, map_method=None,
                                  per_domain=domains == "separate"),
                        embeddings=table)
                    ks = [g.choice.k for g in result.groups]
                    ari = float(np.mean([g.agreement.ari for g in result.groups]))
                    nmi = float(np.mean([g.agreement.nmi for g in result.groups]))
                    outs = [g.n_clusters for g in result.groups]
                    error = float(np.mean([abs(k - g.true_k) for k, g in zip(outs, result.groups, strict=True)]))
                    hits = sum(k == g.true_k for k, g in zip(outs, result.groups, strict=True))
                    summary.setdefault(f"{domains} {norm} {rule}", []).extend([ari, error, hits])
                    print(f"  {name:15s} {domains:8s} {norm:5s} {rule:18s} {ari:6.3f} {nmi:6.3f} {hits:5d} {error:7.2f} "
                          f"{str(ks):20s} {outs}")
    print("\nrules averaged over backbones (ARI, |K out - true K|, groups with K out = true K)")
    for key, values in summary.items():
        ari, error, hits = np.array(values).reshape(-1, 3).T
        print(f"  {key:32s} ARI {ari.mean():.3f}  |K out-K| {error.mean():.2f}  K out=K {int(hits.sum())}/{6 * len(ari)}")

    real = SHARED / "data" / "dcase2023t2-dev-mixed-samples"
    if not real.is_dir():
        print(f"\n{real} not found: skipping the real clips")
        return
    for name in [n for n in ("mn04-band10", "mobilenet-mn04", "logmel-stats") if n in BACKBONES]:
        options = {k: v for k, v in BACKBONES[name].items() if k not in ("target_frames", "preset")}
        settings = PseudoLabelSettings(backbone=BACKBONES[name]["preset"], hide_attributes="all",
                                       splits=("train", "test"), min_cluster_size=1, map_method="pca", **options)
        result = run_pseudo_labeling(real, args.work / f"real_{name}", settings)
        _group_table(f"real DCASE 2023 clips, {name}, train + test clips, every attribute hidden "
                     "(2-4 clips per machine: anecdotal)", result)


if __name__ == "__main__":
    main()
