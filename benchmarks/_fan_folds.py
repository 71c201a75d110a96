"""A quick, hand-built real-clips protocol on the MIMII fan clips of ../shared (a stop-gap until the
real-clips benchmark of issue 19 item 1 lands; its protocol supersedes this one).

Source domain = `mimii-fan-id00-sample` (20 normal, 20 abnormal), target domain = the fan clips of
`mimii-extra-sample` (10 normal, 10 abnormal; their unit is not stated, so "another domain" is an
assumption). Fold f of 5 trains on 16 id00 normals and 3 extra normals and tests on the other 4 id00
normals with all 20 id00 abnormals (source) and the other 7 extra normals with all 10 extra abnormals
(target). Every clip is written at the same RMS (raw level leaks the label in id00), channel 0, 16 kHz,
as float WAV in the DCASE 2023+ layout with `noAttribute` names (own recordings carry no attributes).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from asdlab.data.audio import load_audio
from asdlab.features.level import TYPICAL_RMS

N_FOLDS = 5
_SOURCE = "mimii-fan-id00-sample/fan/id_00"
_TARGET = "mimii-extra-sample/fan"
_SAMPLE_RATE = 16000


def _clips(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.wav"))


def build_fan_fold(data_dir: str | Path, out_dir: str | Path, fold: int) -> Path:
    """Write fold `fold` (0..4) under `out_dir/fan/{train,test}` and return `out_dir` (reused if complete)."""
    data, out = Path(data_dir), Path(out_dir)
    marker = out / "fold.done"
    if marker.exists():
        return out
    rng = np.random.default_rng(0)  # one fixed shuffle; folds rotate over it
    src_normal = _clips(data / _SOURCE / "normal")
    src_abnormal = _clips(data / _SOURCE / "abnormal")
    tgt_normal = _clips(data / _TARGET / "normal")
    tgt_abnormal = _clips(data / _TARGET / "abnormal")
    if len(src_normal) != 20 or len(tgt_normal) != 10:
        raise FileNotFoundError(f"{data}: expected 20 id00 and 10 extra fan normals, found "
                                f"{len(src_normal)} and {len(tgt_normal)}")
    src_order = [src_normal[i] for i in rng.permutation(len(src_normal))]
    tgt_order = [tgt_normal[i] for i in rng.permutation(len(tgt_normal))]
    src_test = set(src_order[4 * fold: 4 * fold + 4])
    tgt_train = {tgt_order[(3 * fold + k) % len(tgt_order)] for k in range(3)}
    plan: list[tuple[Path, str, str, str]] = []  # (clip, split, domain, label)
    plan += [(p, "test" if p in src_test else "train", "source", "normal") for p in src_normal]
    plan += [(p, "test", "source", "anomaly") for p in src_abnormal]
    plan += [(p, "train" if p in tgt_train else "test", "target", "normal") for p in tgt_normal]
    plan += [(p, "test", "target", "anomaly") for p in tgt_abnormal]
    counters: dict[tuple[str, str, str], int] = {}
    for clip, split, domain, label in plan:
        index = counters.get((split, domain, label), 0)
        counters[(split, domain, label)] = index + 1
        wave = load_audio(clip, sample_rate=_SAMPLE_RATE)
        wave = wave * (TYPICAL_RMS / max(float(np.sqrt(np.mean(wave.astype(np.float64) ** 2))), 1e-12))
        name = f"section_00_{domain}_{split}_{label}_{index:04d}_noAttribute.wav"
        target = out / "fan" / split / name
        target.parent.mkdir(parents=True, exist_ok=True)
        sf.write(target, wave.astype(np.float32), _SAMPLE_RATE, subtype="FLOAT")
    marker.write_text(f"fold {fold}\n")
    return out
