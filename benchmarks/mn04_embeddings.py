"""Which frozen mn04 embedding serves anomaly detection: layer x pooling, scored with kNN and density-kNN on
the synthetic set (seed 0, as `asdlab run --synthetic`) and on the MIMII fan folds (`_real_folds.py`, attributes hidden).

Every clip is level-normalised (as the recipes do), passed once through the AudioSet mn04, and each
layer's map pooled with `MobileNetV3.pool`: "mean" (the upstream global average) or "band-mean" (time
average per frequency band). Prints the official score Ω (%) per layer, pooling and backend (fan: mean
over folds, with the per-fold values).

    python benchmarks/mn04_embeddings.py [--layers 3 6 8 10 12 16] [--out result.md]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _real_folds import fold_root  # noqa: E402

N_FOLDS = 5

from asdlab.data.audio import load_audio  # noqa: E402
from asdlab.data.index import index_dataset  # noqa: E402
from asdlab.data.synth import generate_dataset  # noqa: E402
from asdlab.embeddings.table import EmbeddingTable  # noqa: E402
from asdlab.encoders.mobilenet import MN04_FILENAME, EfficientATInput, load_mn04_weights, mobilenet_mn04  # noqa: E402
from asdlab.features.level import normalize_rms  # noqa: E402
from asdlab.pipeline.scoring import ScoreSettings, score_embeddings  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
POOLINGS = ("mean", "band-mean")
BACKENDS = ("knn", "density-knn")


@torch.inference_mode()
def embed(root: Path, weights: Path, layers: list[int]) -> tuple[list, dict[tuple[int, str], np.ndarray]]:
    """{(layer, pooling): (N, D)} for every train and test clip of `root`, one forward pass per batch."""
    network = load_mn04_weights(weights)
    poolers = {layer: mobilenet_mn04(embed_layer=layer) for layer in layers}  # their `pool` knows the bands
    front = EfficientATInput(sample_rate=16000)
    records = index_dataset(root, splits=("train", "test"))
    out: dict[tuple[int, str], list[np.ndarray]] = {}
    for start in range(0, len(records), 16):
        batch = records[start: start + 16]
        waves = torch.stack([torch.from_numpy(load_audio(r.path, sample_rate=16000)) for r in batch])
        maps = network.feature_maps(front(normalize_rms(waves)))
        for layer in layers:
            for how in POOLINGS:
                out.setdefault((layer, how), []).append(poolers[layer].pool(maps[layer], how).numpy())
    return records, {key: np.concatenate(chunks) for key, chunks in out.items()}


def evaluate(root: Path, weights: Path, layers: list[int], scores_dir: Path) -> dict[tuple[int, str, str], float]:
    records, embeddings = embed(root, weights, layers)
    result = {}
    for (layer, how), X in embeddings.items():
        table = EmbeddingTable.from_records(records, X)
        for backend in BACKENDS:
            scored = score_embeddings(table, scores_dir / f"{layer}-{how}-{backend}", ScoreSettings(backend=backend),
                                      ground_truth=root, confidence_interval=False)
            result[(layer, how, backend)] = 100 * scored.summary.official_score
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", type=int, nargs="+", default=[3, 6, 8, 10, 12, 16])
    parser.add_argument("--folds", type=int, nargs="+", default=list(range(N_FOLDS)))
    parser.add_argument("--shared", default=str(REPO.parent / "shared"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=None, help="also write the table (markdown) here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    weights = Path(args.shared) / "models" / "efficientat-mn04" / MN04_FILENAME
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        synth = work / "synthetic"
        generate_dataset(synth, machines=4, train_source=60, train_target=6, test_per_group=20, duration_s=2.0,
                         hide_attributes=2, seed=0)
        synthetic = evaluate(synth, weights, args.layers, work / "scores-synthetic")
        folds = [evaluate(fold_root(work / f"fan{f}", f), weights, args.layers,
                          work / f"scores-fan{f}") for f in args.folds]
    lines = ["| layer | channels x bands | pooling | backend | synthetic Ω | fan Ω (mean) | fan Ω per fold |",
             "|---|---|---|---|---|---|---|"]
    for key in synthetic:
        layer, how, backend = key
        model = mobilenet_mn04(embed_layer=layer)
        size = f"{model.embed_dim} x {model.embed_bands}" if how == "band-mean" else f"{model.embed_dim}"
        per_fold = [f[key] for f in folds]
        lines.append(f"| {layer} | {size} | {how} | {backend} | {synthetic[key]:.2f} | {np.mean(per_fold):.2f} | "
                     + " ".join(f"{v:.1f}" for v in per_fold) + " |")
    header = (f"Frozen mn04 embeddings, official score Ω (%); synthetic seed 0 (4 machines, 2 hidden), fan folds "
              f"{args.folds}; {time.perf_counter() - started:.0f} s on {args.threads} threads")
    text = header + "\n\n" + "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
