"""Kaldi fbank throughput: asdlab's batched torch front end vs kaldi-native-fbank (C++), clips/s.

Same process, same synthetic 10 s clips at 16 kHz, same configuration kaldi-native-fbank accepts
(128 mel bins from 30 Hz, "hanning" window, snip edges, no dither; EAT's 20 Hz costs the same).
torch runs one batch of `--batch` clips on `--threads` threads; kaldi-native-fbank runs one clip
at a time on one thread (its Python API has no batch call), samples handed over as ready-made
Python lists so list conversion is not charged to it. Repeats alternate between the two so load
from other processes hits both alike; the median is reported. Target: torch >= 2x the C++ clips/s.

    python benchmarks/fbank_throughput.py [--batch 32] [--threads 2] [--repeats 7] [--device cpu]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np
import torch

from _timing import sync  # benchmarks/ is on sys.path when run as a script

from asdlab.features import KaldiFbank, eat_input

SAMPLE_RATE = 16_000
NUM_BINS, LOW_FREQ = 128, 30.0


def _knf_clip(knf, opts, samples: list[float]) -> np.ndarray:
    extractor = knf.OnlineFbank(opts)
    extractor.accept_waveform(SAMPLE_RATE, samples)
    extractor.input_finished()
    return np.stack([extractor.get_frame(i) for i in range(extractor.num_frames_ready)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=32, help="clips per torch batch")
    parser.add_argument("--seconds", type=float, default=10.0, help="clip length")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--repeats", type=int, default=7, help="timed repeats of each side")
    parser.add_argument("--device", default="cpu", help="torch device for the torch side")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    num_samples = int(args.seconds * SAMPLE_RATE)
    generator = torch.Generator().manual_seed(0)
    waveforms = 0.1 * torch.randn(args.batch, num_samples, generator=generator)
    on_device = waveforms.to(device)
    front_end = KaldiFbank(num_mel_bins=NUM_BINS, low_freq=LOW_FREQ).to(device)
    eat_front_end = KaldiFbank().to(device)

    try:
        import kaldi_native_fbank as knf
    except ImportError:
        knf = None
    if knf is not None:
        opts = knf.FbankOptions()
        opts.frame_opts.dither = 0.0
        opts.frame_opts.window_type = "hanning"
        opts.mel_opts.num_bins = NUM_BINS
        opts.mel_opts.low_freq = LOW_FREQ
        lists = [row.tolist() for row in waveforms.numpy()]
        # Same numbers from both sides before timing anything (log-mel, max abs difference).
        reference = _knf_clip(knf, opts, lists[0])
        diff = float(np.abs(front_end(on_device[:1]).cpu().numpy()[0] - reference).max())
    else:
        diff = float("nan")

    def run_torch() -> float:
        sync(device)
        start = time.perf_counter()
        front_end(on_device)
        sync(device)
        return time.perf_counter() - start

    def run_eat() -> float:
        sync(device)
        start = time.perf_counter()
        eat_input(on_device, front_end=eat_front_end)
        sync(device)
        return time.perf_counter() - start

    def run_knf() -> float:
        start = time.perf_counter()
        for samples in lists:
            _knf_clip(knf, opts, samples)
        return time.perf_counter() - start

    for _ in range(2):  # warm-up: allocator, FFT plans, lazy initialisation
        run_torch()
        run_eat()
    torch_times, eat_times, knf_times = [], [], []
    for _ in range(args.repeats):
        torch_times.append(run_torch())
        eat_times.append(run_eat())
        if knf is not None:
            knf_times.append(run_knf())

    rows = [
        (f"torch KaldiFbank, batch {args.batch}", f"{args.threads} ({device.type})", torch_times),
        (f"torch eat_input (fbank+pad+norm), batch {args.batch}", f"{args.threads} ({device.type})", eat_times),
    ]
    if knf is not None:
        rows.append(("kaldi-native-fbank, one clip at a time", "1", knf_times))
    print(f"{args.batch} clips x {args.seconds:g} s @ 16 kHz, {NUM_BINS} bins from {LOW_FREQ:g} Hz; "
          f"median of {args.repeats} repeats; torch {torch.__version__}, {platform.processor() or platform.machine()}")
    print(f"{'method':<48} {'threads':>10} {'clips/s':>9} {'ms/clip':>9} {'spread':>12}")
    rates = {}
    for name, threads, times in rows:
        median = statistics.median(times)
        rate = args.batch / median
        rates[name] = rate
        spread = f"{args.batch / max(times):.0f}-{args.batch / min(times):.0f}"
        print(f"{name:<48} {threads:>10} {rate:>9.1f} {1e3 * median / args.batch:>9.2f} {spread:>12}")
    if knf is not None:
        ratio = rates[rows[0][0]] / rates[rows[-1][0]]
        print(f"ratio torch / kaldi-native-fbank: {ratio:.2f}x (target >= 2x: {'met' if ratio >= 2 else 'NOT met'})")
        print(f"max |torch - knf| on clip 0: {diff:.2e} log-mel")
    else:
        print("kaldi-native-fbank not installed (pip install kaldi-native-fbank): no ratio")


if __name__ == "__main__":
    main()
