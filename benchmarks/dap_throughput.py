"""DAP (UFO) training-step throughput of an EAT preset: clips/s, student views/s, model FLOPs per clip.

One step = teacher forward on B clips + student forward on B x clones masked views + decoder + both
losses + backward + AdamW + EMA update, as `DAPTask` runs inside the training loop. FLOPs are counted
once with `torch.utils.flop_counter` (matmuls, convolutions, attention; forward + backward), so a GPU
run can report MFU = FLOPs/clip x clips/s / peak FLOP/s (`--peak-tflops`).

    .venv/bin/python benchmarks/dap_throughput.py --preset eat-base --batch-size 1 --clones 16 --steps 3
    .venv/bin/python benchmarks/dap_throughput.py --preset eat-base --precision both --steps 5
    python benchmarks/dap_throughput.py --device cuda --precision bf16 --batch-size 12 --peak-tflops 989
"""

from __future__ import annotations

import argparse
import contextlib
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from asdlab.encoders.eat import create_eat_decoder
from asdlab.encoders.registry import create_encoder
from asdlab.training.schedules import parameter_groups
from asdlab.training.ufo import DAPTask


def measure(args, precision: str) -> tuple[list[float], float, int]:
    """Step times (s) of `args.steps` timed DAP steps in `precision`, model FLOPs per clip, and the
    trainable parameter count (student + decoder)."""
    device = torch.device(args.device)
    generator = torch.Generator().manual_seed(0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        task = DAPTask(create_encoder(args.preset), create_eat_decoder(args.preset), clones=args.clones)
    task = task.to(device).train()
    optimizer = torch.optim.AdamW(parameter_groups(task.named_parameters(), weight_decay=0.05), lr=1e-4,
                                  betas=(0.9, 0.95))
    x = torch.randn(args.batch_size, 1, args.frames, 128, generator=generator).to(device)
    step_generator = torch.Generator(device=device).manual_seed(0)

    def autocast():
        if precision == "bf16":
            return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def step(i: int) -> None:
        with autocast():
            out = task(x, generator=step_generator)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(task.parameters(), 4.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        task.after_optimizer_step(i + 1)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    counter = FlopCounterMode(display=False)
    with counter:
        step(0)  # also the warm-up step
    flops_per_clip = counter.get_total_flops() / args.batch_size
    sync()
    times = []
    for i in range(args.steps):
        start = time.perf_counter()
        step(i + 1)
        sync()
        times.append(time.perf_counter() - start)
    return times, flops_per_clip, sum(p.numel() for p in task.parameters() if p.requires_grad)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="eat-base")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--clones", type=int, default=16)
    parser.add_argument("--frames", type=int, default=1024, help="fbank frames per clip (1024 = EAT's 10 s)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps (after one warm-up step)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", choices=("fp32", "bf16", "both"), default="fp32",
                        help="bf16 = autocast; both = fp32 then bf16 in this process, with their ratio")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--peak-tflops", type=float, default=None,
                        help="the device's dense peak for the (last) precision (H100 SXM bf16: 989), to print MFU")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    where = f"{torch.get_num_threads()} threads" if args.device == "cpu" else torch.cuda.get_device_name(args.device)
    tokens = args.frames // 16 * 8
    clips_per_s = {}
    for precision in ("fp32", "bf16") if args.precision == "both" else (args.precision,):
        times, flops_per_clip, trainable = measure(args, precision)
        if not clips_per_s:
            print(f"{args.preset} DAP step on {args.device} ({where}): batch {args.batch_size} clips x "
                  f"{args.clones} clones, {args.frames} frames = {tokens} patches, {trainable / 1e6:.1f} M "
                  "trainable parameters (student + decoder)")
        per_step = sorted(times)[len(times) // 2]
        clips_per_s[precision] = args.batch_size / per_step
        achieved = flops_per_clip * args.batch_size / per_step
        print(f"{precision}: step times (s) {', '.join(f'{t:.2f}' for t in times)}; median {per_step:.2f} s; "
              f"{clips_per_s[precision]:.3f} clips/s, {clips_per_s[precision] * args.clones:.2f} student views/s; "
              f"{flops_per_clip / 1e12:.3f} TFLOP per clip (fwd + bwd, teacher + student + decoder), "
              f"achieved {achieved / 1e9:.1f} GFLOP/s")
        if args.peak_tflops:
            print(f"{precision}: model-FLOP utilisation {100 * achieved / (args.peak_tflops * 1e12):.1f} % "
                  f"of {args.peak_tflops} TFLOP/s")
    if len(clips_per_s) == 2:
        print(f"bf16 / fp32 throughput: {clips_per_s['bf16'] / clips_per_s['fp32']:.2f}x")


if __name__ == "__main__":
    main()
