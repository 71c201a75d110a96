"""`asdlab finetune DATA_ROOT --out DIR`: machine-attribute fine-tuning into a model folder (asdlab.pipeline.finetune)."""

from __future__ import annotations

import argparse
import sys

from asdlab.cli._commands import COMMANDS

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `finetune` subcommand."""
    parser = subparsers.add_parser(
        "finetune",
        help=COMMANDS["finetune"],
        description="Train a classifier of (machine, section, attribute) classes on the training clips under "
        "DATA_ROOT and write a model folder (model.json, weights, train_log.csv, last.ckpt) that `asdlab embed "
        "--model DIR` and the scoring stage use. Recipes: two-branch-cnn (from scratch, sub-cluster AdaCos, "
        "mixup/StatEx/FeatEx; the CPU default) and eat (the paper's: ArcFace, 20k steps, batch 32, lr 5e-5; any "
        "transformer preset: eat-*, sslam-base, beats-*).",
    )
    parser.add_argument("data_root", metavar="DATA_ROOT", help="dataset root (any DCASE layout)")
    parser.add_argument("--out", required=True, metavar="DIR", help="the model folder to write")
    parser.add_argument("--recipe", choices=("two-branch-cnn", "eat", "mobilenet"), default="two-branch-cnn",
                        help="training recipe (default two-branch-cnn)")
    parser.add_argument("--preset", default=None,
                        help="encoder preset (default: eat-base / two-branch-cnn / mobilenet-mn04 by recipe)")
    parser.add_argument("--init", default=None, metavar="FILE",
                        help="encoder to start from: transformers: DAP encoder.safetensors or a released EAT / "
                        "SSLAM / BEATs checkpoint; mobilenet: 'pretrained' (the AudioSet mn04, found offline) or its file")
    parser.add_argument("--pseudo-attributes", default=None, metavar="CSV",
                        help="pseudo_attributes.csv for clips named noAttribute (asdlab pseudo-label)")
    parser.add_argument("--mode", choices=("full", "lora", "probe"), default="full",
                        help="EAT: full fine-tuning, LoRA adapters, or frozen-encoder probe (default full)")
    parser.add_argument("--pooling", choices=("cls", "mean", "asp", "band-mean"), default=None,
                        help="EAT: cls (default), mean, asp; mobilenet: band-mean (default), mean")
    parser.add_argument("--embed-layer", type=int, default=None, help="mobilenet: feature layer embedded (default 10)")
    parser.add_argument("--crop-s", type=float, default=None, help="mobilenet: train on random crops this long")
    parser.add_argument("--head", choices=("arcface", "adacos", "sc-adacos"), default=None,
                        help="EAT head (default arcface)")
    parser.add_argument("--labels", choices=("attribute", "section", "machine"), default="attribute",
                        help="classes: per attribute (default), per section (the 'N/A' baseline), per machine")
    parser.add_argument("--use-domain", action="store_true", help="separate source and target classes")
    parser.add_argument("--steps", type=int, default=None, help="optimiser updates (default: the recipe's)")
    parser.add_argument("--epochs", type=float, default=None,
                        help="scale the updates with the data: ceil(EPOCHS x clips / batch), at most --steps")
    parser.add_argument("--batch-size", type=int, default=None, help="clips per device and update")
    parser.add_argument("--lr", type=float, default=None, help="peak learning rate")
    parser.add_argument("--warmup", type=int, default=None, help="linear warm-up updates")
    parser.add_argument("--target-frames", type=int, default=None, help="EAT input frames (default: the clip's)")
    parser.add_argument("--precision", default="auto",
                        help="auto (bf16-mixed on a GPU, 32-true on a CPU), 32-true, bf16-mixed, 16-mixed")
    parser.add_argument("--accelerator", default="auto", help="cpu, cuda, auto (default auto)")
    parser.add_argument("--devices", default="1", help="devices per node (an int or 'auto')")
    parser.add_argument("--num-nodes", type=int, default=1, help="nodes (torchrun / SLURM; default 1)")
    parser.add_argument("--strategy", default="auto", help="Fabric strategy, e.g. ddp (default auto)")
    parser.add_argument("--accumulate", type=int, default=1, metavar="K", help="micro-batches per update (default 1)")
    parser.add_argument("--compile", action="store_true", help="EAT: torch.compile the encoder (same model; faster on a GPU)")
    parser.add_argument("--drop-path", type=float, default=None,
                        help="EAT stochastic depth of the last block (default 0.1, EAT's fine-tuning)")
    parser.add_argument("--num-workers", type=int, default=0, help="DataLoader workers (default 0)")
    parser.add_argument("--cache-dir", default=None, help="memory-mapped waveform cache folder (default: in memory)")
    parser.add_argument("--checkpoint-every", type=int, default=500, help="updates between checkpoints")
    parser.add_argument("--log-every", type=int, default=10, help="updates between log rows")
    parser.add_argument("--resume", action="store_true",
                        help="continue from DIR/last.ckpt (same settings; hardware and logging may change)")
    parser.add_argument("--seed", type=int, default=0, help="data order, augmentation and initialisation seed")
    parser.add_argument("--stop-after", type=int, default=None, metavar="N",
                        help="stop after N updates of this call, with a checkpoint, to continue with --resume")
    parser.set_defaults(func=run)


def _progress(report) -> None:
    loss = report.logs.get("loss", float("nan"))
    sys.stderr.write(f"\rstep {report.step}/{report.max_steps}  loss {loss:.4f}  lr {report.lr:.2e}  "
                     f"{report.clips_per_s:.1f} clips/s  ETA {report.eta_s:.0f} s   ")
    if report.step == report.max_steps:
        sys.stderr.write("\n")
    sys.stderr.flush()


def run(args: argparse.Namespace) -> int:
    """Fine-tune, then print where the model went."""
    from asdlab.pipeline.finetune import FinetuneSettings, run_finetuning  # imports torch; only when used
    from asdlab.training.loop import is_global_zero

    devices = args.devices if args.devices == "auto" else int(args.devices)
    settings = FinetuneSettings(
        recipe=args.recipe, preset=args.preset, mode=args.mode, pooling=args.pooling, head=args.head,
        embed_layer=args.embed_layer, crop_s=args.crop_s, granularity=args.labels, use_domain=args.use_domain,
        steps=args.steps, epochs=args.epochs, batch_size=args.batch_size,
        lr=args.lr, warmup_steps=args.warmup, target_frames=args.target_frames, precision=args.precision,
        accelerator=args.accelerator, devices=devices, num_nodes=args.num_nodes, strategy=args.strategy,
        accumulate_steps=args.accumulate, num_workers=args.num_workers, cache_dir=args.cache_dir,
        checkpoint_every=args.checkpoint_every, log_every=args.log_every, seed=args.seed, compile=args.compile,
        **({} if args.drop_path is None else {"drop_path": args.drop_path}),
    )
    result = run_finetuning(args.data_root, args.out, settings, init_weights=args.init,
                            pseudo_attributes=args.pseudo_attributes, resume=args.resume, progress=_progress,
                            stop_after=args.stop_after)
    if not is_global_zero():  # every rank ran the same training; one reports it
        return 0
    print(f"fine-tuned {result.steps} steps on {result.num_classes} classes in {result.wall_s:.1f} s; "
          f"model in {result.model_dir} (log {result.log_path})")
    return 0
