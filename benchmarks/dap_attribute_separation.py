"""Do DAP embeddings separate hidden machine attributes better than the same encoder before DAP?

Synthetic DCASE-layout data whose attributes are hidden from file names (truth from the
correspondence files); a small EAT preset is pre-trained with the UFO objective on the train clips
of the 4 target machines, and mean-pooled patch embeddings of the source-domain train clips are
compared before vs after DAP: leave-one-out kNN attribute accuracy (cosine, k=5) and ARI of Ward
clustering (k = true count).

Two starting points. `--general-steps 0`: DAP from random weights. `--general-steps N`: the
paper's setting at toy scale: first a "general" model is pre-trained with the same objective for N
steps on other sounds (never the target machines; a stand-in for EAT's AudioSet pre-training),
then DAP continues from it (student, EMA teacher and decoder), and "before DAP" is that general
model. A control continues the general model for as many steps on the general sounds, so that a
gain of DAP over it is the target data's doing. The general sounds are everyday non-machine sounds
(`_general_sounds.py`, the kind of mismatch the paper's AudioSet model has) or, with
`--general-corpus machines`, the two synthetic machine types that are not targets. A row of log-mel
statistics shows how separable the attributes are by spectra alone. Rerunning with the same
`--work-dir` reuses finished pre-training runs. Results: `results/dap_attribute_separation.md`.

    .venv/bin/python benchmarks/dap_attribute_separation.py --preset eat-tiny --steps 300
    .venv/bin/python benchmarks/dap_attribute_separation.py --general-steps 2000 --steps 1000 \
        --batch-size 8 --clones 4 --train-source 240
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
from sklearn.cluster import AgglomerativeClustering
from sklearn.metrics import adjusted_rand_score

from asdlab.data.audio import load_clips
from asdlab.data.index import index_dataset
from asdlab.data.metadata import load_attribute_correspondences, reveal_attributes
from asdlab.data.synth import MACHINE_NAMES, generate_dataset, generator_fingerprint
from asdlab.encoders.backbone import build_backbone
from asdlab.encoders.checkpoints import save_encoder
from asdlab.encoders.reference import LogMelStats
from asdlab.pipeline.pretrain import (
    ENCODER_NAME, SETTINGS_NAME, TEACHER_NAME, PretrainSettings, build_dap_task, run_pretraining,
)

from _general_sounds import write_general_corpus  # benchmarks/ is on sys.path when run as a script


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


def embed(weights: Path | None, preset: str, audio: np.ndarray, target_frames: int) -> np.ndarray:
    """Mean-pooled patch embeddings of `audio` (clips, samples) by the encoder in `weights`, or
    log-mel mean and standard deviation per bin when `weights` is None (a hand-made reference)."""
    if weights is None:
        backbone = LogMelStats().eval()
    else:
        backbone = build_backbone(preset, weights=weights, pooling="mean", target_frames=target_frames).eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(audio), 32):
            out.append(backbone(torch.from_numpy(audio[start:start + 32])).numpy())
    return np.concatenate(out)


def pretrain_once(roots: list[Path], out: Path, settings: PretrainSettings) -> tuple[Path, Path, Path, float | None]:
    """(student, teacher, train log, seconds) of `run_pretraining`, or of a finished earlier run in
    `out` with the same settings (seconds None), so rerunning with one --work-dir adds rows cheaply."""
    saved = out / SETTINGS_NAME
    if (out / TEACHER_NAME).exists() and json.loads(saved.read_text()) == json.loads(
            json.dumps(asdict(settings))):
        return out / ENCODER_NAME, out / TEACHER_NAME, out / "train_log.csv", None
    start = time.perf_counter()
    result = run_pretraining(roots, out, settings)
    return result.encoder_path, result.teacher_path, result.log_path, time.perf_counter() - start


def separation(embeddings: np.ndarray, records) -> list[tuple[str, float, float]]:
    rows = []
    for machine in sorted({r.machine for r in records}):
        idx = [i for i, r in enumerate(records) if r.machine == machine]
        labels = np.array([records[i].attributes for i in idx])
        x = embeddings[idx]
        rows.append((machine, knn_loo_accuracy(x, labels), ward_ari(x, labels)))
    return rows


def _seconds(wall: float | None) -> str:
    return "reused an earlier run" if wall is None else f"{wall:.0f} s"


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
                        help="pre-train a general model on --general-corpus first (0: DAP from random weights)")
    parser.add_argument("--general-corpus", choices=("everyday", "machines"), default="everyday",
                        help="what the general model learns from: everyday non-machine sounds (voices, melodies, "
                             "chirps, noise events; like AudioSet) or the synthetic machine types that are not targets")
    parser.add_argument("--train-source", type=int, default=60, help="source-domain train clips per target machine")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work-dir", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)

    work = args.work_dir or Path(tempfile.mkdtemp(prefix="dap-sep-"))
    root = work / f"data-{generator_fingerprint()}"  # per generator version
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
        general_root = work / f"general_data_{args.general_corpus}-{generator_fingerprint()}"
        other_machines = MACHINE_NAMES[4:]
        general_clips = len(other_machines) * (4 * args.train_source + 24)
        if not general_root.exists():  # else written by an earlier run with this --work-dir
            if args.general_corpus == "machines":
                generate_dataset(general_root, machines=other_machines, train_source=4 * args.train_source,
                                 train_target=24, duration_s=2.0, seed=args.seed + 1000)
            else:
                write_general_corpus(general_root, general_clips, duration_s=2.0, seed=args.seed + 1000)
        general_settings = replace(settings, steps=args.general_steps, warmup_steps=max(1, args.general_steps // 10),
                                   ema_anneal_steps=args.general_steps, checkpoint_every=args.general_steps)
        general, _, _, wall = pretrain_once([general_root], work / "general", general_settings)
        corpus = ", ".join(other_machines) if args.general_corpus == "machines" else "everyday sounds"
        print(f"general pre-training: {corpus}, {args.general_steps} steps: {_seconds(wall)}")
        encoders["general"] = general
        settings = replace(settings, init=str(work / "general"))
    student, teacher, log_path, wall = pretrain_once([root], work / "dap", settings)
    with open(log_path) as f:
        log = list(csv.DictReader(f))

    start_from = f"from the general model ({args.general_steps} steps)" if args.general_steps else "from random weights"
    print(f"DAP {start_from}: {args.preset}, {len(train)} train clips (4 machines, attributes hidden), {args.steps} steps, "
          f"batch {args.batch_size} x {args.clones} clones, lr {args.lr}, EMA {args.ema_start}->{args.ema_end}, "
          f"{args.threads} threads: {_seconds(wall)}")
    first, last = log[0], log[-1]
    print(f"loss (mean of 10 steps): step {first['step']}: {float(first['loss']):.4f} (frame "
          f"{float(first['loss_frame']):.4f}, utt {float(first['loss_utterance']):.4f}) -> step {last['step']}: "
          f"{float(last['loss']):.4f} (frame {float(last['loss_frame']):.4f}, utt {float(last['loss_utterance']):.4f})")
    print("loss curve:", " ".join(f"{r['step']}:{float(r['loss']):.3f}" for r in log[:: max(1, len(log) // 10)]))

    encoders.update({"DAP student": student, "DAP teacher": teacher})
    if args.general_steps:
        # Control: as many more steps from the general model, but on the general sounds again, so
        # that a gain of DAP over it is the target data's doing and not just longer training.
        more_student, more_teacher, _, _ = pretrain_once([general_root], work / "general_more", settings)
        encoders.update({"control student": more_student, "control teacher": more_teacher})
    encoders["log-mel stats"] = None
    audio, kept, failures = load_clips(source, duration_s=None, stack=True)  # once, for every encoder
    assert not failures and len(kept) == len(source)
    results = {name: separation(embed(path, args.preset, audio, target_frames), source)
               for name, path in encoders.items()}
    print(f"\nsource-domain train clips, {len(source) // 4} per machine, 4 true attribute classes each; "
          "mean-pooled patch embeddings")
    if args.general_steps:
        corpus = "the other machine types" if args.general_corpus == "machines" else "everyday sounds"
        print(f"general: {args.general_steps} steps on {corpus}; DAP: {args.steps} more on the "
              f"target machines; control: {args.steps} more on {corpus}")
    print(f"{'machine':<14}" + "".join(f"{n + ' kNN':>20}{n + ' ARI':>20}" for n in results))
    machines = [m for m, _, _ in results["random init"]]
    for i, machine in enumerate(machines):
        print(f"{machine:<14}" + "".join(f"{rows[i][1]:>20.3f}{rows[i][2]:>20.3f}" for rows in results.values()))
    print(f"{'mean':<14}" + "".join(
        f"{np.mean([r[1] for r in rows]):>20.3f}{np.mean([r[2] for r in rows]):>20.3f}" for rows in results.values()))


if __name__ == "__main__":
    main()
