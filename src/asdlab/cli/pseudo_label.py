"""`asdlab pseudo-label DATA_ROOT --out DIR`: Ward-clustered pseudo-attributes (asdlab.pipeline.pseudo_label)."""

from __future__ import annotations

import argparse
import sys

from asdlab.cli._commands import AUTO_RULES, COMMANDS, EAT_TARGET_FRAMES, NORMALIZATIONS
from asdlab.cli._progress import ProgressPrinter

__all__ = ["register", "run"]


def _clusters(text: str) -> int | None:
    """`auto` -> None; `4` -> 4."""
    if text.strip().lower() == "auto":
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a cluster count, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"cluster count must be >= 1, got {value}")
    return value


def _frames(text: str) -> int | None:
    if text.strip().lower() == "all":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a frame count or 'all', got {text!r}") from None


def _hidden(text: str) -> tuple[str, ...] | str:
    """`all` -> "all"; `fan,valve` -> ("fan", "valve")."""
    if text.strip().lower() == "all":
        return "all"
    return tuple(name.strip() for name in text.split(",") if name.strip())


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `pseudo-label` subcommand."""
    parser = subparsers.add_parser(
        "pseudo-label",
        help=COMMANDS["pseudo_label"],
        description="Embed the training clips of every machine type without attributes (noAttribute, or hidden "
        "with --hide-attributes), cluster each section with Ward linkage and write DIR/pseudo_attributes.csv, "
        "DIR/attributes/<Machine>/attributes_<section>.csv, DIR/clustering.json (rule, K, and ARI/NMI against "
        "the truth where it is known), dendrogram_*.npz and map_*.png.",
    )
    parser.add_argument("data_root", metavar="DATA_ROOT", help="dataset root (any DCASE layout)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument("--backbone", default="eat-base", metavar="NAME",
                        help="encoder preset (default eat-base, as the paper); eat-tiny, mobilenet-mn04, "
                             "logmel-stats, ...")
    parser.add_argument("--weights", default=None, metavar="FILE",
                        help="encoder weights: DAP / fine-tuned asdlab file, EAT checkpoint, mn04 .pt "
                             "(default: random)")
    parser.add_argument("--pooling", choices=("cls", "mean", "both"), default="mean",
                        help="EAT clip embedding (default mean of patch tokens, paper eq. 8)")
    parser.add_argument("--normalize", choices=NORMALIZATIONS, default="none",
                        help="preprocess embeddings before clustering (default none)")
    parser.add_argument("--clusters", type=_clusters, default=None, metavar="auto|K",
                        help="a fixed number of clusters, or auto (default) to choose with --rule")
    parser.add_argument("--rule", choices=AUTO_RULES, default="elbow",
                        help="automatic cluster-count rule (default elbow of the within-cluster sum of squares)")
    parser.add_argument("--threshold", type=float, default=None, metavar="X",
                        help="cut the Ward tree at this merge height instead (overrides --clusters)")
    parser.add_argument("--k-min", type=int, default=2, help="automatic rules: fewest clusters (default 2)")
    parser.add_argument("--k-max", type=int, default=16, help="automatic rules: most clusters (default 16)")
    parser.add_argument("--min-cluster-size", type=int, default=5, metavar="N",
                        help="merge smaller clusters into their nearest neighbour (default 5)")
    parser.add_argument("--target-min-cluster-size", type=int, default=2, metavar="N",
                        help="the same for non-source domains when clustered per domain (default 2)")
    parser.add_argument("--domains", choices=("separate", "together"), default="separate",
                        help="cluster each domain's clips on its own (default: DCASE target attributes never "
                             "occur in the source domain) or all clips together")
    parser.add_argument("--hide-attributes", type=_hidden, default=(), metavar="all|MACHINE,...",
                        help="also cluster these machine types, using their attributes only as truth")
    parser.add_argument("--splits", nargs="+", choices=("train", "test"), default=["train"],
                        help="clips to cluster (default train)")
    parser.add_argument("--machines", nargs="+", default=None, metavar="MACHINE", help="only these machine types")
    parser.add_argument("--map", choices=("tsne", "pca", "none"), default="tsne",
                        help="2-D map drawn per machine and section (default tsne)")
    parser.add_argument("--target-frames", type=_frames, default=EAT_TARGET_FRAMES, metavar="N|all",
                        help=f"EAT: pad / crop the fbank to N frames, or 'all' (default {EAT_TARGET_FRAMES})")
    parser.add_argument("--duration-s", type=float, default=None, help="pad / crop clips to this many seconds")
    parser.add_argument("--batch-size", type=int, default=16, help="clips per forward pass (default 16)")
    parser.add_argument("--device", default="auto", help="auto (the GPU when there is one), cpu, cuda or cuda:N")
    parser.add_argument("--seed", type=int, default=0, help="random initialisation, gap rule and t-SNE seed")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Cluster, then print one line per machine and section."""
    from asdlab.pipeline.pseudo_label import PseudoLabelSettings, run_pseudo_labeling  # imports torch

    if args.threshold is not None:
        rule = "threshold"
    elif args.clusters is not None:
        rule = "fixed"
    else:
        rule = args.rule
    settings = PseudoLabelSettings(
        backbone=args.backbone, weights=args.weights, pooling=args.pooling, target_frames=args.target_frames,
        duration_s=args.duration_s, normalization=args.normalize, rule=rule, n_clusters=args.clusters,
        distance_threshold=args.threshold, k_min=args.k_min, k_max=args.k_max,
        min_cluster_size=args.min_cluster_size, target_min_cluster_size=args.target_min_cluster_size,
        per_domain=args.domains == "separate", hide_attributes=args.hide_attributes, splits=tuple(args.splits),
        map_method=None if args.map == "none" else args.map, seed=args.seed, batch_size=args.batch_size,
    )
    result = run_pseudo_labeling(args.data_root, args.out, settings, machines=args.machines, device=args.device,
                                 progress=ProgressPrinter("embedding clips", stream=sys.stderr))
    if result.failures:
        print(f"skipped {len(result.failures)} clip(s):")
        for failure in result.failures:
            print(f"  {failure.path}: {failure.problem}")
    for group in result.groups:
        line = (f"{group.machine} section {group.section}: {group.n_clips} clips -> {group.n_clusters} "
                f"pseudo-attributes (rule {group.choice.rule}: K={group.choice.k})")
        if group.domain_clusters:
            line += " [" + ", ".join(f"{d or 'no domain'}: {n} clips -> {k}" for d, n, _, k in group.domain_clusters) + "]"
        if group.agreement is not None:
            a = group.agreement
            line += f"; true K={group.true_k}, ARI {a.ari:.3f}, NMI {a.nmi:.3f}"
        if group.choice.note:
            line += f" [{group.choice.note}]"
        print(line)
    print(f"wrote {len(result.rows)} pseudo-attributes to {result.csv_path}; details in {result.clustering_path}")
    return 0
