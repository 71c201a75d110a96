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

import numpy as np
import torch

from asdlab.data.index import index_dataset
from asdlab.data.synth import generate_dataset, generator_fingerprint
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
    parser.add_argument("--eat-steps", type=int, default=600)
    parser.add_argument("--eat-lr", type=float, default=5e-4)
    parser.add_argument("--eat-mode", default="full")
    parser.add_argument("--eat-head", default="sc-adacos", help="arcface (paper, needs a pre-trained start), adacos, sc-adacos")
    parser.add_argument("--eat-pooling", default="mean")
    parser.add_argument("--tb-preset", default="two-branch-cnn")
    parser.add_argument("--tb-steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="initialisation seeds of the (a) rows")
    parser.add_argument("--only", choices=("a-tb", "a-eat", "b"), nargs="*", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    work = Path(args.work or tempfile.mkdtemp(prefix="ft_bench_"))
    only = set(args.only or ("a-tb", "a-eat", "b"))
    root = work / f"synth-{generator_fingerprint()}"  # per generator version
    if not (root / "synth_clips.csv").exists():
        generate_dataset(root, machines=4, seed=0)
    cache = str(work / "cache")

    rows = []
    for seed in args.seeds:
        if "a-tb" in only:
            base = build_backbone(args.tb_preset, seed=seed)
            untrained, _ = score(base, root, work / f"tb_untrained_{seed}")
            settings = FinetuneSettings(recipe="two-branch-cnn", preset=args.tb_preset, steps=args.tb_steps,
                                        batch_size=args.batch_size, cache_dir=cache, log_every=10, seed=seed)
            start = time.perf_counter()
            result = run_finetuning(root, work / f"tb_model_{seed}", settings)
            wall = time.perf_counter() - start
            tuned, _ = score(load_finetuned_backbone(result.model_dir), root, work / f"tb_tuned_{seed}")
            rows.append((args.tb_preset, "random init", seed, untrained, tuned, args.tb_steps, wall))
        if "a-eat" in only:
            frames = 208  # 2 s clips: 198 Kaldi frames, padded to a multiple of 16
            base = build_backbone(args.eat_preset, weights=args.dap, pooling=args.eat_pooling, target_frames=frames,
                                  seed=seed, level="rms")
            untrained, _ = score(base, root, work / f"eat_untrained_{seed}")
            settings = FinetuneSettings(recipe="eat", preset=args.eat_preset, mode=args.eat_mode, steps=args.eat_steps,
                                        batch_size=args.batch_size, lr=args.eat_lr, head=args.eat_head,
                                        pooling=args.eat_pooling, warmup_steps=max(args.eat_steps // 20, 1),
                                        cache_dir=cache, log_every=10, seed=seed)
            start = time.perf_counter()
            result = run_finetuning(root, work / f"eat_model_{seed}", settings, init_weights=args.dap)
            wall = time.perf_counter() - start
            tuned, _ = score(load_finetuned_backbone(result.model_dir), root, work / f"eat_tuned_{seed}")
            source = "DAP " + Path(args.dap).name if args.dap else "random init"
            rows.append((f"{args.eat_preset} ({args.eat_mode}, {args.eat_head})", source, seed, untrained, tuned,
                         args.eat_steps, wall))
    if rows:
        print(f"\n(a) official score (kNN, %), synthetic set machines=4 seed=0, {torch.get_num_threads()} threads")
        print(f"{'backbone':32s} {'start':18s} {'seed':>4s} {'untrained':>9s} {'fine-tuned':>10s} {'steps':>6s} {'train s':>8s}")
        for name, source, seed, untrained, tuned, steps, wall in rows:
            print(f"{name:32s} {source[:18]:18s} {seed:4d} {100 * untrained:9.2f} {100 * tuned:10.2f} {steps:6d} {wall:8.1f}")
        for name in dict.fromkeys(r[0] for r in rows):
            mine = [r for r in rows if r[0] == name]
            if len(mine) > 1:
                u, t = np.array([r[3] for r in mine]) * 100, np.array([r[4] for r in mine]) * 100
                print(f"{name:32s} mean ± std over {len(mine)} seeds: untrained {u.mean():.2f} ± {u.std(ddof=1):.2f}, "
                      f"fine-tuned {t.mean():.2f} ± {t.std(ddof=1):.2f}, gain {np.mean(t - u):+.2f}")

    if "b" in only:
        hidden_root = work / f"synth_hidden-{generator_fingerprint()}"
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
