"""gpu_check.sh's last step: one table (figure, value, goal, met?) from the sections' JSON lines, which
variant to make the GPU default, and the kernel profile of the fastest DAP step."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

DAP_MFU_GOAL = 0.40  # issue 18: DAP step at the paper's batch (32 x 16)
FINETUNE_MFU_GOAL = 0.30
PRETRAIN_RATIO_GOAL = 0.90  # `asdlab pretrain` within 10 % of dap_throughput.py
EMBED_GOAL = 1500.0  # clips/s of 10-s clips, EAT-base
PAPER_BATCH = 32


def _records(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def _met(ok: bool | None) -> str:
    return "n/a" if ok is None else ("yes" if ok else "**no**")


def _pytest_counts(log: Path) -> str | None:
    if not log.is_file():
        return None
    text = log.read_text()
    tail = [line for line in text.splitlines() if re.search(r"\b(passed|failed|skipped|error|deselected)\b", line)]
    return tail[-1].strip("= ") if tail else None


def build(records: list[dict], pytest_log: Path, smoke: bool) -> tuple[list[str], list[str]]:
    rows = ["| figure | value | goal | met? |", "|---|---|---|---|"]
    notes: list[str] = []
    env = next((r for r in records if r.get("kind") == "env"), None)
    peak = env["peak_bf16_tflops"] if env else None
    for r in records:
        if r.get("kind") == "forward":
            rows.append(f"| {r['preset']} forward {r['dtype']}, batch {r['batch_size']} | {r['clips_per_s']:.0f} clips/s, "
                        f"{100 * r['share_of_peak']:.1f} % of the matmul peak measured with it "
                        f"({r['peak_tflops']:.4g} TFLOP/s) | (report; was 50 %) | n/a |")
    steps = [r for r in records if r.get("kind") == "dap_step"]
    for r in sorted(steps, key=lambda r: (r.get("batch_size", 0), r.get("variant", ""))):
        name = f"DAP step {r['batch_size']}x{r.get('clones', 16)}, {r['variant']}"
        if "error" in r:
            rows.append(f"| {name} | FAILED: {r['error'][:80]} | | **no** |")
            continue
        mfu = r.get("mfu")
        failed_compile = "+compile" in r["variant"] and not r.get("compiled")
        value = f"{r['clips_per_s']:.1f} clips/s, MFU {100 * mfu:.1f} %" if mfu is not None else f"{r['clips_per_s']:.2f} clips/s"
        if failed_compile:
            value += " (compile failed: ran eager)"
        goal = f">= {100 * DAP_MFU_GOAL:.0f} % MFU" + ("" if r["batch_size"] == PAPER_BATCH else " (goal at 32x16)")
        ok = None if mfu is None or r["batch_size"] != PAPER_BATCH else mfu >= DAP_MFU_GOAL
        rows.append(f"| {name} | {value} | {goal} | {_met(ok)} |")
    for r in records:
        if r.get("kind") == "finetune_step":
            mfu = r.get("mfu")
            value = f"{r['clips_per_s']:.1f} clips/s" + (f", MFU {100 * mfu:.1f} %" if mfu is not None else "")
            rows.append(f"| fine-tune step {r['preset']} {r['precision']}, batch {r['batch_size']}, "
                        f"{r.get('variant', 'eager')} | {value} | "
                        f">= {100 * FINETUNE_MFU_GOAL:.0f} % MFU | {_met(None if mfu is None else mfu >= FINETUNE_MFU_GOAL)} |")
    ok_steps = [r for r in steps if "error" not in r]
    for r in records:
        if r.get("kind") == "e2e_pretrain":
            same = [s for s in ok_steps if s["batch_size"] == r["batch_size"] and not s.get("compiled")
                    and s["decoder_conv"] == r["decoder_conv"]]
            if same:
                ratio = r["clips_per_s"] / same[0]["clips_per_s"]
                value = (f"{r['clips_per_s']:.1f} clips/s = {ratio:.2f} x dap_throughput "
                         f"({same[0]['variant']}, {same[0]['clips_per_s']:.1f} clips/s)")
                ok = ratio >= PRETRAIN_RATIO_GOAL
            else:
                value, ok = f"{r['clips_per_s']:.1f} clips/s (no matching dap_throughput figure)", None
            rows.append(f"| asdlab pretrain, batch {r['batch_size']}, {r['num_workers']} workers, decoder "
                        f"{r['decoder_conv']} | {value} | >= {PRETRAIN_RATIO_GOAL:.2f} x benchmark | {_met(ok)} |")
        if r.get("kind") == "e2e_embed":
            rows.append(f"| asdlab embed {r['backbone']}, batch {r['batch_size']}, {r['num_workers']} workers | "
                        f"{r['clips_per_s']:.0f} clips/s | >= {EMBED_GOAL:.0f} clips/s | {_met(r['clips_per_s'] >= EMBED_GOAL)} |")
    counts = _pytest_counts(pytest_log)
    if counts is not None:
        ok = "failed" not in counts and "error" not in counts and "passed" in counts  # all skipped: not run
        rows.append(f"| pytest -m cuda (CUDA branches of the suite) | {counts} | all pass | {_met(ok)} |")
    for r in records:
        if r.get("kind") == "section" and r.get("rc") not in (0, None):
            why = "timed out" if r["rc"] in (124, 137) else f"exit {r['rc']}"
            rows.append(f"| section {r['name']} | {why} after {r['seconds']} s | completes | **no** |")
        if r.get("kind") == "section" and r.get("skipped"):
            rows.append(f"| section {r['name']} | skipped: {r['skipped']} | | **no** |")

    paper = [r for r in ok_steps if r["batch_size"] == max((s["batch_size"] for s in ok_steps), default=0)]
    if paper:
        best = max(paper, key=lambda r: r["clips_per_s"])
        eager = [r for r in paper if not r.get("compiled")]
        best_eager = max(eager, key=lambda r: r["clips_per_s"]) if eager else None
        notes.append(f"Fastest DAP step at batch {best['batch_size']}: {best['variant']} "
                     f"({best['clips_per_s']:.1f} clips/s" + (f", MFU {100 * best['mfu']:.1f} %)" if best.get("mfu") else ")"))
        if best_eager is not None:
            notes.append(f"Fastest eager: {best_eager['variant']} ({best_eager['clips_per_s']:.1f} clips/s).")
        compiled = bool(best.get("compiled"))
        notes.append(f"To make it the GPU default: in src/asdlab/pipeline/pretrain.py set "
                     f"GPU_DECODER_CONV = \"{best['decoder_conv']}\" and GPU_COMPILE = {compiled}.")
        if "profile" not in best:
            best = next((r for r in paper if "profile" in r), best)
        if "profile" in best:
            profile = best["profile"]
            notes.append(f"\nProfile of {best['variant']} at batch {best['batch_size']} "
                         f"({profile['total_ms_per_step']:.1f} ms of kernel time per step):")
            for name, group in profile["groups"].items():
                notes.append(f"  {100 * group['share']:5.1f} %  {group['ms_per_step']:8.2f} ms  {name}")
            notes.append("  top kernels:")
            for row in profile["top"][:12]:
                notes.append(f"  {100 * row['share']:5.1f} %  {row['ms_per_step']:8.2f} ms  x{row['calls_per_step']:<4d} {row['kernel']}")
    tunes = [r for r in records if r.get("kind") == "finetune_step"]
    eager_tune = next((r for r in tunes if not r.get("compiled")), None)
    compiled_tune = next((r for r in tunes if r.get("compiled")), None)
    if eager_tune and compiled_tune:
        faster = compiled_tune["clips_per_s"] > eager_tune["clips_per_s"]
        notes.append(f"Fine-tuning: compiled {compiled_tune['clips_per_s']:.1f} vs eager {eager_tune['clips_per_s']:.1f} "
                     f"clips/s: " + ("make `compile` default to True on a GPU (FinetuneSettings.compile, "
                                     "`asdlab finetune --compile`)." if faster else "keep it eager."))
    others = [r for r in ok_steps if "profile" in r and r["batch_size"] == (paper[0]["batch_size"] if paper else 0)]
    for r in others:
        groups = ", ".join(f"{name} {100 * g['share']:.0f} %" for name, g in list(r["profile"]["groups"].items())[:5])
        notes.append(f"  [{r['variant']}] {r['profile']['total_ms_per_step']:.1f} ms/step: {groups}")
    if peak is not None:
        notes.insert(0, f"MFU is against the bf16 matmul peak measured in this run: {peak:.1f} TFLOP/s"
                        f" ({env.get('device')}; torch {env.get('torch')}).")
    if smoke:
        notes.insert(0, "SMOKE RUN on the CPU at tiny sizes: the figures only show that every section runs.")
    return rows, notes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("results", type=Path)
    parser.add_argument("--pytest-log", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True, help="summary.md to write")
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    rows, notes = build(_records(args.results), args.pytest_log, args.smoke)
    text = "\n".join(rows) + "\n\n" + "\n".join(notes) + "\n"
    print(text)
    args.out.write_text(text)


if __name__ == "__main__":
    main()
