"""`asdlab pretrain DATA_ROOT [DATA_ROOT ...] --out DIR`: domain-adaptive pre-training (asdlab.pipeline.pretrain)."""

from __future__ import annotations

import argparse
import sys

from asdlab.cli._commands import COMMANDS

__all__ = ["register", "run", "format_progress"]


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def format_progress(report) -> str:
    """One progress line: step, loss and its parts, lr, EMA decay, clips/s, ETA."""
    logs = report.logs
    parts = f"loss {logs.get('loss', float('nan')):.4f}"
    if "loss_frame" in logs:
        parts += f" (frame {logs['loss_frame']:.4f}, utt {logs.get('loss_utterance', float('nan')):.4f})"
    ema = f" | ema {logs['ema_decay']:.6f}" if "ema_decay" in logs else ""
    return (f"step {report.step}/{report.max_steps} | {parts} | lr {report.lr:.3g}{ema} | "
            f"{report.clips_per_s:.2f} clips/s | ETA {_duration(report.eta_s)}")


def _init(text: str) -> str | None:
    return None if text.strip().lower() == "scratch" else text


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `pretrain` subcommand."""
    parser = subparsers.add_parser(
        "pretrain",
        help=COMMANDS["pretrain"],
        description=(
            "Continue EAT's self-supervised pre-training (masked student, EMA teacher, utterance-frame loss) on "
            "the train clips of every machine under each DATA_ROOT (no labels are used). Writes OUT/encoder."
            "safetensors (the DAP encoder, for `asdlab embed --weights`), OUT/teacher.safetensors, "
            "OUT/decoder.safetensors, the checkpoint OUT/last.ckpt and OUT/train_log.csv; another run can start "
            "from OUT with --init OUT. Runs on CPU, one GPU, or many with "
            "--strategy ddp (start with torchrun or srun); --resume continues a stopped run exactly."
        ),
    )
    parser.add_argument("data_roots", nargs="+", metavar="DATA_ROOT", help="dataset root(s), e.g. all DCASE years")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument("--preset", default="eat-base",
                        help="transformer preset: eat-tiny, eat-small, eat-base, eat-large, sslam-base, beats-tiny, "
                             "beats-base (BEATs: the same objective, the report's TATS)")
    parser.add_argument("--init", type=_init, default=None, metavar="FILE|DIR|scratch",
                        help="released EAT / SSLAM / BEATs checkpoint, asdlab encoder file, or the OUT folder of an earlier "
                             "pretrain run (student, teacher and decoder) to start from (default scratch)")
    parser.add_argument("--steps", type=int, default=None, help="optimiser updates (default 400000, EAT)")
    parser.add_argument("--batch-size", type=int, default=None, help="clips per device per micro-batch (default 32)")
    parser.add_argument("--clones", type=int, default=None, help="masked views per clip (default 16)")
    parser.add_argument("--accumulate", type=int, default=None, metavar="K", help="micro-batches per update (default 1)")
    parser.add_argument("--lr", type=float, default=None, help="peak learning rate (default 5e-4)")
    parser.add_argument("--warmup", type=int, default=None, metavar="STEPS",
                        help="warm-up updates (default 13.3%% of --steps, as EAT's 53333 of 400000)")
    parser.add_argument("--duration-s", type=float, default=None,
                        help="bring every clip to this length (default: the most common length)")
    parser.add_argument("--precision", default=None,
                        help="auto (bf16-mixed on GPU, 32-true on CPU), 32-true, bf16-mixed, 16-mixed")
    parser.add_argument("--accelerator", default=None, help="auto, cpu, cuda (default auto)")
    parser.add_argument("--devices", default=None, help="devices per node, or auto (default 1)")
    parser.add_argument("--num-nodes", type=int, default=None, help="nodes (default 1)")
    parser.add_argument("--strategy", default=None, help="auto or ddp (default auto)")
    parser.add_argument("--num-workers", type=int, default=None, help="DataLoader workers (default 0)")
    parser.add_argument("--checkpoint-every", type=int, default=None, help="updates between checkpoints (default 1000)")
    parser.add_argument("--log-every", type=int, default=None, help="updates between progress lines (default 10)")
    parser.add_argument("--seed", type=int, default=None, help="seed of initialisation, data order and masks (default 0)")
    parser.add_argument("--decoder-conv", default=None, choices=("auto", "conv", "conv-nhwc", "matmul"),
                        help="how the decoder computes its grouped convolutions (same result; default auto: the "
                             "fastest measured on a GPU, conv on a CPU)")
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                        help="torch.compile the DAP objective (default: off on a CPU; see GPU_COMPILE on a GPU)")
    parser.add_argument("--resume", action="store_true", help="continue from DIR/last.ckpt")
    parser.add_argument("--stop-after", type=int, default=None, metavar="N",
                        help="stop after N updates of this call, with a checkpoint, to continue with --resume "
                             "(e.g. within a job's time limit)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Pre-train, printing one progress line per report, then where the encoder went."""
    from asdlab.pipeline.pretrain import PretrainSettings, run_pretraining, with_overrides  # imports torch
    from asdlab.training.loop import is_global_zero

    devices = args.devices
    if devices is not None and devices != "auto":
        devices = int(devices)
    settings = with_overrides(
        PretrainSettings(preset=args.preset, init=args.init),
        steps=args.steps, batch_size=args.batch_size, clones=args.clones, accumulate_steps=args.accumulate,
        lr=args.lr, warmup_steps=args.warmup, duration_s=args.duration_s, precision=args.precision,
        accelerator=args.accelerator, devices=devices, num_nodes=args.num_nodes, strategy=args.strategy,
        num_workers=args.num_workers, checkpoint_every=args.checkpoint_every, log_every=args.log_every,
        seed=args.seed, decoder_conv=args.decoder_conv, compile=args.compile,
    )

    def show(report) -> None:
        print(format_progress(report), flush=True)

    result = run_pretraining(args.data_roots, args.out, settings, resume=args.resume, progress=show,
                             stop_after=args.stop_after)
    if not is_global_zero():  # every rank ran the same training; one reports it
        return 0
    print(f"pre-trained on {result.clips} clips for {result.steps} updates ({result.wall_s:.1f} s); "
          f"DAP encoder: {result.encoder_path}; teacher: {result.teacher_path}; log: {result.log_path}")
    sys.stdout.flush()
    return 0
