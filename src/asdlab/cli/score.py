"""`asdlab score`: DCASE score/decision files (+ the official metric) from a detector or an embeddings file.

`asdlab score MODEL_DIR DATA_ROOT --out DIR` scores every test clip with a detector from `asdlab fit`
(a folder or an `.asdlab` file from `asdlab export`); `asdlab score EMBEDDINGS.npz --out DIR` fits a
backend on an embeddings file's train rows. Clips that cannot be used are reported once and skipped:
the exit status is 0 when anything was scored, 2 when nothing could be (or on any other error).
"""

from __future__ import annotations

import argparse
import zipfile
from pathlib import Path

from asdlab.cli._commands import BACKENDS, COMMANDS
from asdlab.cli._progress import ProgressPrinter
from asdlab.errors import ConfigError

DETECTOR_FILE = "detector.json"  # asdlab.detector.DETECTOR_FILE, without importing torch at parse time

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `score` subcommand."""
    parser = subparsers.add_parser(
        "score",
        help=COMMANDS["score"],
        description=(
            "With MODEL_DIR DATA_ROOT: embed every test/ clip under DATA_ROOT with the detector from "
            "`asdlab fit` and write anomaly_score_*/decision_result_* to --out (evaluated when the file names "
            "carry labels). With EMBEDDINGS.npz: fit the backend per machine on the training rows of an embeddings file (from `asdlab embed`), "
            "score the test rows and write anomaly_score_*/decision_result_* (DCASE format), the out-of-fold "
            "train_scores_* (thresholds, ensembles) and settings.json to --out. With --ground-truth, or when "
            "every test row carries a label and a domain (copied to OUT/ground_truth/), the official metric is "
            "printed and written to OUT/evaluation.csv. Clips that cannot be used (unreadable, empty, silent, too "
            "short, ...) are reported once each and skipped; labelled runs are then evaluated on the clips scored, "
            "with a warning. Exit status: 0 when any clip was scored, 2 when none could be or on an error."
        ),
    )
    parser.add_argument("target", type=Path, metavar="MODEL_DIR|MODEL.asdlab|EMBEDDINGS",
                        help="a detector folder (asdlab fit), an .asdlab file (asdlab export), or an embeddings "
                             "file (.npz) with train and test rows")
    parser.add_argument("data_root", type=Path, nargs="?", default=None, metavar="DATA_ROOT",
                        help="with a detector: the dataset root whose test/ clips are scored")
    parser.add_argument("--out", type=Path, required=True, metavar="SCORES_DIR", help="folder for the score files")
    parser.add_argument("--backend", default=None, choices=BACKENDS, metavar="NAME",
                        help=f"backend: {', '.join(BACKENDS)} (default: knn, k=1 cosine per domain; "
                             "a detector's own backend for a detector)")
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
    parser.add_argument("--device", default="auto",
                        help="detector: where test clips are embedded: auto (the GPU when there is one, bf16), "
                             "cpu, cuda, cuda:N")
    parser.add_argument("--no-ci", action="store_true", help="skip the jackknife confidence interval")
    parser.set_defaults(func=run)


def _score_with_detector(args: argparse.Namespace) -> int:
    from asdlab.detector import load_detector  # imports torch; only when used

    if args.data_root is None:
        raise ConfigError(f"{args.target} is a detector: give the DATA_ROOT whose test clips to score")
    detector = load_detector(args.target)
    from dataclasses import replace

    from asdlab.pipeline.scoring import parse_params

    scoring = None
    if args.backend is not None or args.params:  # re-score the detector's embeddings with another backend
        scoring = replace(detector.scoring, backend=args.backend or detector.scoring.backend,
                          params=parse_params(args.params))
    result = detector.score(args.data_root, args.out, device=args.device,
                            progress=ProgressPrinter("embedding test clips"), scoring=scoring)
    backend = (scoring or detector.scoring).backend
    scored = sum(len(m.test_scores) for m in result.machines)
    print(f"{detector.recipe} ({backend}): {scored} clip(s) of {len(result.machines)} machine/section(s) "
          f"scored -> {result.out_dir}")
    if result.skipped:
        print(f"skipped {len(result.skipped)} clip(s) that could not be used (each reported above with its reason)")
    if result.summary is not None:
        print(result.summary.format_table(), end="")
    return 0


def _is_detector(target: Path) -> bool:
    """A detector folder, or a zip with an archive manifest (asdlab.detector_archive; an .npz is a zip too)."""
    if (target / DETECTOR_FILE).is_file():
        return True
    try:
        with zipfile.ZipFile(target) as archive:
            return "manifest.json" in archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return False


def run(args: argparse.Namespace) -> int:
    from asdlab.pipeline.scoring import ScoreSettings, parse_params, score_embeddings

    if _is_detector(args.target):
        return _score_with_detector(args)
    if args.data_root is not None:
        raise ConfigError(f"{args.target}: not a detector folder (no {DETECTOR_FILE}) or .asdlab file; "
                          "DATA_ROOT is only for detectors")
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
