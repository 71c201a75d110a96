"""The fault kinds of the synthetic machines: what each one is physically, how strong it is at
`anomaly_level=1`, and the added sounds of the kinds that ride on a rotating machine.

Three families. *Timing* faults change when the strokes of a machine that works in cycles happen
(a valve, a slide); *intermittent* faults come and go inside the clip (a rattle, a brief contact,
a chipped tooth heard once per revolution, a short surge of speed); *spectral* faults are steady
changes of the spectrum (bearing clicks, imbalance, rub, a changed harmonic). Real faults are mostly
of the first two families and barely move a machine's long-term spectrum, so the spectral kinds are
kept weak. `FAULTS` documents each kind; the renderers (`_rotating_machines`, `_valve`) apply them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from asdlab.data._signal_blocks import events, gate, highpass, lowpass, place_impulses, resonator, shaped_noise, unit

__all__ = ["ANOMALY_KINDS", "AnomalyKind", "FAULTS", "Fault", "FaultFamily"]

Array = NDArray[np.float64]

AnomalyKind = Literal[
    "missing_stroke", "extra_stroke", "late_stroke", "double_stroke", "hesitation",
    "rattle", "contact", "chipped_tooth", "surge",
    "bearing", "imbalance", "rub", "harmonic",
]
FaultFamily = Literal["timing", "intermittent", "spectral"]


@dataclass(frozen=True)
class Fault:
    """One fault kind.

    Attributes:
        name: the kind as written in `synth_clips.csv`.
        family: "timing", "intermittent" or "spectral".
        story: what breaks and what it sounds like.
        strength: the size of the change at `anomaly_level=1` (times each machine type's gain), in
            the unit `unit` names; the level scales it linearly (0 = no fault).
        unit: what `strength` measures.
    """

    name: str
    family: FaultFamily
    story: str
    strength: float
    unit: str


FAULTS: dict[str, Fault] = {f.name: f for f in (
    Fault("missing_stroke", "timing", "contamination jams the plunger (or a compressor reed valve sticks): one "
          "commanded stroke does not happen, its impacts and flow are absent", 1.0,
          "fraction of the stroke removed (capped at 1)"),
    Fault("extra_stroke", "timing", "contact chatter in the controller energises the coil once more: a short "
          "uncommanded stroke in a pause of the pattern", 0.9, "amplitude of the extra stroke, relative to a normal one"),
    Fault("late_stroke", "timing", "stiction or a weak coil: every stroke breaks away late, by a different "
          "amount each time, so the rhythm of the pattern wobbles", 0.08, "largest delay, seconds"),
    Fault("double_stroke", "timing", "a tired return spring or worn stop: the plunger bounces, a second smaller "
          "impact follows each opening and the flow briefly drops", 0.45, "rebound amplitude, relative to the impact"),
    Fault("hesitation", "timing", "a dry or damaged guide: the slide sticks mid-stroke, nearly stops, and jerks "
          "free", 0.2, "duration of the stall, seconds"),
    Fault("rattle", "intermittent", "a loose guard or cover: short bursts of small impacts at random moments, "
          "when a vibration peak lifts it", 0.55, "RMS during a burst, relative to the machine"),
    Fault("contact", "intermittent", "the rotor grazes its housing for a few revolutions: a scrape once per "
          "revolution, then it clears", 0.5, "RMS during the episode, relative to the machine"),
    Fault("chipped_tooth", "intermittent", "one chipped gear tooth: a short impact each time it meshes, once "
          "per revolution (1 tooth in 23: low duty)", 0.13, "RMS over the clip, relative to the machine"),
    Fault("surge", "intermittent", "a load spike or supply sag: the machine slows for a few hundred "
          "milliseconds and recovers", 0.05, "relative speed drop"),
    Fault("bearing", "spectral", "outer-race defect: a click per ball pass, ringing a high casing mode",
          0.11, "RMS relative to the machine"),
    Fault("imbalance", "spectral", "mass imbalance: the whole sound swells and fades once per revolution",
          0.15, "modulation depth"),
    Fault("rub", "spectral", "steady light rub: friction hiss at each contact, once per revolution",
          0.12, "RMS relative to the machine"),
    Fault("harmonic", "spectral", "a worn or loose part: one of the strong tonal components drops or moves "
          "off its order", 6.0, "dB removed (or half that, in percent, moved off its order)"),
)}
ANOMALY_KINDS: tuple[AnomalyKind, ...] = tuple(FAULTS)  # type: ignore[assignment]


def strength(kind: str, level: float) -> float:
    """`FAULTS[kind].strength` scaled by `level` (the machine gain times the dataset's anomaly level)."""
    return FAULTS[kind].strength * level


def inside(rng: np.random.Generator, duration_s: float, length_s: float, margin_s: float = 0.05) -> float:
    """A random start time for an episode of `length_s` that fits inside the clip (if it can)."""
    latest = duration_s - length_s - margin_s
    return float(rng.uniform(margin_s, latest)) if latest > margin_s else max(0.0, (duration_s - length_s) / 2)


def rattle(n: int, sample_rate: int, level: float, rng: np.random.Generator, lively: Array | None = None) -> Array:
    """One or two bursts of 6-20 ms spaced impacts ringing a thin panel, RMS `strength` inside a burst.

    `lively` (bool per sample, optional) marks where the machine shakes hard enough to lift the loose
    part: a slide's cover rattles at speed, mid-stroke, not while the slide turns round. Bursts lie
    where it is most true.
    """
    duration = n / sample_rate
    out = np.zeros(n)
    intervals = []
    for _ in range(1 + int(rng.integers(0, 2))):
        length = rng.uniform(0.06, 0.16)
        start = inside(rng, duration, length) if lively is None else _liveliest(rng, lively, length, sample_rate)
        times = start + np.cumsum(rng.uniform(0.006, 0.020, 40))
        times = times[times < start + length]
        hits = place_impulses(n, times * sample_rate, rng.uniform(0.3, 1.0, len(times)))
        panel = rng.uniform(1500.0, 3500.0)
        out += resonator(hits, sample_rate, panel, rng.uniform(80, 200)) + 0.5 * resonator(
            hits, sample_rate, 1.7 * panel, 250.0)
        intervals.append((start, start + length))
    return _scaled_over(out, intervals, sample_rate, strength("rattle", level))


def _liveliest(rng: np.random.Generator, lively: Array, length_s: float, sample_rate: int, margin_s: float = 0.05) -> float:
    """A random start time (s) among those whose `length_s` window is most often `lively`, inside the clip."""
    width = max(int(length_s * sample_rate), 1)
    margin = int(margin_s * sample_rate)
    share = np.convolve(lively.astype(np.float64), np.ones(width) / width, mode="valid")[margin: len(lively) - width - margin]
    if len(share) == 0:
        return inside(rng, len(lively) / sample_rate, length_s, margin_s)
    candidates = np.flatnonzero(share >= share.max() - 1e-9)
    return (margin + int(rng.choice(candidates))) / sample_rate


def contact(phase: Array, sample_rate: int, level: float, rng: np.random.Generator) -> Array:
    """A 0.15-0.3 s episode of once-per-revolution scrapes (friction hiss), RMS `strength` inside it."""
    n = len(phase)
    length = rng.uniform(0.15, 0.3)
    start = inside(rng, n / sample_rate, length)
    hiss = shaped_noise(rng, n, sample_rate, lambda f: highpass(f, 1500.0) * lowpass(f, 6000.0))
    scrape = np.maximum(np.cos(phase + rng.uniform(0, 2 * math.pi)), 0.0) ** 8
    episode = gate(n, sample_rate, [(start, start + length)], 0.02)
    return _scaled_over(hiss * scrape * episode, [(start, start + length)], sample_rate, strength("contact", level))


def chipped_tooth(phase: Array, sample_rate: int, level: float, rng: np.random.Generator,
                  modes: tuple[tuple[float, float, float], ...]) -> Array:
    """An impact once per revolution of the gear, ringing its casing modes and a tooth mode."""
    n = len(phase)
    times = events(phase + rng.uniform(0, 2 * math.pi), 1.0).astype(np.float64)
    hits = place_impulses(n, times, rng.uniform(0.8, 1.0, len(times)))
    ring = resonator(hits, sample_rate, rng.uniform(3000, 4500), 250.0)
    for centre, bandwidth, _ in modes:
        ring += 0.5 * resonator(hits, sample_rate, centre, bandwidth)
    return strength("chipped_tooth", level) * unit(ring)


def bearing(phase: Array, sample_rate: int, level: float, rng: np.random.Generator, defect_order: float) -> Array:
    """Outer-race defect: one click per ball pass, stronger in the load zone, ringing a high mode."""
    n = len(phase)
    hits = events(phase + rng.uniform(0, 2 * math.pi), defect_order * (1 + rng.normal(0, 0.02)))
    hits = np.clip(hits + rng.integers(-8, 9, len(hits)), 0, n - 1)
    clicks = np.zeros(n)
    clicks[hits] = (1 + 0.6 * np.cos(phase[hits])) * rng.uniform(0.7, 1.0, len(hits))
    ring = resonator(clicks, sample_rate, rng.uniform(2500, 5500), rng.uniform(150, 400))
    return strength("bearing", level) * unit(ring)


def rub(phase: Array, sample_rate: int, level: float, rng: np.random.Generator) -> Array:
    """Steady light rub: friction hiss at each once-per-revolution contact, all clip long."""
    n = len(phase)
    hiss = shaped_noise(rng, n, sample_rate, lambda f: highpass(f, 1200.0) * lowpass(f, 6000.0))
    scrape = np.maximum(np.cos(phase + rng.uniform(0, 2 * math.pi)), 0.0) ** 4
    return strength("rub", level) * unit(hiss * scrape)


def _scaled_over(x: Array, intervals: list[tuple[float, float]], sample_rate: int, target_rms: float) -> Array:
    """`x` scaled so that its RMS over the union of `intervals` is `target_rms`."""
    mask = np.zeros(len(x), dtype=bool)
    for start, stop in intervals:
        mask[int(start * sample_rate): max(int(stop * sample_rate), int(start * sample_rate) + 1)] = True
    power = float(np.mean(np.square(x[mask]))) if mask.any() else 0.0
    return x * (target_rms / math.sqrt(power)) if power > 0 else x
