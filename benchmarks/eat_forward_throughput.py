"""EAT forward throughput (inference) and its share of the machine's measured matmul peak.

Counts the model's FLOPs analytically (patch conv, qkv / proj / MLP matmuls, attention QK^T and
AV; 2 FLOPs per multiply-add), times the forward pass under `torch.inference_mode`, and measures
the matmul peak in the same process (square `torch.mm`, best of several). Peak and forward are
measured in alternating rounds so that each ratio compares the two under the same machine load;
the median round is reported (on a shared machine, rerun on a quiet one for figures to quote).

    python benchmarks/eat_forward_throughput.py                     # EAT-base, CPU, fp32, batch 8
    python benchmarks/eat_forward_throughput.py --device cuda --dtype bfloat16 --batch 64
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from _timing import matmul_peak_flops, sync  # benchmarks/ is on sys.path when run as a script

from asdlab.encoders import create_encoder
from asdlab.encoders.eat import EAT_PRESETS

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def forward_flops(*, embed_dim: int, depth: int, num_frames: int, mel_bins: int = 128, mlp_ratio: float = 4.0) -> int:
    """FLOPs of one clip through the EAT encoder (no masking)."""
    patches = (num_frames // 16) * (mel_bins // 16)
    tokens = patches + 1  # + CLS
    d, hidden = embed_dim, int(embed_dim * mlp_ratio)
    patch_conv = 2 * patches * d * 256
    matmuls = 2 * tokens * d * (3 * d + d + 2 * hidden)  # qkv, proj, fc1 + fc2
    attention = 2 * 2 * tokens * tokens * d  # QK^T and AV over all heads
    return patch_conv + depth * (matmuls + attention)


def matmul_peak(*, size: int, dtype: torch.dtype, device: torch.device, repeats: int = 5) -> float:
    """Best GFLOP/s of a square matmul."""
    return matmul_peak_flops(size=size, dtype=dtype, device=device, repeats=repeats) / 1e9


def time_forward(model: torch.nn.Module, x: torch.Tensor, *, warmup: int, repeats: int) -> list[float]:
    """Seconds per forward pass of the batch `x`."""
    times = []
    with torch.inference_mode():
        for i in range(warmup + repeats):
            sync(x.device)
            start = time.perf_counter()
            model(x)
            sync(x.device)
            if i >= warmup:
                times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="eat-base", choices=sorted(EAT_PRESETS))
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--frames", type=int, default=1024, help="spectrogram frames T (multiple of 16)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (torch.set_num_threads)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating peak / forward measurements")
    parser.add_argument("--repeats", type=int, default=2, help="timed forward passes per round")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--peak-size", type=int, default=4096, help="matrix size of the peak measurement")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=sorted(DTYPES))
    parser.add_argument("--profile", action="store_true", help="print the top operators of one forward pass")
    parser.add_argument("--json", default=None, metavar="PATH", help="append the result as one JSON line")
    args = parser.parse_args()

    device, dtype = torch.device(args.device), DTYPES[args.dtype]
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = create_encoder(args.preset).to(device=device, dtype=dtype).eval()
    x = torch.randn(args.batch, 1, args.frames, 128, device=device, dtype=dtype)

    preset = EAT_PRESETS[args.preset]
    flops = forward_flops(embed_dim=preset.embed_dim, depth=preset.depth, num_frames=args.frames)
    time_forward(model, x, warmup=args.warmup, repeats=0)
    rounds = []  # (seconds per batch, peak GFLOP/s)
    for _ in range(args.rounds):
        peak = matmul_peak(size=args.peak_size, dtype=dtype, device=device)
        rounds.append((min(time_forward(model, x, warmup=0, repeats=args.repeats)), peak))
    ratios = [flops * args.batch / seconds / 1e9 / peak for seconds, peak in rounds]
    seconds, peak = rounds[ratios.index(statistics.median_low(ratios))]
    best = min(s for s, _ in rounds)
    achieved = flops * args.batch / seconds / 1e9

    where = f"{args.threads} threads" if device.type == "cpu" else torch.cuda.get_device_name(device)
    print(f"{args.preset} forward, {args.dtype}, {device.type} ({where}), input ({args.batch}, 1, {args.frames}, 128)")
    print(f"model FLOPs per clip      {flops / 1e9:.2f} GFLOP")
    print("rounds (s/batch, peak)    " + ", ".join(f"{s:.3f} s @ {p:.0f}" for s, p in rounds))
    print(f"throughput                {args.batch / seconds:.2f} clips/s (median round; best {args.batch / best:.2f})")
    print(f"achieved                  {achieved:.1f} GFLOP/s")
    print(f"matmul peak ({args.peak_size}^2)     {peak:.1f} GFLOP/s (same round)")
    per_round = ", ".join(f"{100 * r:.0f}" for r in ratios)
    print(f"ratio to peak             {100 * achieved / peak:.1f} % (rounds: {per_round} %)")
    if args.json:
        import json

        record = {"kind": "forward", "preset": args.preset, "dtype": args.dtype, "batch_size": args.batch,
                  "frames": args.frames, "clips_per_s": args.batch / seconds, "achieved_tflops": achieved / 1e3,
                  "peak_tflops": peak / 1e3, "share_of_peak": achieved / peak}
        with open(args.json, "a") as f:
            f.write(json.dumps(record) + "\n")

    if args.profile:
        from torch.profiler import profile

        with torch.inference_mode(), profile() as prof:
            model(x)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


if __name__ == "__main__":
    main()
