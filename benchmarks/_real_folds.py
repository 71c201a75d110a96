"""The real-recordings development folds: MIMII fan clips in the DCASE shape (shared by the benchmarks).

Source domain: `mimii-fan-id00-sample` (20 normal + 20 abnormal, 8-channel; channel 0). Target domain:
`mimii-extra-sample` fan (10 normal + 10 abnormal, mono). The two sets are different recordings
(`real_clips.py --check-units` measures how different). Per fold, drawn with a fixed seed: 14 source +
3 target normals train; the other 6 source + 7 target normals and every abnormal clip of both sets
(20 + 10) are scored. Every clip is written at the same RMS, since raw level gives the id00 labels
away (abnormal clips 0.0109 vs normal 0.0063 RMS). Names follow the DCASE 2023 grammar, with the
attribute `unit_id00` / `unit_extra` (or `noAttribute` when hidden), so `asdlab fit` / `score` and
the evaluator read a fold root unchanged.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from asdlab.data.audio import load_audio
from asdlab.features.level import TYPICAL_RMS

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
ID00 = SHARED_DATA / "mimii-fan-id00-sample" / "fan" / "id_00"
EXTRA = SHARED_DATA / "mimii-extra-sample" / "fan"
DCASE2023 = SHARED_DATA / "dcase2023t2-dev-mixed-samples"
MACHINE = "fan"
SAMPLE_RATE = 16000
ATTRIBUTES = {"source": "unit_id00", "target": "unit_extra"}
PLAN_FILE = "fold.json"


@dataclass(frozen=True)
class FoldPlan:
    """Which clip goes where in one fold (absolute paths of the original files).

    Attributes:
        fold / seed: the fold's number and the seed it was drawn with.
        source_train / target_train: normal training clips of each domain.
        source_test / target_test: normal test clips of each domain.
        source_anomalies / target_anomalies: abnormal clips (always all of them).
    """

    fold: int
    seed: int
    source_train: tuple[str, ...]
    target_train: tuple[str, ...]
    source_test: tuple[str, ...]
    target_test: tuple[str, ...]
    source_anomalies: tuple[str, ...]
    target_anomalies: tuple[str, ...]


def available() -> bool:
    """True when both MIMII fan samples are in ../shared/data."""
    return (ID00 / "normal").is_dir() and (EXTRA / "normal").is_dir()


def _clips(folder: Path) -> list[str]:
    return sorted(str(p) for p in folder.glob("*.wav"))


def plan_folds(n_folds: int = 5, *, seed: int = 0, source_train: int = 14, target_train: int = 3) -> list[FoldPlan]:
    """Fixed, seeded folds: each draws its own source and target training normals (repeated random splits).

    Every fold scores all 30 abnormal clips, so folds differ only in which normals train and which are scored.
    """
    normals = {"source": _clips(ID00 / "normal"), "target": _clips(EXTRA / "normal")}
    anomalies = {"source": _clips(ID00 / "abnormal"), "target": _clips(EXTRA / "abnormal")}
    sizes = {"source": source_train, "target": target_train}
    for domain, clips in normals.items():
        if not clips or sizes[domain] >= len(clips):
            raise ValueError(f"{domain}: {len(clips)} normal clips found, {sizes[domain]} to train on")
    plans = []
    for fold in range(n_folds):
        rng = np.random.default_rng([seed, fold])
        split = {}
        for domain, clips in normals.items():
            order = rng.permutation(len(clips))
            split[domain] = (tuple(clips[i] for i in sorted(order[: sizes[domain]])),
                             tuple(clips[i] for i in sorted(order[sizes[domain]:])))
        plans.append(FoldPlan(fold, seed, split["source"][0], split["target"][0], split["source"][1],
                              split["target"][1], tuple(anomalies["source"]), tuple(anomalies["target"])))
    return plans


def _write_clip(src: str, dst: Path, rms: float) -> None:
    wave = load_audio(src, sample_rate=SAMPLE_RATE, channel=0).astype(np.float64)
    wave *= rms / max(float(np.sqrt(np.mean(wave**2))), 1e-12)
    if np.abs(wave).max() >= 1.0:
        raise ValueError(f"{src}: clips at RMS {rms} (peak {np.abs(wave).max():.2f})")
    dst.parent.mkdir(parents=True, exist_ok=True)
    sf.write(dst, wave.astype(np.float32), SAMPLE_RATE, subtype="PCM_16")


def write_fold_root(plan: FoldPlan, out: Path, *, attributes: bool = True, rms: float = TYPICAL_RMS,
                    with_dcase2023: bool = False) -> Path:
    """Write one fold as a DCASE-layout root (`<out>/fan/{train,test}/section_00_...wav`); reused when complete.

    Args:
        plan: the fold.
        out: root folder.
        attributes: name the domain's unit as attribute (`unit_id00` / `unit_extra`); False writes `noAttribute`.
        rms: every clip's RMS after writing (level equalised).
        with_dcase2023: add the DCASE 2023 sample clips (7 machine types, 2-4 clips each) as extra
            training-only machine types, so the classifier has other machines' classes as in DCASE.
    """
    settings = {"plan": asdict(plan), "attributes": attributes, "rms": rms, "with_dcase2023": with_dcase2023}
    marker = out / PLAN_FILE
    if marker.is_file() and json.loads(marker.read_text()) == settings:
        return out
    groups = [
        ("train", "source", "normal", plan.source_train), ("train", "target", "normal", plan.target_train),
        ("test", "source", "normal", plan.source_test), ("test", "target", "normal", plan.target_test),
        ("test", "source", "anomaly", plan.source_anomalies), ("test", "target", "anomaly", plan.target_anomalies),
    ]
    for split, domain, label, clips in groups:
        attribute = ATTRIBUTES[domain] if attributes else "noAttribute"
        for index, src in enumerate(clips):
            name = f"section_00_{domain}_{split}_{label}_{index:04d}_{attribute}.wav"
            _write_clip(src, out / MACHINE / split / name, rms)
    if with_dcase2023:
        for src in sorted(DCASE2023.glob("*.wav")):
            machine, _, dcase_name = src.name.split("_", 2)
            parts = dcase_name.split("_")
            parts[3] = "train"  # every clip of these machines trains (normal ones only)
            if parts[4] != "normal":
                continue
            _write_clip(str(src), out / f"extra_{machine}" / "train" / "_".join(parts), rms)
    marker.write_text(json.dumps(settings, indent=1) + "\n")
    return out


def fold_root(out: Path, fold: int, *, attributes: bool = False, n_folds: int = 5) -> Path:
    """Write fold `fold` of the default plan (seed 0) under `out` and return it: the one-call form."""
    return write_fold_root(plan_folds(n_folds)[fold], Path(out), attributes=attributes)
