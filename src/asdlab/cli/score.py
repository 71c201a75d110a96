"""`asdlab score EMBEDDINGS.npz`: backend scores -> DCASE score/decision files (+ the official metric)."""

from __future__ import annotations

import argparse
from pathlib import Path

from asdlab.backends.registry import available_backends
from asdlab.pipeline.scoring import ScoreSettings, parse_params, score_embeddings

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `score` subcommand."""
    parser = subparsers.add_parser(
        "score",
        help="score an embeddings file with a backend: DCASE score and decision files, evaluated if labelled",
        description=(
            "Fit the backend per machine on the training rows of an embeddings file (from `asdlab embed`), "
            "score the test rows and write anomaly_score_*/decision_result_* (DCASE format), the out-of-fold "
            "train_scores_* (thresholds, ensembles) and settings.json to --out. With --ground-truth, or when "
            "every test row carries a label and a domain (copied to OUT/ground_truth/), the official metric is "
            "printed and written to OUT/evaluation.csv. Scoring a trained model on a dataset root "
            "(`asdlab score MODEL DATA_ROOT`) is not available yet; it comes with a later release."
        ),
    )
    parser.add_argument("embeddings", type=Path, metavar="EMBEDDINGS", help="embeddings file (.npz) with train and test rows")
    parser.add_argument("--out", type=Path, required=True, metavar="SCORES_DIR", help="folder for the score files")
    parser.add_argument("--backend", default="knn", choices=available_backends(), metavar="NAME",
                        help=f"backend: {', '.join(available_backends())} (default: knn, k=1 cosine per domain)")
    parser.add_argument("--set", dest="params", action="append", default=[], metavar="KEY=VALUE",
                        help="backend parameter, repeatable (e.g. --set n_neighbors=3 --set metric=euclidean)")
    parser.add_argument("--normalize", choices=("none", "zscore", "rank"), default="none",
                        help="per-machine score normalisation fitted on out-of-fold training scores (default: none)")
    parser.add_argument("--threshold", choices=("gamma", "percentile"), default="gamma",
                        help="decision threshold: 90th percentile of a Gamma fit (the DCASE baseline) or of the "
                             "training scores, on the scale of the written scores (default: gamma)")
    parser.add_argument("--ground-truth", type=Path, default=None, metavar="PATH",
                        help="dataset root or evaluator folder (default: the embeddings' own labels, if any)")
    parser.add_argument("--folds", type=int, default=5, help="folds of the out-of-fold training scores (default 5)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the fold assignment")
    parser.add_argument("--no-ci", action="store_true", help="skip the jackknife confidence interval")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = ScoreSettings(
        backend=args.backend, params=parse_params(args.params), normalization=args.normalize,
        threshold=args.threshold, n_folds=args.folds, seed=args.seed,
    )
    result = score_embeddings(args.embeddings, args.out, settings, ground_truth=args.ground_truth,
                              confidence_interval=not args.no_ci)
    params = ", ".join(f"{k}={v}" for k, v in settings.params.items()) or "defaults"
    print(f"{settings.backend} ({params}), normalisation {settings.normalization}, threshold {settings.threshold}: "
          f"{len(result.machines)} machine(s) scored -> {result.out_dir}")
    if result.summary is None:
        print("not evaluated: no ground truth (pass --ground-truth)")
        return 0
    print(f"ground truth: {result.ground_truth}")
    print(result.summary.format_table(), end="")
    print(f"table -> {result.out_dir / 'evaluation.csv'}")
    return 0
