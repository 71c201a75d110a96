"""DAP (UFO) training-step throughput of an EAT preset: clips/s, student views/s, model FLOPs, MFU.

One step = teacher forward on B clips + student forward on B x clones masked views + decoder + both
losses + backward + AdamW + EMA update, as `DAPTask` runs inside the training loop. FLOPs are counted
once per batch size with `torch.utils.flop_counter` (matmuls, convolutions, attention; forward +
backward) on an eager step, so every variant of the same batch is charged the same model FLOPs and
MFU = FLOPs/clip x clips/s / peak compares them directly (`--peak-tflops`, or `--measure-peak`: a
bf16/fp32 square matmul timed in this process).

Variants, each timed in turn in this process: the decoder's convolution (`--decoder-conv conv,conv-nhwc,
matmul`, see `EATDecoder`), `--compile` (torch.compile of the whole objective), the AdamW kernels.

    .venv/bin/python benchmarks/dap_throughput.py --preset eat-base --batch-size 1 --clones 16 --steps 3
    .venv/bin/python benchmarks/dap_throughput.py --preset eat-base --precision both --steps 5
    python benchmarks/dap_throughput.py --device cuda --precision bf16 --batch-sizes 12,32 \\
        --decoder-conv conv,conv-nhwc,matmul --measure-peak --steps 8
    python benchmarks/dap_throughput.py --device cuda --precision bf16 --batch-sizes 32 --decoder-conv matmul \\
        --compile --profile 3
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from _timing import matmul_peak_flops, sync, warm_then_time  # benchmarks/ is on sys.path

from asdlab.encoders.eat import DECODER_CONVS, create_eat_decoder
from asdlab.encoders.registry import create_encoder
from asdlab.training.loop import OPTIMIZER_IMPLS, make_adamw
from asdlab.training.schedules import parameter_groups
from asdlab.training.ufo import DAPTask


def matmul_peak_tflops(device: torch.device, dtype: torch.dtype, *, size: int = 8192, repeats: int = 10) -> float:
    """Best TFLOP/s of a square matmul of `dtype` on `device` (the peak MFU is taken against)."""
    return matmul_peak_flops(size=size, dtype=dtype, device=device, repeats=repeats) / 1e12


class Variant:
    """One way to run the step: decoder convolution, compile backend, AdamW kernels."""

    def __init__(self, decoder_conv: str, compile_backend: str | None, optimizer_impl: str):
        self.decoder_conv, self.compile_backend, self.optimizer_impl = decoder_conv, compile_backend, optimizer_impl

    @property
    def name(self) -> str:
        compiled = f"+compile({self.compile_backend})" if self.compile_backend else ""
        return f"{self.decoder_conv}{compiled}"


def build(args, variant: Variant, device: torch.device) -> tuple[DAPTask, torch.optim.Optimizer]:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        task = DAPTask(create_encoder(args.preset), create_eat_decoder(args.preset, conv=variant.decoder_conv),
                       clones=args.clones)
    task = task.to(device).train()
    groups = parameter_groups(task.named_parameters(), weight_decay=0.05)
    optimizer = make_adamw(groups, lr=1e-4, betas=(0.9, 0.95), impl=variant.optimizer_impl, device=device)
    return task, optimizer


def measure(args, *, batch_size: int, precision: str, variant: Variant, flops_per_clip: float | None) -> dict:
    """Time `args.steps` steps of one variant; count FLOPs on its first (eager) step when not given."""
    device = torch.device(args.device)
    task, optimizer = build(args, variant, device)
    x = torch.randn(batch_size, 1, args.frames, 128, generator=torch.Generator().manual_seed(0)).to(device)
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

    warmup_start = time.perf_counter()
    if flops_per_clip is None:
        counter = FlopCounterMode(display=False)
        with counter:
            step(0)  # eager, also a warm-up step
        flops_per_clip = counter.get_total_flops() / batch_size
    task.compile_backend = variant.compile_backend  # the first compiled (warm-up) steps compile
    warmup_s, times = warm_then_time(step, warmup=args.warmup, steps=args.steps, device=device,
                                     warmup_start=warmup_start)
    compiled = variant.compile_backend is not None and task._objective.worked
    memory_gb = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    result = {
        "batch_size": batch_size, "precision": precision, "variant": variant.name, "compiled": compiled,
        "decoder_conv": variant.decoder_conv, "optimizer_impl": variant.optimizer_impl, "times_s": times,
        "median_s": sorted(times)[len(times) // 2], "flops_per_clip": flops_per_clip, "warmup_s": warmup_s,
        "max_memory_gb": memory_gb,
        "trainable": sum(p.numel() for p in task.parameters() if p.requires_grad),
    }
    if args.profile and args.profile_target in (variant.name, "all") and args.profile_batch in (None, batch_size):
        result["profile"] = profile_steps(step, device, args.profile)
    del task, optimizer, x
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    return result


def _kernel_group(name: str) -> str:
    """A coarse label for a kernel / operator name (what a profile row spends its time on)."""
    lowered = name.lower()
    rules = [
        (("flash", "fmha", "attention", "sdpa", "efficient_attention"), "attention"),
        (("conv", "implicit_gemm", "cudnn", "wgrad", "dgrad", "fprop"), "convolution"),
        (("nchw", "nhwc", "transpose", "permute"), "layout transform"),
        (("gemm", "cutlass", "matmul", "sm90_xmma", "sm80_xmma", "bmm", "addmm", " mm", "ampere", "hopper"), "matmul"),
        (("layer_norm", "layernorm", "instance_norm", "batch_norm", "welford", "var_mean"), "normalisation"),
        (("adam", "foreach", "lerp", "multi_tensor"), "optimizer / EMA"),
        (("copy", "cast", "to_copy", "convert"), "dtype / copy"),
        (("triton",), "compiled (triton)"),
    ]
    for keys, label in rules:
        if any(key in lowered for key in keys):
            return label
    return "other elementwise / reduction"


def profile_steps(step, device: torch.device, steps: int) -> dict:
    """Top kernels (self device time) over `steps` steps, and the time per coarse group."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        for i in range(steps):
            step(1000 + i)
        sync(device)
    attribute = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    from torch.autograd import DeviceType

    rows = []
    for event in prof.key_averages():
        if device.type == "cuda":  # kernels only: operator rows would count their kernels twice
            if event.device_type != DeviceType.CUDA:
                continue
            spent = getattr(event, attribute, None) or getattr(event, "self_cuda_time_total", 0.0)
        else:  # CPU operator rows nest; keep the aten operators' self time
            if not event.key.startswith("aten::"):
                continue
            spent = event.self_cpu_time_total
        if spent:
            rows.append((event.key, float(spent) / 1e3 / steps, max(event.count // steps, 1)))
    rows.sort(key=lambda row: -row[1])
    total = sum(row[1] for row in rows) or 1.0
    groups: dict[str, float] = {}
    for name, ms, _ in rows:
        groups[_kernel_group(name)] = groups.get(_kernel_group(name), 0.0) + ms
    return {
        "total_ms_per_step": total,
        "top": [{"kernel": name[:110], "ms_per_step": ms, "share": ms / total, "calls_per_step": calls}
                for name, ms, calls in rows[:15]],
        "groups": {name: {"ms_per_step": ms, "share": ms / total}
                   for name, ms in sorted(groups.items(), key=lambda item: -item[1])},
    }


def report(result: dict, args, peak_tflops: float | None) -> dict:
    per_step = result["median_s"]
    clips_per_s = result["batch_size"] / per_step
    achieved = result["flops_per_clip"] * clips_per_s
    result.update(clips_per_s=clips_per_s, views_per_s=clips_per_s * args.clones, achieved_tflops=achieved / 1e12)
    mfu = f", MFU {100 * achieved / (peak_tflops * 1e12):.1f} % of {peak_tflops:.4g} TFLOP/s" if peak_tflops else ""
    if peak_tflops:
        result["mfu"] = achieved / (peak_tflops * 1e12)
    compiled = "" if not result["variant"].count("+compile") or result["compiled"] else " (compile FAILED: eager)"
    memory = f", peak memory {result['max_memory_gb']:.1f} GiB" if result.get("max_memory_gb") else ""
    print(f"{result['precision']} batch {result['batch_size']}x{args.clones} {result['variant']}{compiled}: "
          f"step times (s) {', '.join(f'{t:.3f}' for t in result['times_s'])}; median {per_step:.3f} s; "
          f"{clips_per_s:.3f} clips/s, {clips_per_s * args.clones:.2f} student views/s; "
          f"{result['flops_per_clip'] / 1e12:.3f} TFLOP per clip; achieved {achieved / 1e12:.2f} TFLOP/s{mfu}; "
          f"warm-up {result['warmup_s']:.1f} s{memory}", flush=True)
    if "profile" in result:
        profile = result["profile"]
        print(f"profile of {result['variant']} at batch {result['batch_size']}: "
              f"{profile['total_ms_per_step']:.1f} ms of kernel time per step")
        for name, group in profile["groups"].items():
            print(f"  {100 * group['share']:5.1f} %  {group['ms_per_step']:8.2f} ms  {name}")
        print("  top kernels (self time per step):")
        for row in profile["top"]:
            print(f"  {100 * row['share']:5.1f} %  {row['ms_per_step']:8.2f} ms  x{row['calls_per_step']:<4d} {row['kernel']}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="eat-base")
    parser.add_argument("--batch-size", type=int, default=1, help="clips per step (see --batch-sizes)")
    parser.add_argument("--batch-sizes", default=None, help="comma-separated batch sizes, each timed (e.g. 12,32)")
    parser.add_argument("--clones", type=int, default=16)
    parser.add_argument("--frames", type=int, default=1024, help="fbank frames per clip (1024 = EAT's 10 s)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps (after the warm-up steps)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps after the FLOP-counting step")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", choices=("fp32", "bf16", "both"), default="fp32",
                        help="bf16 = autocast; both = fp32 then bf16 in this process, with their ratio")
    parser.add_argument("--decoder-conv", default="conv",
                        help=f"comma-separated decoder convolutions to time, of {', '.join(DECODER_CONVS)}")
    parser.add_argument("--compile", action="store_true", help="torch.compile the objective (every variant)")
    parser.add_argument("--compile-backend", default="inductor")
    parser.add_argument("--optimizer-impl", default="auto", choices=OPTIMIZER_IMPLS)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--peak-tflops", type=float, default=None,
                        help="the device's dense peak for the (last) precision (H100 SXM bf16: 989), to print MFU")
    parser.add_argument("--measure-peak", action="store_true",
                        help="time a square matmul of the (last) precision here and take MFU against it")
    parser.add_argument("--profile", type=int, default=0, metavar="STEPS",
                        help="profile this many steps of --profile-target (default: the last variant)")
    parser.add_argument("--profile-target", default=None,
                        help="variant name to profile, e.g. matmul+compile(inductor), or all")
    parser.add_argument("--profile-batch", type=int, default=None, help="profile at this batch size only")
    parser.add_argument("--json", default=None, metavar="PATH", help="append one JSON line per timed variant")
    args = parser.parse_args()
    if args.device == "cpu":
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")] if args.batch_sizes else [args.batch_size]
    compile_backend = args.compile_backend if args.compile else None
    variants = [Variant(conv.strip(), compile_backend, args.optimizer_impl) for conv in args.decoder_conv.split(",")]
    for variant in variants:
        if variant.decoder_conv not in DECODER_CONVS:
            parser.error(f"unknown decoder conv {variant.decoder_conv!r}")
    if args.profile and args.profile_target is None:
        args.profile_target = variants[-1].name
    precisions = ("fp32", "bf16") if args.precision == "both" else (args.precision,)

    where = f"{torch.get_num_threads()} threads" if device.type == "cpu" else torch.cuda.get_device_name(device)
    peak = args.peak_tflops
    if args.measure_peak:
        peak = matmul_peak_tflops(device, torch.bfloat16 if precisions[-1] == "bf16" else torch.float32)
        print(f"measured {precisions[-1]} matmul peak: {peak:.4g} TFLOP/s")
    print(f"{args.preset} DAP step on {args.device} ({where}), {args.clones} clones, {args.frames} frames = "
          f"{args.frames // 16 * 8} patches, torch {torch.__version__}", flush=True)
    clips_per_s = {}
    for precision in precisions:
        for batch_size in batch_sizes:
            flops = None
            for variant in variants:
                try:
                    result = measure(args, batch_size=batch_size, precision=precision, variant=variant,
                                     flops_per_clip=flops)
                except Exception as error:  # one failing variant (out of memory, ...) must not hide the others
                    print(f"{precision} batch {batch_size} {variant.name}: FAILED: {type(error).__name__}: {error}",
                          flush=True)
                    if args.json:
                        with open(args.json, "a") as f:
                            f.write(json.dumps({"kind": "dap_step", "batch_size": batch_size, "precision": precision,
                                                "variant": variant.name, "error": f"{type(error).__name__}: {error}"[:300]}) + "\n")
                    if device.type == "cuda":
                        torch.cuda.empty_cache()
                    continue
                flops = result["flops_per_clip"]
                result = report(result, args, peak if precision == precisions[-1] else args.peak_tflops)
                clips_per_s[precision] = result["clips_per_s"]
                if args.json:
                    with open(args.json, "a") as f:
                        record = {k: v for k, v in result.items()}
                        f.write(json.dumps({"kind": "dap_step", "preset": args.preset, "clones": args.clones,
                                            "peak_tflops": peak, **record}) + "\n")
    if len(clips_per_s) == 2:
        print(f"bf16 / fp32 throughput: {clips_per_s['bf16'] / clips_per_s['fp32']:.2f}x")


if __name__ == "__main__":
    main()
