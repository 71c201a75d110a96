"""`asdlab score`: DCASE score/decision files (+ the official metric) from a detector or an embeddings file.

`asdlab score MODEL_DIR DATA_ROOT --out DIR` scores every test clip with a detector from `asdlab fit`;
`asdlab score EMBEDDINGS.npz --out DIR` fits a backend on an embeddings file's train rows.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from asdlab.backends.registry import available_backends
from asdlab.cli._progress import ProgressPrinter
from asdlab.detector import DETECTOR_FILE, load_detector
from asdlab.errors import ConfigError
from asdlab.pipeline.scoring import ScoreSettings, parse_params, score_embeddings

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `score` subcommand."""
    parser = subparsers.add_parser(
        "score",
        help="score test clips with a detector (MODEL_DIR DATA_ROOT) or an embeddings file: DCASE files",
        description=(
            "With MODEL_DIR DATA_ROOT: embed every test/ clip under DATA_ROOT with the detector from "
            "`asdlab fit` and write anomaly_score_*/decision_result_* to --out (evaluated when the file names "
            "carry labels). With EMBEDDINGS.npz: fit the backend per machine on the training rows of an embeddings file (from `asdlab embed`), "
            "score the test rows and write anomaly_score_*/decision_result_* (DCASE format), the out-of-fold "
            "train_scores_* (thresholds, ensembles) and settings.json to --out. With --ground-truth, or when "
            "every test row carries a label and a domain (copied to OUT/ground_truth/), the official metric is "
            "printed and written to OUT/evaluation.csv."
        ),
    )
    parser.add_argument("target", type=Path, metavar="MODEL_DIR|EMBEDDINGS",
                        help="a detector folder (asdlab fit) or an embeddings file (.npz) with train and test rows")
    parser.add_argument("data_root", type=Path, nargs="?", default=None, metavar="DATA_ROOT",
                        help="with a detector: the dataset root whose test/ clips are scored")
    parser.add_argument("--out", type=Path, required=True, metavar="SCORES_DIR", help="folder for the score files")
    parser.add_argument("--backend", default=None, choices=available_backends(), metavar="NAME",
                        help=f"backend: {', '.join(available_backends())} (default: knn, k=1 cosine per domain; "
                             "a detector's own backend for MODEL_DIR)")
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


def _score_with_detector(args: argparse.Namespace) -> int:
    if args.data_root is None:
        raise ConfigError(f"{args.target} is a detector folder: give the DATA_ROOT whose test clips to score")
    detector = load_detector(args.target)
    scoring = None
    if args.backend is not None or args.params:  # re-score the detector's embeddings with another backend
        scoring = replace(detector.scoring, backend=args.backend or detector.scoring.backend,
                          params=parse_params(args.params))
    result = detector.score(args.data_root, args.out, progress=ProgressPrinter("embedding test clips"),
                            scoring=scoring)
    backend = (scoring or detector.scoring).backend
    print(f"{detector.recipe} ({backend}): {len(result.machines)} machine/section(s) scored -> {result.out_dir}")
    if result.summary is not None:
        print(result.summary.format_table(), end="")
    return 0


def run(args: argparse.Namespace) -> int:
    if (args.target / DETECTOR_FILE).is_file():
        return _score_with_detector(args)
    if args.data_root is not None:
        raise ConfigError(f"{args.target}: not a detector folder (no {DETECTOR_FILE}); DATA_ROOT is only for detectors")
    settings = ScoreSettings(
        backend=args.backend or "knn", params=parse_params(args.params), normalization=args.normalize,
        threshold=args.threshold, n_folds=args.folds, seed=args.seed,
    )
    result = score_embeddings(args.target, args.out, settings, ground_truth=args.ground_truth,
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
