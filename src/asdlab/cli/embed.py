"""`asdlab embed DATA_ROOT --backbone NAME --out FILE.npz`: embeddings of every clip (asdlab.pipeline.embed)."""

from __future__ import annotations

import argparse
import sys

from asdlab.cli._commands import COMMANDS, EAT_TARGET_FRAMES
from asdlab.cli._progress import ProgressPrinter

__all__ = ["register", "run"]


def _frames(text: str) -> int | None:
    """`1024` -> 1024; `all` -> None (every frame, padded to a multiple of 16)."""
    if text.strip().lower() == "all":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a frame count or 'all', got {text!r}") from None


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `embed` subcommand."""
    parser = subparsers.add_parser(
        "embed",
        help=COMMANDS["embed"],
        description="Embed every clip under DATA_ROOT with a backbone (front end + encoder + pooling) and "
        "write one embeddings table with clip metadata, plus FILE.json with the settings. Finished chunks are "
        "kept in FILE.npz.partial/ so an interrupted run continues where it stopped when rerun.",
    )
    parser.add_argument("data_root", metavar="DATA_ROOT", help="dataset root (any DCASE or MIMII layout)")
    parser.add_argument("--model", default=None, metavar="DIR",
                        help="a fine-tuned model folder (asdlab finetune); replaces --backbone and --weights")
    parser.add_argument("--backbone", default=None, metavar="NAME",
                        help="encoder preset: eat-tiny, eat-small, eat-base, eat-large, mobilenet-mn04, "
                             "two-branch-cnn, logmel-stats, clip-level, ...")
    parser.add_argument("--weights", default=None, metavar="PATH",
                        help="released EAT checkpoint, asdlab encoder .safetensors or mn04 .pt (default: random)")
    parser.add_argument("--pooling", choices=("cls", "mean", "both"), default=None,
                        help="EAT clip embedding (default cls); the MobileNet takes mean only")
    parser.add_argument("--out", required=True, metavar="FILE.npz", help="the embeddings table to write")
    parser.add_argument("--batch-size", type=int, default=16, help="clips per forward pass (default 16)")
    parser.add_argument("--device", default="auto", help="auto (the GPU when there is one), cpu, cuda or cuda:N")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                        help="auto = bf16 autocast on a GPU, fp32 on a CPU (the fbank is always fp32)")
    parser.add_argument("--num-workers", type=int, default=None, metavar="N",
                        help="threads decoding clips ahead of the model (default: 0 on a CPU; on a GPU one per "
                             "CPU core but one, at most 16)")
    parser.add_argument("--split", choices=("train", "test"), default=None, help="only this split (default both)")
    parser.add_argument("--machines", nargs="+", default=None, metavar="MACHINE",
                        help="only these machine types (default all)")
    parser.add_argument("--duration-s", type=float, default=None,
                        help="pad / crop every clip to this many seconds (default: each clip's own length)")
    parser.add_argument("--target-frames", type=_frames, default=EAT_TARGET_FRAMES, metavar="N|all",
                        help=f"EAT: pad / crop the fbank to N frames, or 'all' (default {EAT_TARGET_FRAMES})")
    parser.add_argument("--mask-padding", action="store_true",
                        help="EAT: ignore patches made only of padding in attention and mean pooling")
    parser.add_argument("--seed", type=int, default=0, help="initialisation seed without --weights (default 0)")
    parser.add_argument("--checkpoint-every", type=int, default=16, metavar="BATCHES",
                        help="write finished embeddings to the partial folder every this many batches (default 16)")
    parser.add_argument("--restart", action="store_true",
                        help="discard the partial results of an earlier run instead of continuing them")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Embed, then print the skipped clips and where the table went."""
    from asdlab.pipeline.embed import EmbedConfig, embed_dataset  # imports torch; only when used

    if (args.backbone is None) == (args.model is None):
        print("asdlab embed: give exactly one of --backbone NAME or --model DIR", file=sys.stderr)
        return 2
    config = EmbedConfig(
        backbone=args.backbone or "finetuned",
        model_dir=args.model,
        pooling=args.pooling,
        weights=args.weights,
        target_frames=args.target_frames,
        mask_padding=args.mask_padding,
        duration_s=args.duration_s,
        seed=args.seed,
    )
    result = embed_dataset(
        args.data_root,
        args.out,
        config,
        splits=None if args.split is None else (args.split,),
        machines=args.machines,
        batch_size=args.batch_size,
        device=args.device,
        chunk_batches=args.checkpoint_every,
        restart=args.restart,
        progress=ProgressPrinter("embedding clips"),
        num_workers=args.num_workers,
        precision=args.precision,
    )
    if result.resumed_clips:
        print(f"resumed: {result.resumed_clips} clips came from the interrupted run")
    if result.failures:  # each was logged once above with its reason; the sidecar lists them too
        print(f"skipped {len(result.failures)} clip(s) that could not be used (listed in {result.metadata_path})")
    settings = result.metadata["settings"]
    print(
        f"wrote {len(result.table)} embeddings ({settings['embed_dim']}-d, {settings['backbone']}, "
        f"pooling {settings['pooling']}) to {result.table_path}; settings in {result.metadata_path}"
    )
    return 0
