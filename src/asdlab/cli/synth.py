"""`asdlab synth OUT`: write the synthetic DCASE-layout dataset (asdlab.data.synth)."""

from __future__ import annotations

import argparse

from asdlab.cli._commands import COMMANDS, MACHINE_NAMES

__all__ = ["register", "run"]


def _count_or_names(text: str) -> int | tuple[str, ...]:
    """`4` -> 4; `SynFan,SynGear` -> ("SynFan", "SynGear")."""
    text = text.strip()
    if text.isdigit():
        return int(text)
    return tuple(name.strip() for name in text.split(",") if name.strip())


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `synth` subcommand."""
    parser = subparsers.add_parser(
        "synth",
        help=COMMANDS["synth"],
        description="Write seeded synthetic machine sounds as OUT/dev_data/raw/<Machine>/{train,test}/*.wav "
        "(DCASE 2023-2025 names), with attributes_00.csv per machine.",
    )
    parser.add_argument("out", metavar="OUT", help="output folder (empty or absent, unless --overwrite)")
    parser.add_argument(
        "--machines",
        type=_count_or_names,
        default=4,
        help=f"how many machine types (the first N) or comma-separated names of {', '.join(MACHINE_NAMES)} (default 4)",
    )
    parser.add_argument("--train-source", type=int, default=120, help="source-domain training clips per machine")
    parser.add_argument("--train-target", type=int, default=6, help="target-domain training clips per machine")
    parser.add_argument("--test-per-group", type=int, default=20, help="test clips per machine, domain and label")
    parser.add_argument("--duration-s", type=float, default=2.0, help="clip length in seconds (at most 12)")
    parser.add_argument(
        "--hide-attributes",
        type=_count_or_names,
        default=0,
        help="machines named with noAttribute: a count (the last N chosen) or comma-separated names",
    )
    parser.add_argument("--anomaly-level", type=float, default=1.0, help="fault strength (1 = default difficulty)")
    parser.add_argument("--seed", type=int, default=0, help="dataset seed (same seed, same bytes)")
    parser.add_argument("--overwrite", action="store_true", help="replace a dataset written earlier to OUT")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Generate the dataset and print clip counts per machine."""
    from asdlab.data.synth import generate_dataset

    def report(machine: str, done: int, total: int) -> None:
        print(f"[{done}/{total}] {machine}", flush=True)

    summary = generate_dataset(
        args.out,
        machines=args.machines,
        train_source=args.train_source,
        train_target=args.train_target,
        test_per_group=args.test_per_group,
        duration_s=args.duration_s,
        hide_attributes=args.hide_attributes,
        anomaly_level=args.anomaly_level,
        seed=args.seed,
        overwrite=args.overwrite,
        progress=report,
    )
    print(f"{'machine':<14} {'train src/tgt':>13} {'test src n/a':>12} {'test tgt n/a':>12}  attributes")
    for machine, counts in summary.counts.items():
        train = f"{counts['train/source/normal']}/{counts['train/target/normal']}"
        test_source = f"{counts['test/source/normal']}/{counts['test/source/anomaly']}"
        test_target = f"{counts['test/target/normal']}/{counts['test/target/anomaly']}"
        shown = "hidden" if machine in summary.config.hidden else "shown"
        print(f"{machine:<14} {train:>13} {test_source:>12} {test_target:>12}  {shown}")
    print(f"wrote {summary.n_clips} clips to {summary.raw_dir} in {summary.elapsed_s:.1f} s")
    return 0
