"""Crash and resume, measured with real processes: SIGKILL `pretrain`, `finetune`, `embed` and `fit` at random
points, rerun each, and compare with an uninterrupted run.

For each stage: one uninterrupted reference run (timed, and timed to its first sign of progress: a training
print of a step, an embedding chunk), then `--trials` runs killed with SIGKILL at a random moment between that sign
of progress and 95 % of the way to the reference's end, each rerun with the same command (plus
`--resume` for the training stages) to the end. A rerun counts as resumed when it continued from the
killed run's state (a checkpoint, finished embedding chunks, or for `fit` a stage the killed run had
finished) rather than from nothing; it matches
when its outputs equal the reference's: for training, every train_log.csv row after the resumed step
(step and loss) and the final weights, bit for bit; for embed and fit, the embeddings table and the
detector's weights and training embeddings, bit for bit.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/kill_resume.py --trials 3 --out benchmarks/results/kill_resume.json
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ASDLAB = [sys.executable, "-m", "asdlab.cli.main"]
# The tiny sizes of each stage (eat-tiny, two-branch-cnn-small, the small synthetic set) so a run takes seconds.
STAGES = {
    "pretrain": lambda data, out: ["pretrain", str(data), "--out", str(out), "--preset", "eat-tiny", "--steps", "24",
                                   "--batch-size", "4", "--clones", "2", "--warmup", "3", "--checkpoint-every", "4",
                                   "--log-every", "1", "--precision", "32-true", "--accelerator", "cpu"],
    "finetune": lambda data, out: ["finetune", str(data), "--out", str(out), "--recipe", "two-branch-cnn",
                                   "--preset", "two-branch-cnn-small", "--steps", "30", "--batch-size", "8",
                                   "--checkpoint-every", "4", "--log-every", "1", "--accelerator", "cpu"],
    "embed": lambda data, out: ["embed", str(data), "--backbone", "eat-tiny", "--out", str(out / "emb.npz"),
                                "--batch-size", "4", "--checkpoint-every", "1"],
    "fit": lambda data, out: ["fit", str(data), "--out", str(out / "detector"), "--recipe", "two-branch-cnn",
                              "--set", "finetune.preset=two-branch-cnn-small", "--set", "finetune.steps=30",
                              "--set", "finetune.batch_size=8", "--set", "finetune.checkpoint_every=4",
                              "--set", "finetune.log_every=1",
                              "--set", "finetune.accelerator=cpu"],
}
RESUME_FLAG = {"pretrain": ["--resume"], "finetune": ["--resume"], "embed": [], "fit": []}
# The first sign that a run has started its work (imports and data loading take the first seconds): the
# first training step printed, or the first embedding chunk written.
PROGRESS = {
    "pretrain": lambda out, log: "step 1/" in log.read_text(),
    "finetune": lambda out, log: "step 1/" in log.read_text(),
    "embed": lambda out, log: any((out / "emb.npz.partial").glob("chunk-*.npz")),
    "fit": lambda out, log: "train step 1/" in log.read_text(),
}
_RESUMED = re.compile(r"resuming (?:from .* at step (\d+)|after (\d+) of \d+ clips)")
_REUSED = re.compile(r"asdlab\.pipeline\.cache: (\w+): reusing ")  # `fit` reuses a stage the killed run had finished


def run(command: list[str], log: Path, *, progress=None, kill_after_progress_s: float | None = None
        ) -> tuple[int, float, float | None, str]:
    """Run an asdlab command; returns (status, seconds, seconds until `progress()` was first true, output).

    With `kill_after_progress_s`, SIGKILL its process group that long after `progress()` turns true.
    """
    start = time.perf_counter()
    progress_s = None
    with open(log, "w") as out:
        process = subprocess.Popen(ASDLAB + command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                   env={**os.environ, "PYTHONUNBUFFERED": "1"})  # progress lines reach the log at once
        while process.poll() is None:
            now = time.perf_counter() - start
            if progress_s is None and progress is not None and progress():
                progress_s = now
            if progress_s is not None and kill_after_progress_s is not None and now >= progress_s + kill_after_progress_s:
                os.killpg(process.pid, signal.SIGKILL)
                break
            time.sleep(0.02)
        status = process.wait()
    return status, time.perf_counter() - start, progress_s, log.read_text()


def digest(path: Path) -> str:
    """SHA-256 of a file, or of every file under a folder (names and contents, sorted)."""
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for p in files:
        h.update(str(p.relative_to(path) if path.is_dir() else p.name).encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def log_rows(path: Path) -> dict[int, str]:
    with open(path, newline="") as f:
        return {int(row["step"]): row["loss"] for row in csv.DictReader(f)}


def outputs(stage: str, out: Path) -> dict[str, str]:
    """What must be identical to the reference: digests of the stage's results."""
    if stage == "pretrain":
        return {name: digest(out / name) for name in ("encoder.safetensors", "teacher.safetensors", "decoder.safetensors")}
    if stage == "finetune":
        return {p.name: digest(p) for p in sorted(out.glob("*.safetensors"))}
    if stage == "embed":
        import numpy as np

        with np.load(out / "emb.npz", allow_pickle=False) as table:
            return {name: hashlib.sha256(table[name].tobytes()).hexdigest() for name in sorted(table.files)}
    detector = out / "detector"  # weights and training embeddings (train_log.csv also records clips/s)
    return {p.name: digest(p) for p in [*sorted((detector / "model").glob("*.safetensors")), detector / "train_embeddings.npz"]}


def compare(stage: str, reference: Path, rerun: Path, resumed_step: int | None) -> tuple[bool, str]:
    problems = [name for name, value in outputs(stage, reference).items() if outputs(stage, rerun).get(name) != value]
    if stage in ("pretrain", "finetune"):
        ref_log, new_log = log_rows(reference / "train_log.csv"), log_rows(rerun / "train_log.csv")
        after = [s for s in ref_log if resumed_step is None or s > resumed_step]
        differing = [s for s in after if new_log.get(s) != ref_log[s]]
        if differing:
            problems.append(f"loss differs at steps {differing[:5]}")
        if resumed_step is not None and after:
            first = min(after)
            return not problems, (f"resumed at step {resumed_step}; next step {first} loss {new_log.get(first)} "
                                  f"(reference {ref_log[first]})" + (f"; differs: {problems}" if problems else ""))
    return not problems, "; ".join(problems) or "identical outputs"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=3, help="kills per stage")
    parser.add_argument("--stages", nargs="+", default=list(STAGES), choices=list(STAGES))
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill times")
    parser.add_argument("--work", type=Path, default=None, help="working folder (default: a temporary one)")
    parser.add_argument("--out", type=Path, default=None, help="write the counts and every trial as JSON here")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    work = args.work or Path(tempfile.mkdtemp(prefix="kill_resume_"))
    data = work / "data"
    if not data.exists():
        subprocess.run(ASDLAB + ["synth", str(data), "--machines", "2", "--train-source", "24", "--train-target", "4",
                                 "--test-per-group", "4", "--duration-s", "2", "--hide-attributes", "0"], check=True,
                       stdout=subprocess.DEVNULL)
    report: dict[str, dict] = {}
    for stage in args.stages:
        ref_dir = work / stage / "reference"
        shutil.rmtree(ref_dir, ignore_errors=True)
        ref_dir.mkdir(parents=True)
        status, ref_s, ref_progress_s, text = run(STAGES[stage](data, ref_dir), work / stage / "reference.log",
                                                  progress=lambda d=ref_dir: PROGRESS[stage](d, work / stage / "reference.log"))
        if status != 0 or ref_progress_s is None:
            raise SystemExit(f"{stage} reference run failed ({status}):\n{text[-2000:]}")
        trials = []
        for trial in range(args.trials):
            out = work / stage / f"trial{trial}"
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir(parents=True)
            delay = rng.uniform(0.0, 0.95) * (ref_s - ref_progress_s)
            status, _, progress_s, _ = run(STAGES[stage](data, out), work / stage / f"trial{trial}-killed.log",
                                           progress=lambda d=out, t=trial: PROGRESS[stage](d, work / stage / f"trial{t}-killed.log"),
                                           kill_after_progress_s=delay)
            killed = status == -signal.SIGKILL
            delay += progress_s or 0.0
            status, rerun_s, _, text = run(STAGES[stage](data, out) + RESUME_FLAG[stage],
                                           work / stage / f"trial{trial}-rerun.log")
            found = _RESUMED.search(text)
            resumed_at = None if found is None else int(found[1] or found[2])
            reused = _REUSED.search(text)
            matched, detail = compare(stage, ref_dir, out, resumed_at if stage in ("pretrain", "finetune") else None) \
                if status == 0 else (False, f"rerun failed ({status}): {text[-500:]}")
            trials.append({"kill_after_s": round(delay, 2), "killed": killed, "rerun_status": status,
                           "resumed": found is not None or reused is not None, "resumed_at": resumed_at,
                           "reused_stage": None if reused is None else reused[1], "matched": matched,
                           "rerun_s": round(rerun_s, 1), "detail": detail})
            print(f"{stage} trial {trial}: kill at {delay:.1f} s of {ref_s:.1f} s ({'killed' if killed else 'finished first'}), "
                  f"rerun {'resumed at ' + str(resumed_at) if found else 'reused the finished ' + reused[1] + ' stage' if reused else 'from the start'}, "
                  f"{'MATCHED' if matched else 'DIFFERS'}: {detail}", flush=True)
        report[stage] = {
            "reference_s": round(ref_s, 1),
            "reference_progress_s": round(ref_progress_s, 1),
            "kills": sum(t["killed"] for t in trials),
            "resumed": sum(t["killed"] and t["resumed"] for t in trials),
            "matched": sum(t["killed"] and t["matched"] for t in trials),
            "trials": trials,
        }
    print("\nstage     kills  resumed  matched  (reference run s)")
    for stage, r in report.items():
        print(f"{stage:9s} {r['kills']:5d}  {r['resumed']:7d}  {r['matched']:7d}  ({r['reference_s']})")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
