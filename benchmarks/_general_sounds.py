"""A synthetic stand-in for AudioSet: everyday sounds that are not machines.

EAT's general pre-training sees mostly speech and music; the paper's point is that such a model
does not fit machine sounds well and that domain-adaptive pre-training closes that gap. To test
that at toy scale, `dap_attribute_separation.py` needs a "general" corpus with the same kind of
mismatch: voiced speech-like sounds (glottal pulses through moving formants), melodies of decaying
harmonic notes, bird-like chirps, and noise events (rain, steps, claps). Clips are written as an
own-recordings folder (`<root>/General/train/*.wav`), which `index_dataset` reads as train clips.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import soundfile as sf
from numpy.typing import NDArray
from scipy import signal

# the synthetic machines' own building blocks: unit-RMS scaling and a two-pole resonator
from asdlab.data._machine_sounds import TARGET_RMS
from asdlab.data._signal_blocks import resonator as _resonator
from asdlab.data._signal_blocks import rms as _rms
from asdlab.data._signal_blocks import unit as _unit

SAMPLE_RATE = 16000


def _resonate(x: NDArray[np.float64], centre_hz: float, bandwidth_hz: float) -> NDArray[np.float64]:
    return _resonator(x, SAMPLE_RATE, centre_hz, bandwidth_hz)


def _segments(rng: np.random.Generator, n: int, mean_len_s: float) -> list[tuple[int, int]]:
    """Consecutive (start, end) sample ranges of random length covering [0, n)."""
    bounds = [0]
    while bounds[-1] < n:
        bounds.append(bounds[-1] + int(rng.uniform(0.5, 1.5) * mean_len_s * SAMPLE_RATE))
    bounds[-1] = n
    return list(zip(bounds[:-1], bounds[1:]))


def _voice(rng: np.random.Generator, n: int) -> NDArray[np.float64]:
    """Syllables: a glottal pulse train with an intonation contour through two moving formants."""
    t = np.arange(n) / SAMPLE_RATE
    f0 = rng.uniform(90, 260) * (1 + 0.15 * np.sin(2 * math.pi * rng.uniform(0.3, 1.2) * t + rng.uniform(0, 6.3)))
    phase = np.cumsum(f0) / SAMPLE_RATE
    pulses = np.diff(np.floor(phase), prepend=0.0)  # one impulse per glottal cycle
    out = np.zeros(n)
    for start, end in _segments(rng, n, 0.2):
        if rng.random() < 0.25:
            continue  # a pause between syllables
        seg = pulses[start:end] + 0.05 * rng.standard_normal(end - start)
        vowel = _resonate(seg, rng.uniform(300, 900), 90) + 0.6 * _resonate(seg, rng.uniform(900, 2600), 150)
        out[start:end] = vowel * np.hanning(end - start)
    return out


def _melody(rng: np.random.Generator, n: int) -> NDArray[np.float64]:
    """Notes of a pentatonic scale, each a harmonic tone with a plucked (exponential) decay."""
    t = np.arange(n) / SAMPLE_RATE
    root = rng.uniform(130, 520)
    brightness = rng.uniform(0.3, 0.8)
    out = np.zeros(n)
    for start, end in _segments(rng, n, 0.25):
        f = root * 2 ** (rng.choice([0, 2, 4, 7, 9, 12]) / 12)
        local = t[: end - start]
        tone = sum(brightness ** (k - 1) * np.sin(2 * math.pi * k * f * local) for k in range(1, 8) if k * f < 7500)
        out[start:end] += tone * np.exp(-local * rng.uniform(3, 10))
    return out


def _chirps(rng: np.random.Generator, n: int) -> NDArray[np.float64]:
    """Bird-like calls: short fast frequency sweeps between 2 and 7 kHz."""
    out = np.zeros(n)
    for _ in range(rng.integers(3, 10)):
        length = int(rng.uniform(0.04, 0.15) * SAMPLE_RATE)
        start = int(rng.integers(0, n - length))
        local = np.arange(length) / SAMPLE_RATE
        f_start, f_end = rng.uniform(2000, 7000, 2)
        freq = f_start + (f_end - f_start) * local / local[-1]
        out[start:start + length] += np.sin(2 * math.pi * np.cumsum(freq) / SAMPLE_RATE) * np.hanning(length)
    return out


def _noise_events(rng: np.random.Generator, n: int) -> NDArray[np.float64]:
    """Rain-like crackle or steps and claps: band-passed noise bursts with sharp attacks."""
    out = np.zeros(n)
    dense = rng.random() < 0.5
    for _ in range(rng.integers(40, 120) if dense else rng.integers(3, 9)):
        length = int(rng.uniform(0.005, 0.02 if dense else 0.12) * SAMPLE_RATE)
        start = int(rng.integers(0, n - length))
        burst = rng.standard_normal(length) * np.exp(-np.arange(length) / (0.25 * length))
        out[start:start + length] += _resonate(burst, rng.uniform(400, 6000), rng.uniform(300, 2000))
    return out


_SOURCES = (_voice, _melody, _chirps, _noise_events)


def render_general_clip(seed: int, duration_s: float) -> NDArray[np.float32]:
    """One or two everyday sound sources over faint room noise, at the machines' RMS (less if it would clip)."""
    rng = np.random.default_rng(seed)
    n = int(round(duration_s * SAMPLE_RATE))
    picks = rng.choice(len(_SOURCES), size=rng.integers(1, 3), replace=False)
    mix = sum(rng.uniform(0.5, 1.0) * _unit(_SOURCES[i](rng, n)) for i in picks)
    room = signal.lfilter([1.0], [1.0, -0.9], rng.standard_normal(n))  # darker than white
    mix = _unit(mix) + 10 ** (-rng.uniform(15, 30) / 20) * _unit(room)
    mix *= TARGET_RMS / _rms(mix)
    return (mix * min(1.0, 0.99 / np.abs(mix).max())).astype(np.float32)  # loud claps: quieter, never clipped


def write_general_corpus(root: Path, clips: int, *, duration_s: float, seed: int) -> Path:
    """Write `clips` general sounds under `root/General/train/`; returns `root`.

    Written beside `root` and renamed when complete, so an existing `root` is always whole.
    """
    partial = root.with_name(root.name + ".partial")
    folder = partial / "General" / "train"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(clips):
        sf.write(folder / f"general_{i:05d}.wav", render_general_clip(seed * 1_000_003 + i, duration_s),
                 SAMPLE_RATE, subtype="PCM_16")
    partial.rename(root)
    return root
