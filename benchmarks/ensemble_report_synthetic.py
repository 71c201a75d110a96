"""The ensemble report's member list and its ACP ensemble at CPU scale on the synthetic set (`ensemble-report`).

Runs `asdlab run ensemble-report --synthetic` (its `small_scale` sizes: beats-tiny / eat-tiny from random
weights, 150 fine-tuning steps of 16 clips, 60 continued pre-training steps; the two-branch CNN, 300 steps,
as the ResNet member)
and writes one table: the official score (%) over all four machine types, over the two the ACP weights were
tuned on (SynFan, SynGear) and over the two held out (SynValve, SynSlider), mean ± std over seeds, plus the
ACP weights of each seed. Only the held-out columns can compare the ACP ensemble with its members fairly.

    python benchmarks/ensemble_report_synthetic.py --seeds 0 --out runs/ensemble-report-synthetic
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from asdlab.metrics.dcase import official_score
from asdlab.pipeline.experiment import load_experiment_config, run_experiment


def _score(result, machines: set[str] | None) -> float:
    rows = [r for r in result.summary.rows if machines is None or r.machine in machines]
    return 100 * official_score(rows, rule=result.summary.rule)


def _cell(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{np.mean(values):.2f} ± {np.std(values, ddof=1):.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--out", default="runs/ensemble-report-synthetic")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()

    config = load_experiment_config("ensemble-report", small_scale=True,
                                    overrides=[f"seeds={args.seeds}", "report=false", *args.overrides])
    tuned = set(config.ensembles["acp"].tune_machines)
    started = time.perf_counter()
    result = run_experiment(config, args.out, log=print)
    wall_s = time.perf_counter() - started

    machines = {row.machine for row in result.results[0].summary.rows}
    held_out = machines - tuned
    names = list(dict.fromkeys(r.variant for r in result.results))
    lines = [
        "| system | seeds | All | tuned-on machines | held-out machines | NoAttr |",
        "|---|---|---|---|---|---|",
    ]
    for name in names:
        runs = [r for r in result.results if r.variant == name]
        cells = [_cell([_score(r, None) for r in runs]), _cell([_score(r, tuned) for r in runs]),
                 _cell([_score(r, held_out) for r in runs]), _cell([r.columns["NoAttr"] for r in runs])]
        lines.append(f"| {name} | {len(runs)} | " + " | ".join(cells) + " |")
    weights = []
    for r in result.results:
        if r.variant == "acp":
            record = json.loads((r.scores_dir.parent / "acp.json").read_text())
            shown = ", ".join(f"{k} {v:.3f}" for k, v in record["weights"].items())
            weights.append(f"- seed {r.seed}: {shown} (tuned-on official score {100 * record['official_score_tuned']:.2f}, "
                           f"equal weights {100 * record['official_score_tuned_equal_weights']:.2f})")
    text = "\n".join([
        f"Seeds {args.seeds}; tuned on {sorted(tuned)}, held out {sorted(held_out)}; "
        f"wall time {wall_s / 60:.1f} min ({args.out}).", "", *lines, "", "ACP weights:", *weights, "",
    ])
    print(text)  # pasted into benchmarks/results/ensemble_report_synthetic.md


if __name__ == "__main__":
    main()
