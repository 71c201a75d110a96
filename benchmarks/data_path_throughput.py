"""Clips/s of the embedding data path without the model: decode (+ resample) in worker threads, then
EAT's Kaldi fbank, with 0, 1 and 2 workers.

It runs `asdlab.embeddings.extract.iter_embedded_chunks` (what `asdlab embed` runs) with a "model" that
is only EAT's front end (fbank + normalisation, pooled to one number per mel bin), so what is timed is
everything `asdlab embed` does besides the encoder. Two sets of clips: the real DCASE 2023 clips of
../shared (16 kHz, no resampling), hard-linked to `--clips` files, and generated 48 kHz noise clips
(decoding + soxr resampling to 16 kHz). On a GPU the fbank runs on the GPU; here it runs on the CPU, in
the main process, so the figures are a CPU-side floor of what feeds the model.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/data_path_throughput.py --clips 256
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
import wave
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from asdlab.data.index import index_dataset
from asdlab.embeddings.extract import iter_embedded_chunks
from asdlab.features.normalize import EATFrontEnd

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "dcase2023t2-dev-mixed-samples"


class FrontEndOnly(nn.Module):
    """Waveforms (B, S) -> EAT input (B, 1, T, F) -> its mean over time (B, F): the data path's end."""

    def __init__(self) -> None:
        super().__init__()
        self.front_end = EATFrontEnd(target_frames=1024)
        self.sample_rate = 16000

    def forward(self, waveform: Tensor) -> Tensor:
        return self.front_end(waveform).mean(dim=(1, 2))


class FirstSample(nn.Module):
    """No front end: (B, S) -> (B, 1), to time decoding alone."""

    sample_rate = 16000

    def forward(self, waveform: Tensor) -> Tensor:
        return waveform[:, :1]


def real_clips(folder: Path, count: int) -> Path:
    """`count` links to the 10-s DCASE 2023 clips of ../shared under folder/fan/train."""
    sources = sorted(p for p in SHARED.glob("*.wav") if not p.name.startswith(("ToyCar", "ToyTrain")))  # 12 s ones out
    if not sources:
        raise SystemExit(f"{SHARED}: no DCASE clips (../shared missing)")
    target = folder / "fan" / "train"
    target.mkdir(parents=True)
    for i in range(count):
        os.link(sources[i % len(sources)], target / f"section_00_source_train_normal_{i:04d}_noAttribute.wav")
    return folder


def resampled_clips(folder: Path, count: int, *, rate: int = 48000, unique: int = 16) -> Path:
    """`count` 10-s noise clips at `rate` Hz (16-bit) under folder/fan/train, `unique` distinct ones."""
    target = folder / "fan" / "train"
    target.mkdir(parents=True)
    rng = np.random.default_rng(0)
    first = []
    for i in range(count):
        path = target / f"section_00_source_train_normal_{i:04d}_noAttribute.wav"
        if i < unique:
            with wave.open(str(path), "wb") as f:
                f.setnchannels(1)
                f.setsampwidth(2)
                f.setframerate(rate)
                f.writeframes((rng.standard_normal(10 * rate) * 3000).astype("<i2").tobytes())
            first.append(path)
        else:
            os.link(first[i % unique], path)
    return folder


def clips_per_s(root: Path, *, workers: int, batch_size: int, fbank: bool = True) -> float:
    records = index_dataset(root, splits=("train",))
    model = FrontEndOnly() if fbank else FirstSample()
    chunks = iter_embedded_chunks(records, model, chunk_size=len(records) // batch_size * batch_size or batch_size,
                                  batch_size=batch_size, device="cpu", num_workers=workers)
    start = time.perf_counter()
    done = sum(len(clips.records) for _, clips in chunks)
    return done / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", default="0,1,2")
    parser.add_argument("--repeats", type=int, default=2, help="runs per setting; the best is reported")
    args = parser.parse_args()
    torch.set_num_threads(1)  # the fbank in the main process on one core; workers take the others
    folder = Path(tempfile.mkdtemp(prefix="data_path_"))
    try:
        sets = {"DCASE 2023 clips, 16 kHz (decode)": real_clips(folder / "real", args.clips),
                "noise clips, 48 kHz (decode + resample)": resampled_clips(folder / "resampled", args.clips)}
        print(f"{args.clips} clips of 10 s per set, batch {args.batch_size}, {os.cpu_count()} CPU cores, "
              f"torch {torch.__version__} with 1 thread in the main process")
        print("| clips | workers | decode + fbank, clips/s | decode only, clips/s |")
        print("|---|---|---|---|")
        for name, root in sets.items():
            for workers in (int(w) for w in args.workers.split(",")):
                best = [max(clips_per_s(root, workers=workers, batch_size=args.batch_size, fbank=fbank)
                            for _ in range(args.repeats)) for fbank in (True, False)]
                print(f"| {name} | {workers} | {best[0]:.1f} | {best[1]:.1f} |", flush=True)
        waves = 0.1 * torch.randn(args.batch_size, 160000, generator=torch.Generator().manual_seed(0))
        front_end = FrontEndOnly()
        front_end(waves)
        start = time.perf_counter()
        for _ in range(3):
            front_end(waves)
        print(f"fbank alone (1 thread, batches of {args.batch_size} 10-s clips in memory): "
              f"{3 * args.batch_size / (time.perf_counter() - start):.1f} clips/s")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
