"""Do DAP embeddings separate hidden machine attributes better than the same encoder before DAP?

Synthetic DCASE-layout data whose attributes are hidden from file names (truth from the
correspondence files); a small EAT preset is pre-trained with the UFO objective on the train clips
of the 4 target machines, and mean-pooled patch embeddings of the source-domain train clips are
compared before vs after DAP: leave-one-out kNN attribute accuracy (cosine, k=5) and ARI of Ward
clustering (k = true count).

Two starting points. `--general-steps 0`: DAP from random weights. `--general-steps N`: the
paper's setting at toy scale: first a "general" model is pre-trained with the same objective for N
steps on other sounds (the remaining synthetic machine types, never the target machines; a
stand-in for EAT's AudioSet pre-training), then DAP continues from it (student, EMA teacher and
decoder), and "before DAP" is that general model. A control continues the general model for as
many steps on the general sounds.

    .venv/bin/python benchmarks/dap_attribute_separation.py --preset eat-tiny --steps 300
    .venv/bin/python benchmarks/dap_attribute_separation.py --general-steps 400 --steps 400
"""

from __future__ import annotations

import argparse
import csv
import logging
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from sklearn.cluster import AgglomerativeClustering
from sklearn.metrics import adjusted_rand_score

from asdlab.data.audio import load_clips
from asdlab.data.index import index_dataset
from asdlab.data.metadata import load_attribute_correspondences, reveal_attributes
from asdlab.data.synth import MACHINE_NAMES, generate_dataset
from asdlab.encoders.backbone import build_backbone
from asdlab.encoders.checkpoints import save_encoder
from asdlab.pipeline.pretrain import PretrainSettings, build_dap_task, run_pretraining


def knn_loo_accuracy(x: np.ndarray, labels: np.ndarray, k: int = 5) -> float:
    """Leave-one-out accuracy of a cosine k-NN majority vote (ties: the nearest neighbour's label)."""
    unit = x / np.linalg.norm(x, axis=1, keepdims=True).clip(1e-12)
    sims = unit @ unit.T
    np.fill_diagonal(sims, -np.inf)
    order = np.argsort(-sims, axis=1)[:, :k]
    correct = 0
    for i, nbrs in enumerate(order):
        values, counts = np.unique(labels[nbrs], return_counts=True)
        best = values[counts == counts.max()]
        vote = labels[nbrs[0]] if len(best) > 1 and labels[nbrs[0]] in best else best[0]
        correct += int(vote == labels[i])
    return correct / len(labels)


def ward_ari(x: np.ndarray, labels: np.ndarray) -> float:
    """ARI between the truth and Ward clusters of standardised embeddings, as many clusters as true labels."""
    z = (x - x.mean(0)) / x.std(0).clip(1e-8)
    clusters = AgglomerativeClustering(n_clusters=len(set(labels)), linkage="ward").fit_predict(z)
    return float(adjusted_rand_score(labels, clusters))


def embed(weights: Path, preset: str, audio: np.ndarray, target_frames: int) -> np.ndarray:
    """Mean-pooled patch embeddings of `audio` (clips, samples) by the encoder in `weights`."""
    backbone = build_backbone(preset, weights=weights, pooling="mean", target_frames=target_frames).eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(audio), 32):
            out.append(backbone(torch.from_numpy(audio[start:start + 32])).numpy())
    return np.concatenate(out)


def separation(embeddings: np.ndarray, records) -> list[tuple[str, float, float]]:
    rows = []
    for machine in sorted({r.machine for r in records}):
        idx = [i for i, r in enumerate(records) if r.machine == machine]
        labels = np.array([records[i].attributes for i in idx])
        x = embeddings[idx]
        rows.append((machine, knn_loo_accuracy(x, labels), ward_ari(x, labels)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="eat-tiny")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--clones", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--ema-start", type=float, default=0.99, help="short CPU runs need a faster teacher")
    parser.add_argument("--ema-end", type=float, default=0.999)
    parser.add_argument("--general-steps", type=int, default=0,
                        help="pre-train a general model on the other machine types first (0: DAP from random weights)")
    parser.add_argument("--train-source", type=int, default=60, help="source-domain train clips per target machine")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work-dir", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)

    work = args.work_dir or Path(tempfile.mkdtemp(prefix="dap-sep-"))
    root = work / "data"
    if not root.exists():
        generate_dataset(root, machines=4, hide_attributes=4, train_source=args.train_source, duration_s=2.0,
                         seed=args.seed)
    train = index_dataset(root, splits=("train",))
    truth = reveal_attributes(train, load_attribute_correspondences(root))
    source = [r for r in truth if r.domain == "source"]
    assert all(r.has_attributes for r in source), "hidden attributes must be revealed for scoring"

    settings = PretrainSettings(
        preset=args.preset, steps=args.steps, batch_size=args.batch_size, clones=args.clones, lr=args.lr,
        warmup_steps=max(1, args.steps // 10), ema_start=args.ema_start, ema_end=args.ema_end,
        ema_anneal_steps=args.steps, accelerator="cpu", checkpoint_every=args.steps, log_every=10, seed=args.seed,
    )
    target_frames = 208  # 2-s clips: 198 frames -> 13 x 16
    random_init = work / "random_init.safetensors"
    save_encoder(build_dap_task(settings, target_frames=target_frames).encoder, random_init, preset=args.preset)
    encoders = {"random init": random_init}
    if args.general_steps:
        general_root = work / "general_data"
        other_machines = MACHINE_NAMES[4:]
        if not general_root.exists():
            generate_dataset(general_root, machines=other_machines, train_source=4 * args.train_source,
                             train_target=24, duration_s=2.0, seed=args.seed + 1000)
        general_settings = replace(settings, steps=args.general_steps, warmup_steps=max(1, args.general_steps // 10),
                                   ema_anneal_steps=args.general_steps, checkpoint_every=args.general_steps)
        start = time.perf_counter()
        general = run_pretraining([general_root], work / "general", general_settings)
        print(f"general pre-training: {general.clips} clips of {', '.join(other_machines)}, "
              f"{args.general_steps} steps: {time.perf_counter() - start:.0f} s")
        encoders["general"] = general.encoder_path
        settings = replace(settings, init=str(work / "general"))
    start = time.perf_counter()
    result = run_pretraining([root], work / "dap", settings)
    wall = time.perf_counter() - start
    with open(result.log_path) as f:
        log = list(csv.DictReader(f))

    start_from = f"from the general model ({args.general_steps} steps)" if args.general_steps else "from random weights"
    print(f"DAP {start_from}: {args.preset}, {result.clips} train clips (4 machines, attributes hidden), {args.steps} steps, "
          f"batch {args.batch_size} x {args.clones} clones, lr {args.lr}, EMA {args.ema_start}->{args.ema_end}, "
          f"{args.threads} threads: {wall:.0f} s")
    first, last = log[0], log[-1]
    print(f"loss (mean of 10 steps): step {first['step']}: {float(first['loss']):.4f} (frame "
          f"{float(first['loss_frame']):.4f}, utt {float(first['loss_utterance']):.4f}) -> step {last['step']}: "
          f"{float(last['loss']):.4f} (frame {float(last['loss_frame']):.4f}, utt {float(last['loss_utterance']):.4f})")
    print("loss curve:", " ".join(f"{r['step']}:{float(r['loss']):.3f}" for r in log[:: max(1, len(log) // 10)]))

    encoders.update({"DAP student": result.encoder_path, "DAP teacher": result.teacher_path})
    if args.general_steps:
        # Control: as many more steps from the general model, but on the general sounds again, so
        # that a gain of DAP over it is the target data's doing and not just longer training.
        more = run_pretraining([general_root], work / "general_more", settings)
        encoders.update({"control student": more.encoder_path, "control teacher": more.teacher_path})
    audio, kept, failures = load_clips(source, duration_s=None, stack=True)  # once, for every encoder
    assert not failures and len(kept) == len(source)
    results = {name: separation(embed(path, args.preset, audio, target_frames), source)
               for name, path in encoders.items()}
    print(f"\nsource-domain train clips, {len(source) // 4} per machine, 4 true attribute classes each; "
          "mean-pooled patch embeddings")
    if args.general_steps:
        print(f"general: {args.general_steps} steps on the other machine types; DAP: {args.steps} more on the "
              f"target machines; control: {args.steps} more on the other machine types")
    print(f"{'machine':<14}" + "".join(f"{n + ' kNN':>20}{n + ' ARI':>20}" for n in results))
    machines = [m for m, _, _ in results["random init"]]
    for i, machine in enumerate(machines):
        print(f"{machine:<14}" + "".join(f"{rows[i][1]:>20.3f}{rows[i][2]:>20.3f}" for rows in results.values()))
    print(f"{'mean':<14}" + "".join(
        f"{np.mean([r[1] for r in rows]):>20.3f}{np.mean([r[2] for r in rows]):>20.3f}" for rows in results.values()))


if __name__ == "__main__":
    main()
