"""End-to-end clips/s of `asdlab pretrain` and `asdlab embed` on a generated dataset of noise clips.

The dataset is made fast: a few distinct noise clips (16-bit WAV, standard library only) hard-linked
under many DCASE names, since only the clips/s of the data path + model is measured, not what is
learnt. `pretrain` runs as a user runs it (`python -m asdlab pretrain ...` in a subprocess); its
clips/s is the median of the training log's windows after the first (start-up and cache excluded).
`embed` runs `asdlab.pipeline.embed.embed_dataset` (what `asdlab embed` calls) in this process and
times from the first finished batch to the last.

    python benchmarks/end_to_end_throughput.py make-dataset /tmp/clips --clips 4096 --duration-s 10
    python benchmarks/end_to_end_throughput.py pretrain /tmp/clips --out /tmp/dap --preset eat-base \\
        --batch-size 32 --steps 25 --num-workers 8 --accelerator cuda
    python benchmarks/end_to_end_throughput.py embed /tmp/clips --backbone eat-base --device cuda \\
        --batch-size 64 --num-workers 12
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import time
import wave
from pathlib import Path

import numpy as np

MACHINE = "fan"


def make_dataset(root: Path, *, clips: int, unique: int, duration_s: float, sample_rate: int = 16000) -> Path:
    """`clips` train clips under root/fan/train, `unique` distinct noise files hard-linked round robin."""
    folder = root / MACHINE / "train"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    samples = round(duration_s * sample_rate)
    sources = []
    for i in range(min(unique, clips)):
        path = folder / f"section_00_source_train_normal_{i:04d}_noAttribute.wav"
        if not path.exists():
            gain = 0.05 + 0.2 * rng.random()
            data = np.clip(gain * rng.standard_normal(samples), -1, 1)
            with wave.open(str(path), "wb") as f:
                f.setnchannels(1)
                f.setsampwidth(2)
                f.setframerate(sample_rate)
                f.writeframes((data * 32767).astype("<i2").tobytes())
        sources.append(path)
    for i in range(len(sources), clips):
        path = folder / f"section_00_source_train_normal_{i:04d}_noAttribute.wav"
        if not path.exists():
            os.link(sources[i % len(sources)], path)
    return root


def run_pretrain(args) -> dict:
    """`python -m asdlab pretrain` in a subprocess; clips/s from its training log."""
    command = [
        sys.executable, "-m", "asdlab", "pretrain", str(args.root), "--out", str(args.out), "--preset", args.preset,
        "--batch-size", str(args.batch_size), "--steps", str(args.steps), "--num-workers", str(args.num_workers),
        "--log-every", str(args.log_every), "--checkpoint-every", "1000000", "--accelerator", args.accelerator,
        "--warmup", "1",
    ]
    if args.decoder_conv:
        command += ["--decoder-conv", args.decoder_conv]
    if args.compile:
        command += ["--compile"]
    if args.clones:
        command += ["--clones", str(args.clones)]
    print("$", " ".join(command), flush=True)
    start = time.perf_counter()
    subprocess.run(command, check=True)
    wall = time.perf_counter() - start
    with open(Path(args.out) / "train_log.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    windows = [float(row["clips_per_s"]) for row in rows[1:]] or [float(rows[-1]["clips_per_s"])]
    clips_per_s = statistics.median(windows)
    print(f"asdlab pretrain {args.preset} batch {args.batch_size}: {clips_per_s:.2f} clips/s (median of "
          f"{len(windows)} log windows after the first: {', '.join(f'{w:.1f}' for w in windows)}); "
          f"wall {wall:.1f} s for {args.steps} steps including start-up")
    return {"kind": "e2e_pretrain", "preset": args.preset, "batch_size": args.batch_size, "clips_per_s": clips_per_s,
            "windows": windows, "wall_s": wall, "num_workers": args.num_workers,
            "decoder_conv": args.decoder_conv or "auto", "compile": bool(args.compile)}


def run_embed(args) -> dict:
    """`embed_dataset` (the `asdlab embed` stage) in this process, timed from the first finished batch."""
    import torch

    from asdlab.pipeline.embed import EmbedConfig, embed_dataset

    marks: list[tuple[float, int]] = []

    def progress(done: int, total: int) -> None:
        marks.append((time.perf_counter(), done))

    out = Path(args.out) / "embeddings.npz"
    start = time.perf_counter()
    result = embed_dataset(args.root, out, EmbedConfig(backbone=args.backbone), batch_size=args.batch_size,
                           device=args.device, num_workers=args.num_workers, precision=args.precision,
                           restart=True, progress=progress)
    wall = time.perf_counter() - start
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    started = [(t, done) for t, done in marks if done > 0]
    (t0, d0), (t1, d1) = started[0], started[-1]
    clips_per_s = (d1 - d0) / max(t1 - t0, 1e-9)
    print(f"asdlab embed {args.backbone} batch {args.batch_size}, {args.num_workers} workers, {args.precision}: "
          f"{clips_per_s:.1f} clips/s over {d1 - d0} clips after the first batch; {len(result.table)} clips in "
          f"{wall:.1f} s including start-up")
    return {"kind": "e2e_embed", "backbone": args.backbone, "batch_size": args.batch_size,
            "num_workers": args.num_workers, "clips_per_s": clips_per_s, "clips": len(result.table), "wall_s": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    make = sub.add_parser("make-dataset")
    make.add_argument("root", type=Path)
    make.add_argument("--clips", type=int, default=512)
    make.add_argument("--unique", type=int, default=64)
    make.add_argument("--duration-s", type=float, default=10.0)
    pre = sub.add_parser("pretrain")
    pre.add_argument("root", type=Path)
    pre.add_argument("--out", type=Path, required=True)
    pre.add_argument("--preset", default="eat-base")
    pre.add_argument("--batch-size", type=int, default=32)
    pre.add_argument("--clones", type=int, default=None)
    pre.add_argument("--steps", type=int, default=25)
    pre.add_argument("--log-every", type=int, default=5)
    pre.add_argument("--num-workers", type=int, default=8)
    pre.add_argument("--accelerator", default="cuda")
    pre.add_argument("--decoder-conv", default=None)
    pre.add_argument("--compile", action="store_true")
    emb = sub.add_parser("embed")
    emb.add_argument("root", type=Path)
    emb.add_argument("--out", type=Path, required=True)
    emb.add_argument("--backbone", default="eat-base")
    emb.add_argument("--batch-size", type=int, default=64)
    emb.add_argument("--num-workers", type=int, default=12)
    emb.add_argument("--device", default="cuda")
    emb.add_argument("--precision", default="auto")
    for each in (pre, emb):
        each.add_argument("--json", default=None, metavar="PATH", help="append the result as one JSON line")
    args = parser.parse_args()
    if args.what == "make-dataset":
        start = time.perf_counter()
        make_dataset(args.root, clips=args.clips, unique=args.unique, duration_s=args.duration_s)
        print(f"{args.clips} clips of {args.duration_s} s under {args.root} in {time.perf_counter() - start:.1f} s")
        return
    args.out.mkdir(parents=True, exist_ok=True)
    result = run_pretrain(args) if args.what == "pretrain" else run_embed(args)
    if args.json:
        with open(args.json, "a") as f:
            f.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
