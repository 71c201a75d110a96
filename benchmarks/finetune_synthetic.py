"""Fine-tuned vs untrained backbones on the synthetic DCASE set, and pseudo-attributes vs one class per machine.

Prints (a) the official score (kNN backend) of the two-branch CNN and of an EAT preset, each untrained
(same architecture) and fine-tuned, with the training wall time on this machine; (b) on a copy with
hidden attributes, fine-tuning with pseudo-attributes vs one class per attribute-less machine section
(the paper's Table 1 "N/A" row), overall and on the attribute-less machines only.

    python benchmarks/finetune_synthetic.py [--dap encoder.safetensors] [--pseudo pseudo_attributes.csv]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from asdlab.data.index import index_dataset
from asdlab.data.synth import generate_dataset
from asdlab.embeddings.extract import extract_embeddings
from asdlab.encoders.backbone import build_backbone
from asdlab.pipeline.finetune import FinetuneSettings, load_finetuned_backbone, run_finetuning
from asdlab.pipeline.scoring import ScoreSettings, score_embeddings


def score(backbone, root: Path, out: Path, machines=None) -> tuple[float, dict[str, float]]:
    """Official score of a backbone (kNN), and per-machine official scores."""
    records = index_dataset(root)
    table = extract_embeddings(records, backbone, batch_size=32).table
    result = score_embeddings(table, out, ScoreSettings(backend="knn"), ground_truth=root, confidence_interval=False)
    per_machine = {row.machine: row.score for row in result.summary.rows}
    return result.summary.official_score, per_machine


def hmean(values) -> float:
    values = list(values)
    return len(values) / sum(1.0 / max(v, 1e-9) for v in values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--work", default=None, help="working folder (default: a temporary one)")
    parser.add_argument("--dap", default=None, help="DAP encoder.safetensors for the EAT rows (default: random init)")
    parser.add_argument("--pseudo", default=None, help="pseudo_attributes.csv for the hidden-attribute set")
    parser.add_argument("--eat-preset", default="eat-tiny")
    parser.add_argument("--eat-steps", type=int, default=60)
    parser.add_argument("--eat-lr", type=float, default=5e-4)
    parser.add_argument("--eat-mode", default="full")
    parser.add_argument("--tb-preset", default="two-branch-cnn")
    parser.add_argument("--tb-steps", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", choices=("a-tb", "a-eat", "b"), nargs="*", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    work = Path(args.work or tempfile.mkdtemp(prefix="ft_bench_"))
    only = set(args.only or ("a-tb", "a-eat", "b"))
    root = work / "synth"
    if not (root / "synth_clips.csv").exists():
        generate_dataset(root, machines=4, seed=0)
    cache = str(work / "cache")

    rows = []
    if "a-tb" in only:
        base = build_backbone(args.tb_preset, seed=0)
        untrained, _ = score(base, root, work / "tb_untrained")
        settings = FinetuneSettings(recipe="two-branch-cnn", preset=args.tb_preset, steps=args.tb_steps,
                                    batch_size=args.batch_size, cache_dir=cache, log_every=10)
        run_finetuning(root, work / "tb_model_warm", FinetuneSettings(**{**settings.__dict__, "steps": 1}))
        start = time.perf_counter()
        result = run_finetuning(root, work / "tb_model", settings)
        wall = time.perf_counter() - start
        tuned, _ = score(load_finetuned_backbone(result.model_dir), root, work / "tb_tuned")
        rows.append((args.tb_preset, "random init", untrained, tuned, args.tb_steps, wall))
    if "a-eat" in only:
        frames = 208  # 2 s clips: 198 Kaldi frames, padded to a multiple of 16
        base = build_backbone(args.eat_preset, weights=args.dap, pooling="mean", target_frames=frames, seed=0)
        untrained, _ = score(base, root, work / "eat_untrained")
        settings = FinetuneSettings(recipe="eat", preset=args.eat_preset, mode=args.eat_mode, steps=args.eat_steps,
                                    batch_size=args.batch_size, lr=args.eat_lr, warmup_steps=max(args.eat_steps // 10, 1),
                                    cache_dir=cache, log_every=10)
        start = time.perf_counter()
        result = run_finetuning(root, work / "eat_model", settings, init_weights=args.dap)
        wall = time.perf_counter() - start
        tuned, _ = score(load_finetuned_backbone(result.model_dir), root, work / "eat_tuned")
        source = "DAP " + args.dap if args.dap else "random init"
        rows.append((f"{args.eat_preset} ({args.eat_mode})", source, untrained, tuned, args.eat_steps, wall))
    if rows:
        print("\n(a) official score (kNN, %), synthetic set machines=4 seed=0")
        print(f"{'backbone':28s} {'start':22s} {'untrained':>9s} {'fine-tuned':>10s} {'steps':>6s} {'train s':>8s}")
        for name, source, untrained, tuned, steps, wall in rows:
            print(f"{name:28s} {source[:22]:22s} {100 * untrained:9.2f} {100 * tuned:10.2f} {steps:6d} {wall:8.1f}")

    if "b" in only:
        hidden_root = work / "synth_hidden"
        if not (hidden_root / "synth_clips.csv").exists():
            generate_dataset(hidden_root, machines=4, seed=0, hide_attributes=2)
        hidden = sorted({r.machine for r in index_dataset(hidden_root, splits=("train",)) if not r.has_attributes})
        pseudo = args.pseudo
        if pseudo is None:
            from asdlab.pipeline.pseudo_label import PseudoLabelSettings, run_pseudo_labeling

            labelled = run_pseudo_labeling(hidden_root, work / "pseudo", PseudoLabelSettings(
                backbone=args.eat_preset if args.dap else "logmel-stats", weights=args.dap, map_method=None,
                target_frames=208))
            pseudo = labelled.csv_path
        print(f"\n(b) hidden attributes on {', '.join(hidden)}; pseudo-attributes from {pseudo}")
        print(f"{'labels':34s} {'all %':>7s} {'NoAttr %':>9s} {'train s':>8s}")
        for name, csv in (("one class per machine section (N/A)", None), ("pseudo-attributes", pseudo)):
            settings = FinetuneSettings(recipe="two-branch-cnn", preset=args.tb_preset, steps=args.tb_steps,
                                        batch_size=args.batch_size, cache_dir=cache, log_every=10)
            folder = work / ("b_na" if csv is None else "b_pseudo")
            start = time.perf_counter()
            result = run_finetuning(hidden_root, folder, settings, pseudo_attributes=csv)
            wall = time.perf_counter() - start
            overall, per_machine = score(load_finetuned_backbone(result.model_dir), hidden_root, folder / "scores")
            noattr = hmean(per_machine[m] for m in hidden)
            print(f"{name:34s} {100 * overall:7.2f} {100 * noattr:9.2f} {wall:8.1f}  ({result.num_classes} classes)")


if __name__ == "__main__":
    main()
