"""Wall time of `asdlab fit RECIPE` on one machine type with 45 ten-second clips, stage by stage, and
the fitted detector's scores on that machine's test clips.

The clips are synthetic (one machine type, 40 source + 5 target normal training clips of 10 s, like a
DCASE section, and 10 test clips per domain and label; `--attributes` keeps their attribute names, by
default they are hidden, as in an engineer's own recordings). Stages: data generation (not part of fit),
each cached stage `fit` runs (pseudo-labels, fine-tuning, ...), the final embedding of the training
clips with the detector save; then `asdlab score` of the 40 test clips (AUC source / target, pAUC, Ω).

    OMP_NUM_THREADS=2 python benchmarks/fit_time.py mn04-arcface [--set finetune.epochs=40] [--out result.json]

Wall times depend on what else runs on the machine; the process CPU time (all threads) of each stage
is also reported, as it barely changes with the load: on an otherwise idle machine a stage's wall time
is at least its CPU time divided by the threads used.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import tempfile
import time
from pathlib import Path

import torch

from asdlab.data.synth import generate_dataset
from asdlab.pipeline.fit import fit_detector

REPO = Path(__file__).resolve().parents[1]
_STAGE_LINE = re.compile(r"^\s*(\w+): done in ([0-9.]+) s")


def _train_steps(work: Path) -> dict[str, int]:
    steps = {}
    for log in sorted(work.glob("finetune-*/train_log.csv")):
        lines = log.read_text().strip().splitlines()
        steps[log.parent.name] = int(lines[-1].split(",")[0]) if len(lines) > 1 else 0
    return steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recipe")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--source-clips", type=int, default=40)
    parser.add_argument("--target-clips", type=int, default=5)
    parser.add_argument("--duration-s", type=float, default=10.0)
    parser.add_argument("--test-clips", type=int, default=10, help="test clips per domain and label")
    parser.add_argument("--attributes", action="store_true", help="keep attribute names (default: hidden)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work", default=None, help="working folder (default: a temporary one)")
    parser.add_argument("--shared", default=str(REPO.parent / "shared"))
    parser.add_argument("--out", default=None, help="write the result as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault("ASDLAB_WEIGHTS_DIR", str(Path(args.shared) / "models" / "efficientat-mn04"))

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work or tmp)
        started = time.perf_counter()
        data = work / "data"
        generate_dataset(data, machines=1, train_source=args.source_clips, train_target=args.target_clips,
                         test_per_group=args.test_clips, duration_s=args.duration_s,
                         hide_attributes=0 if args.attributes else 1, seed=args.seed, overwrite=True)
        data_s = time.perf_counter() - started

        stages: dict[str, float] = {}
        stages_cpu: dict[str, float] = {}
        last_cpu = [time.process_time()]

        def log(line: str) -> None:
            print(line, flush=True)
            now = time.process_time()
            if match := _STAGE_LINE.match(line):  # a stage just finished: the CPU since the last line is its own
                stages[match.group(1)] = stages.get(match.group(1), 0.0) + float(match.group(2))
                stages_cpu[match.group(1)] = stages_cpu.get(match.group(1), 0.0) + now - last_cpu[0]
            last_cpu[0] = now

        started, started_cpu = time.perf_counter(), time.process_time()
        detector = fit_detector(data, work / "model", recipe=args.recipe, overrides=args.overrides, seed=args.seed,
                                work_dir=work / "model.work", log=log)
        fit_s, fit_cpu_s = time.perf_counter() - started, time.process_time() - started_cpu
        steps = _train_steps(work / "model.work")
        started = time.perf_counter()
        summary = detector.score(data, work / "scores").summary
        score_s = time.perf_counter() - started

    result = {
        "recipe": args.recipe, "overrides": args.overrides, "threads": args.threads,
        "clips": args.source_clips + args.target_clips, "duration_s": args.duration_s,
        "attributes": args.attributes, "data_generation_s": round(data_s, 1), "fit_s": round(fit_s, 1),
        "stages_s": {k: round(v, 1) for k, v in stages.items()},
        "embed_and_save_s": round(fit_s - sum(stages.values()), 1), "train_steps": steps,
        "fit_cpu_s": round(fit_cpu_s, 1), "stages_cpu_s": {k: round(v, 1) for k, v in stages_cpu.items()},
        "embed_and_save_cpu_s": round(fit_cpu_s - sum(stages_cpu.values()), 1),
        "score_s": round(score_s, 1), "auc_source": round(summary.harmonic_mean.auc_source, 4),
        "auc_target": round(summary.harmonic_mean.auc_target, 4), "pauc": round(summary.harmonic_mean.pauc, 4),
        "official_score": round(summary.official_score, 4),
        "load_average_1min_at_end": round(os.getloadavg()[0], 2), "cpus": os.cpu_count(),
    }
    print(json.dumps(result, indent=2))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
