"""Start-up time of every `asdlab` command as a ratio to `python -c "import torch"`, measured in one run.

For each command the wall time of `asdlab COMMAND --help` (and of `asdlab --help`, and of a real
`asdlab evaluate` on generated score files) is measured in rounds that alternate with the torch
import, so each ratio compares the two under the same machine load; the median ratio is reported.
Goal (issue 18): every ratio <= 1.2.

    .venv/bin/python benchmarks/cli_startup.py --rounds 7
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from asdlab.cli._commands import COMMANDS as _MODULES  # torch-free: the list `asdlab --help` shows

COMMANDS = [module.replace("_", "-") for module in _MODULES]


def _asdlab() -> list[str]:
    script = Path(sys.executable).with_name("asdlab")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "asdlab"]


def _evaluate_inputs(folder: Path) -> list[str]:
    """Score files and a dataset root (empty clips named as DCASE test clips) for `asdlab evaluate`."""
    rng = np.random.default_rng(0)
    scores = folder / "scores"
    scores.mkdir()
    for machine in ("fan", "valve"):
        test = folder / "root" / machine / "test"
        test.mkdir(parents=True)
        rows = []
        for domain in ("source", "target"):
            for label in ("normal", "anomaly"):
                for i in range(25):
                    name = f"section_00_{domain}_test_{label}_{i:04d}_noAttribute.wav"
                    (test / name).touch()
                    rows.append(f"{name},{rng.normal(1.0 if label == 'anomaly' else 0.0):.6f}")
        (scores / f"anomaly_score_{machine}_section_00_test.csv").write_text("\n".join(rows) + "\n")
    return ["evaluate", str(scores), "--ground-truth", str(folder / "root"), "--out", str(folder / "table.csv"),
            "--no-ci"]


def _seconds(command: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {done.stderr[-500:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="cli_startup_"))
    try:
        cases = {"asdlab --help": [*_asdlab(), "--help"]}
        cases.update({f"asdlab {name} --help": [*_asdlab(), name, "--help"] for name in COMMANDS})
        cases["asdlab evaluate (a run)"] = [*_asdlab(), *_evaluate_inputs(folder)]
        reference = [sys.executable, "-c", "import torch"]
        _seconds(reference)  # warm the file cache
        for command in cases.values():
            _seconds(command)
        ratios: dict[str, list[float]] = {name: [] for name in cases}
        torch_times = []
        for _ in range(args.rounds):
            for name, command in cases.items():
                base = _seconds(reference)
                torch_times.append(base)
                ratios[name].append(_seconds(command) / base)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f'`python -c "import torch"`: median {statistics.median(torch_times):.2f} s '
          f"over {len(torch_times)} runs; ratios are medians of {args.rounds} rounds, each against its own torch run")
    print("| command | time / import torch | <= 1.2? |")
    print("|---|---|---|")
    for name, values in ratios.items():
        ratio = statistics.median(values)
        print(f"| `{name}` | {ratio:.2f} | {'yes' if ratio <= 1.2 else 'no'} |")


if __name__ == "__main__":
    main()
