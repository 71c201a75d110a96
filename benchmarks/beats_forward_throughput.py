"""BEATs forward throughput (inference) and its share of the machine's matmul peak measured in the same process.

Counts the model's FLOPs analytically (patch conv and projection, the grouped position convolution, qkv /
proj / MLP / gate matmuls, attention QK^T and AV; 2 FLOPs per multiply-add), times the forward pass under
`torch.inference_mode`, and measures the matmul peak in the same process, in alternating rounds so each
ratio compares the two under the same machine load (timing and peak helpers: eat_forward_throughput.py).
The median round is reported; on a shared machine, rerun on a quiet one for figures to quote.

    python benchmarks/beats_forward_throughput.py                      # BEATs-base, CPU, fp32, batch 8, 10.24 s
    python benchmarks/beats_forward_throughput.py --device cuda --dtype bfloat16 --batch 64
"""

from __future__ import annotations

import argparse
import statistics

import torch
from eat_forward_throughput import DTYPES, matmul_peak, time_forward  # same folder: run as a script

from asdlab.encoders import create_encoder
from asdlab.encoders.beats import BEATS_PRESETS


def forward_flops(preset: str, *, num_frames: int, mel_bins: int = 128) -> int:
    """FLOPs of one clip through the BEATs encoder (no masking, no CLS)."""
    p = BEATS_PRESETS[preset]
    tokens = (num_frames // 16) * (mel_bins // 16)
    d, hidden = p.embed_dim, 4 * p.embed_dim
    patches = 2 * tokens * p.patch_dim * 256 + 2 * tokens * p.patch_dim * d  # conv, then projection to D
    position_conv = 2 * tokens * d * (d // p.conv_pos_groups) * p.conv_pos
    matmuls = 2 * tokens * d * (3 * d + d + 2 * hidden) + 2 * tokens * d * 8  # qkv, proj, fc1 + fc2, gate
    attention = 2 * 2 * tokens * tokens * d  # QK^T and AV over all heads
    return patches + position_conv + p.depth * (matmuls + attention)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="beats-base", choices=sorted(BEATS_PRESETS))
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--frames", type=int, default=1024, help="spectrogram frames T (BEATs' 10-s clips: 998)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (torch.set_num_threads)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating peak / forward measurements")
    parser.add_argument("--repeats", type=int, default=2, help="timed forward passes per round")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--peak-size", type=int, default=4096, help="matrix size of the peak measurement")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=sorted(DTYPES))
    parser.add_argument("--check-flops", action="store_true",
                        help="also count one forward's FLOPs with torch.utils.flop_counter (batch 1)")
    args = parser.parse_args()

    device, dtype = torch.device(args.device), DTYPES[args.dtype]
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = create_encoder(args.preset).to(device=device, dtype=dtype).eval()
    x = torch.randn(args.batch, 1, args.frames, 128, device=device, dtype=dtype)
    parameters = sum(p.numel() for p in model.parameters())

    flops = forward_flops(args.preset, num_frames=args.frames)
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
    tokens = (args.frames // 16) * 8
    print(f"{args.preset} forward ({parameters / 1e6:.2f} M parameters), {args.dtype}, {device.type} ({where}), "
          f"input ({args.batch}, 1, {args.frames}, 128) = {tokens} tokens per clip")
    print(f"model FLOPs per clip      {flops / 1e9:.2f} GFLOP (analytic)")
    if args.check_flops:
        from torch.utils.flop_counter import FlopCounterMode

        with torch.inference_mode(), FlopCounterMode(display=False) as counter:
            model(x[:1])
        print(f"flop_counter, one clip    {counter.get_total_flops() / 1e9:.2f} GFLOP (convs, matmuls, attention)")
    print("rounds (s/batch, peak)    " + ", ".join(f"{s:.3f} s @ {p:.0f}" for s, p in rounds))
    print(f"throughput                {args.batch / seconds:.2f} clips/s (median round; best {args.batch / best:.2f})")
    print(f"achieved                  {achieved:.1f} GFLOP/s")
    print(f"matmul peak ({args.peak_size}^2)     {peak:.1f} GFLOP/s (same round)")
    per_round = ", ".join(f"{100 * r:.0f}" for r in ratios)
    print(f"ratio to peak             {100 * achieved / peak:.1f} % (rounds: {per_round} %)")


if __name__ == "__main__":
    main()
