"""Fine-tuning step throughput of the paper's recipe (EAT + ArcFace, full mode): clips/s and MFU.

One step = Kaldi fbank of a waveform batch on the device, mixup + SpecAugment, encoder forward with
drop-path, pooling, projection, ArcFace loss, backward, AdamW with layer-wise lr decay, as
`AttributeTask` runs inside the training loop. FLOPs are counted once with
`torch.utils.flop_counter` (forward + backward); MFU is taken against `--peak-tflops` or a matmul
timed in this process (`--measure-peak`).

    .venv/bin/python benchmarks/finetune_throughput.py --preset eat-tiny --batch-size 4 --steps 3
    python benchmarks/finetune_throughput.py --device cuda --precision bf16 --batch-size 32 --measure-peak
"""

from __future__ import annotations

import argparse
import contextlib
import json

import torch
from torch.utils.flop_counter import FlopCounterMode

from _timing import warm_then_time  # benchmarks/ is on sys.path when run as a script

from asdlab.training.compile import CompiledCall
from asdlab.training.finetune import AttributeTask, make_eat_backbone
from asdlab.training.loop import OPTIMIZER_IMPLS, make_adamw


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="eat-base")
    parser.add_argument("--batch-size", type=int, default=32, help="clips per step (paper: 32)")
    parser.add_argument("--duration-s", type=float, default=10.0, help="clip length (10 s -> 1024 frames)")
    parser.add_argument("--classes", type=int, default=64, help="attribute classes of the head")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--optimizer-impl", default="auto", choices=OPTIMIZER_IMPLS)
    parser.add_argument("--compile", action="store_true", help="torch.compile the encoder, pooling and projection")
    parser.add_argument("--compile-backend", default="inductor")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--peak-tflops", type=float, default=None)
    parser.add_argument("--measure-peak", action="store_true")
    parser.add_argument("--json", default=None, metavar="PATH", help="append the result as one JSON line")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    else:
        torch.backends.cuda.matmul.allow_tf32 = True

    samples = round(args.duration_s * 16000)
    frames = -(-(1 + (samples - 400) // 160) // 16) * 16
    backbone = make_eat_backbone(args.preset, target_frames=frames, seed=0, drop_path=0.1)
    task = AttributeTask(backbone, args.classes, mode="full", seed=0).to(device).train()  # eager FLOP count
    optimizer = make_adamw(task.optimizer_groups(weight_decay=0.05), lr=5e-5, betas=(0.9, 0.999),
                           impl=args.optimizer_impl, device=device)
    data = torch.Generator().manual_seed(0)
    batch = {
        "waveform": (0.1 * torch.randn(args.batch_size, samples, generator=data)).to(device),
        "target": torch.randint(0, args.classes, (args.batch_size,), generator=data).to(device),
    }
    generator = torch.Generator(device=device)

    def step(i: int) -> None:
        generator.manual_seed(i)
        context = (torch.autocast(device_type=device.type, dtype=torch.bfloat16) if args.precision == "bf16"
                   else contextlib.nullcontext())
        with context:
            out = task(batch, generator=generator)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(task.parameters(), 4.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    counter = FlopCounterMode(display=False)
    with counter:
        step(0)
    flops_per_clip = counter.get_total_flops() / args.batch_size
    if args.compile:
        task._embed = CompiledCall(task.backbone.embed_input, args.compile_backend, what="fine-tuning encoder")
    warmup_s, times = warm_then_time(step, warmup=args.warmup, steps=args.steps, device=device)
    peak = args.peak_tflops
    if args.measure_peak:
        from dap_throughput import matmul_peak_tflops  # benchmarks/ is the script's folder

        peak = matmul_peak_tflops(device, torch.bfloat16 if args.precision == "bf16" else torch.float32)
    per_step = sorted(times)[len(times) // 2]
    clips_per_s = args.batch_size / per_step
    achieved = flops_per_clip * clips_per_s
    where = f"{torch.get_num_threads()} threads" if device.type == "cpu" else torch.cuda.get_device_name(device)
    compiled = args.compile and task._embed.worked
    variant = (f"compile({args.compile_backend})" if compiled else "compile FAILED: eager") if args.compile else "eager"
    print(f"{args.preset} fine-tuning step ({args.precision}, {variant}, warm-up {warmup_s:.1f} s) on {args.device} ({where}): batch {args.batch_size} x "
          f"{frames} frames; step times (s) {', '.join(f'{t:.3f}' for t in times)}; median {per_step:.3f} s; "
          f"{clips_per_s:.2f} clips/s; {flops_per_clip / 1e9:.1f} GFLOP per clip (fwd + bwd); "
          f"achieved {achieved / 1e12:.3f} TFLOP/s")
    result = {"kind": "finetune_step", "preset": args.preset, "batch_size": args.batch_size,
              "precision": args.precision, "frames": frames, "times_s": times, "median_s": per_step,
              "clips_per_s": clips_per_s, "flops_per_clip": flops_per_clip, "achieved_tflops": achieved / 1e12,
              "peak_tflops": peak, "variant": variant, "compiled": compiled}
    if peak:
        result["mfu"] = achieved / (peak * 1e12)
        print(f"model-FLOP utilisation {100 * result['mfu']:.1f} % of {peak:.4g} TFLOP/s")
    if args.json:
        with open(args.json, "a") as f:
            f.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
