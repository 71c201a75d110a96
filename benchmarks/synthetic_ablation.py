"""Issue 15 exploration: the `baseline` recipe and the two-branch CNN on one variant of the synthetic
default, with AUC source split into its halves and per-fault-kind AUCs (the calibration rows that
move; `synthetic_calibration.py` is the full benchmark).

    python benchmarks/synthetic_ablation.py NAME SEED '{"anomaly_level": 2.0}'
    python benchmarks/synthetic_ablation.py nobg 0 '{"snr_shift": 36}'

The JSON holds `generate_dataset` arguments plus these generator variants (module constants patched
in this process only):

- `snr_shift`: dB added to both domains' machine-to-background ratio (36: background off);
- `one_target`: the target domain back to one attribute combination per machine (the round-2 design);
- `valve_pres`: SynValve source pressures 2 / 4 / 6 bar, target 8 (classes further apart);
- `fine_classes`: SynFan speeds 1200 / 1230 / 1260 / 1290 rpm, SynGear supply 1.0 / 1.05 / 1.1 / 1.15
  (8 source classes each, 2.5-5 % apart: classes a classifier can tell only by fine detail);
- `source_spread`, `target_spread`: each background level and the SNR of that domain drawn within
  ± this many dB of its range's centre (`snr_spread: false` leaves the SNR range as it is);
- `slider_source`, `valve_source`: the machine's source attribute values, [[values of key 1], [values of key 2]];
- `slider_target`: SynSlider's target speeds.

Results go to runs/ablation/NAME-seedSEED; one line per system on stdout.
"""

from __future__ import annotations

import json
import runpy
import shutil
import sys
import time
from pathlib import Path

from asdlab.data import _machine_sounds, _recording_conditions, synth

cal = runpy.run_path(str(Path(__file__).parent / "synthetic_calibration.py"))


def _replace(table: dict, key: str, **changes) -> None:
    table[key] = table[key].__class__(**{**table[key].__dict__, **changes})


def apply_variant(extra: dict) -> dict:
    """Patch the generator for this process; returns the remaining `generate_dataset` arguments."""
    shift = extra.pop("snr_shift", 0.0)
    for domain, channel in list(_recording_conditions._CHANNEL.items()):
        _replace(_recording_conditions._CHANNEL, domain, snr_db=(channel.snr_db[0] + shift, channel.snr_db[1] + shift))
    if extra.pop("one_target", False):
        for name, mtype in list(_machine_sounds.MACHINE_TYPES.items()):
            _replace(_machine_sounds.MACHINE_TYPES, name, target_values=tuple(v[:1] for v in mtype.target_values))
    if extra.pop("valve_pres", False):
        valve = _machine_sounds.MACHINE_TYPES["SynValve"]
        _replace(_machine_sounds.MACHINE_TYPES, "SynValve", source_values=(valve.source_values[0], ("2", "4", "6")),
                 target_values=(valve.target_values[0], ("8",)))
    if extra.pop("fine_classes", False):
        _replace(_machine_sounds.MACHINE_TYPES, "SynFan", source_values=(("5", "7"), ("1200", "1230", "1260", "1290")))
        _replace(_machine_sounds.MACHINE_TYPES, "SynGear", source_values=(("1.0", "1.05", "1.1", "1.15"), ("0", "100")))
    snr_spread = extra.pop("snr_spread", True)
    for domain, key in (("target", "target_spread"), ("source", "source_spread")):
        spread = extra.pop(key, 0.0)
        if not spread:
            continue
        bg = _recording_conditions._BACKGROUND[domain]

        def widen(span, spread=spread):
            return None if span is None else ((span[0] + span[1]) / 2 - spread, (span[0] + span[1]) / 2 + spread)

        _replace(_recording_conditions._BACKGROUND, domain, hum_db=widen(bg.hum_db), distant_db=widen(bg.distant_db),
                 air_db=widen(bg.air_db), babble_db=widen(bg.babble_db))
        ch = _recording_conditions._CHANNEL[domain]
        if snr_spread:
            _replace(_recording_conditions._CHANNEL, domain, snr_db=widen(ch.snr_db))
    for key, machine in (("slider_source", "SynSlider"), ("valve_source", "SynValve")):
        if key in extra:
            _replace(_machine_sounds.MACHINE_TYPES, machine, source_values=tuple(tuple(v) for v in extra.pop(key)))
    if "slider_target" in extra:
        _replace(_machine_sounds.MACHINE_TYPES, "SynSlider", target_values=(tuple(extra.pop("slider_target")), ("0.2",)))
    return extra


def main() -> None:
    name, seed = sys.argv[1], int(sys.argv[2])
    extra = apply_variant(json.loads(sys.argv[3]) if len(sys.argv) > 3 else {})
    work = Path("runs/ablation") / f"{name}-seed{seed}"
    root = work / f"data-{synth.generator_fingerprint()}"  # per generator version
    if not (root / "synth.json").exists():
        synth.generate_dataset(root, seed=seed, overwrite=True, **extra)
    clips = cal["read_truth"](root)
    for key, recipe in (("baseline", "baseline"), ("cnn", "two-branch-cnn")):
        shutil.rmtree(work / key, ignore_errors=True)
        start = time.time()
        result = cal["evaluate_recipe"](root, work / key, recipe, seed=seed)
        parts = cal["source_auc_parts"](cal["read_scores"](work / key / "scores"), clips)
        hm = result.summary.harmonic_mean
        print(f"{name} seed {seed} {key}: Ω {result.summary.official_score:.3f} AUC source {hm.auc_source:.3f} "
              f"target {hm.auc_target:.3f} pAUC {hm.pauc:.3f} ({time.time() - start:.0f} s)")
        print("   per machine (AUC source, target)",
              {row.machine: (round(row.auc_source, 2), round(row.auc_target, 2)) for row in result.summary.rows})
        print("   AUC source halves (source faults, target anomalies)",
              {m: (round(p["source faults"], 2), round(p["target clips"], 2)) for m, p in parts.items()})
        print("   per kind", {k: round(sum(v.values()) / len(v), 2) for k, v in result.kind_auc.items()}, flush=True)


if __name__ == "__main__":
    main()
