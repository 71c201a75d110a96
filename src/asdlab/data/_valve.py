"""A solenoid valve driven by a controller pattern: a machine that works in time, not in rotation.

A controller energises the coil in a repeating pattern (attribute `pat`) at a supply pressure
(attribute `pres`, bar). Each stroke is an opening impact (the plunger hits its stop and rings the
valve body), the coil's 100 Hz buzz while energised, flow hiss while open, and a closing impact
with a water-hammer thump. The timing faults of `asdlab.data._faults` act on the list of strokes:
a stroke goes missing, an extra one appears, the strokes come late by varying amounts, or the
plunger bounces. The long-term spectrum barely moves; the rhythm does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

from asdlab.data import _faults
from asdlab.data._signal_blocks import (
    db,
    gate,
    harmonic_sum,
    highpass,
    lowpass,
    peaks,
    place_impulses,
    resonator,
    shaped_noise,
    unit,
)

__all__ = ["PATTERNS", "Pattern", "Stroke", "plan_strokes", "render_valve"]

Array = NDArray[np.float64]


@dataclass(frozen=True)
class Pattern:
    """One controller program: the cycle length and, per stroke, (start, open time) in seconds."""

    period_s: float
    strokes: tuple[tuple[float, float], ...]


# Source-domain programs 00-02, target-domain programs 03-04: no pattern is shared between domains. Each
# period divides 2 s, so every default clip holds the same whole number of cycles whatever its start:
# one program repeats exactly, as a real controller's does, and clips of one class stay alike.
PATTERNS: dict[str, Pattern] = {
    "00": Pattern(0.50, ((0.0, 0.12),)),
    "01": Pattern(1.00, ((0.0, 0.10), (0.25, 0.10))),
    "02": Pattern(2 / 3, ((0.0, 0.26),)),
    "03": Pattern(1.00, ((0.0, 0.06), (0.15, 0.06), (0.30, 0.06))),
    "04": Pattern(1.00, ((0.0, 0.06), (0.20, 0.06), (0.40, 0.06))),
}


@dataclass(frozen=True)
class Stroke:
    """One actuation: coil on/off (the command) and plunger open/close (the motion), in seconds."""

    command_on: float
    command_off: float
    opens: float
    closes: float
    size: float = 1.0  # 0 = the plunger does not move
    bounce: float = 0.0  # rebound amplitude relative to the opening impact
    bounce_delay: float = 0.0


def plan_strokes(pattern: Pattern, duration_s: float, rng: np.random.Generator) -> list[Stroke]:
    """The commanded strokes overlapping [0, duration_s), with the controller's small timing jitter."""
    period = pattern.period_s * (1 + rng.normal(0, 0.003))
    offset = rng.uniform(0, period)
    strokes = []
    for cycle in range(-1, int(duration_s / period) + 2):
        for start, length in pattern.strokes:
            on = cycle * period - offset + start + rng.normal(0, 0.002)
            off = on + length * (1 + rng.normal(0, 0.02))
            # the plunger follows the coil after a few milliseconds of magnetic build-up
            strokes.append(Stroke(on, off, on + 0.004, off + 0.008))
    return [s for s in strokes if s.closes > -0.05 and s.command_on < duration_s + 0.05]


def _inner(strokes: list[Stroke], duration_s: float) -> list[int]:
    """Indices of strokes that lie wholly inside the clip with a neighbour on each side (else any inside)."""
    inside = [i for i, s in enumerate(strokes) if 0.02 < s.command_on and s.closes < duration_s - 0.02]
    inner = [i for i in inside if 0 < i < len(strokes) - 1]
    return inner or inside or list(range(len(strokes)))


def _apply_fault(strokes: list[Stroke], fault: str, level: float, duration_s: float,
                 rng: np.random.Generator) -> list[Stroke]:
    """The stroke list a faulty valve performs (see `asdlab.data._faults.FAULTS`)."""
    size = _faults.strength(fault, level)
    if fault == "missing_stroke":
        victim = int(rng.choice(_inner(strokes, duration_s)))
        strokes[victim] = replace(strokes[victim], size=max(0.0, 1.0 - size))
    elif fault == "late_stroke":
        strokes = [replace(s, opens=s.opens + d, closes=s.closes + d)
                   for s, d in zip(strokes, size * rng.uniform(0.3, 1.0, len(strokes)))]
    elif fault == "double_stroke":
        strokes = [replace(s, bounce=size * rng.uniform(0.8, 1.0), bounce_delay=rng.uniform(0.015, 0.035))
                   for s in strokes]
    elif fault == "extra_stroke":
        # in the middle of the longest pause between strokes inside the clip
        pauses = [(b.command_on - a.closes, a.closes, b.command_on) for a, b in zip(strokes, strokes[1:])
                  if a.closes > 0 and b.command_on < duration_s]
        _, after, before = max(pauses) if pauses else (0.0, 0.0, duration_s)
        on = after + (before - after) * rng.uniform(0.35, 0.65) - 0.02
        length = rng.uniform(0.03, 0.05)
        strokes = sorted([*strokes, Stroke(on, on + length, on + 0.004, on + length + 0.008, size=size)],
                         key=lambda s: s.command_on)
    return strokes


@dataclass(frozen=True)
class _Valve:
    """Sound parameters of one valve at one pressure (after the per-clip variation)."""

    open_modes: tuple[tuple[float, float, float], ...]  # body modes struck on opening (Hz, bandwidth Hz, dB)
    close_modes: tuple[tuple[float, float, float], ...]
    open_db: float  # loudest 4 ms of an opening impact over the flow hiss's power
    close_db: float
    hiss_centre_hz: float
    buzz_db: float  # coil buzz and idle noise relative to the flow hiss
    idle_db: float  # manifold and pilot-air noise between strokes


def _valve(pressure_bar: float, rng: np.random.Generator, unit: np.random.Generator) -> _Valve:
    """The valve at `pressure_bar`: its body modes are the unit's own (`unit` draws, the same in every
    recording of it) and move only slightly between recordings (`rng` draws)."""
    def modes(base: tuple[tuple[float, float, float], ...]) -> tuple[tuple[float, float, float], ...]:
        return tuple((c * (1 + unit.normal(0, 0.01) + rng.normal(0, 0.001)), b,
                      g + unit.normal(0, 1.0) + rng.normal(0, 0.2)) for c, b, g in base)

    # the supply pressure wanders from clip to clip around its set point
    pressure_bar *= 1 + rng.normal(0, 0.02)
    return _Valve(
        open_modes=modes(((2100, 90, 0), (3700, 150, -3), (6100, 250, -6), (220, 60, -16))),
        close_modes=modes(((1300, 80, 0), (2600, 140, -2), (4800, 240, -5), (90, 25, -16))),
        # a higher pressure drives the plunger harder, but the flow grows faster than the impacts
        open_db=24.0 - 0.5 * pressure_bar + rng.normal(0, 0.5),
        close_db=21.0 - 0.5 * pressure_bar + rng.normal(0, 0.5),
        hiss_centre_hz=1800 + 350 * pressure_bar,
        buzz_db=-14.0 + rng.normal(0, 0.3),
        idle_db=-24.0 + rng.normal(0, 0.3),
    )


def _strike(hits: Array, modes: tuple[tuple[float, float, float], ...], sample_rate: int, peak_db: float) -> Array:
    """`hits` ringing `modes`, scaled so that a unit hit's loudest 4 ms above 500 Hz (the click, not
    the thump) has power `peak_db` (re 1)."""
    ring = np.zeros(int(0.05 * sample_rate))
    ring[0] = 1.0
    response = sum(db(g) * resonator(ring, sample_rate, c, b) for c, b, g in modes if c > 500)
    window = int(0.004 * sample_rate)
    peak_power = float(np.max(np.convolve(response**2, np.ones(window) / window, mode="valid")))
    gain = db(peak_db) / math.sqrt(peak_power)
    return gain * sum(db(g) * resonator(hits, sample_rate, c, b) for c, b, g in modes)


def render_valve(
    attrs: dict[str, str],
    n: int,
    sample_rate: int,
    rng: np.random.Generator,
    fault: str | None,
    level: float,
    fault_rng: np.random.Generator,
    unit_rng: np.random.Generator,
) -> Array:
    """Dry valve sound, unit RMS. `rng` draws do not depend on the fault; `unit_rng` is the unit's."""
    duration = n / sample_rate
    valve = _valve(float(attrs["pres"]), rng, unit_rng)
    strokes = plan_strokes(PATTERNS[attrs["pat"]], duration, rng)
    strength = rng.uniform(0.9, 1.1, len(strokes))  # stroke-to-stroke spread of the impacts
    flow = shaped_noise(rng, n, sample_rate, lambda f: highpass(f, 800.0) * lowpass(f, 7000.0)
                        * peaks(f, ((valve.hiss_centre_hz, 1500.0, 8.0),)))
    idle = shaped_noise(rng, n, sample_rate, lambda f: lowpass(f, 1500.0, 1))
    buzz_phase = 2 * math.pi * 100.0 * np.arange(n) / sample_rate + rng.uniform(0, 2 * math.pi)
    buzz = unit(harmonic_sum(buzz_phase, (1, 2, 3, 4), db(np.array([0.0, -6.0, -9.0, -14.0])),
                             rng.uniform(0, 2 * math.pi, 4)))
    if fault is not None:
        strokes = _apply_fault(strokes, fault, level, duration, fault_rng)
        strength = np.concatenate([strength, np.ones(len(strokes) - len(strength))])

    scale = sample_rate
    opens = np.array([s.opens for s in strokes]) * scale
    closes = np.array([s.closes for s in strokes]) * scale
    sizes = np.array([s.size for s in strokes]) * strength
    open_hits = place_impulses(n, opens, sizes)
    bounces = [s for s in strokes if s.bounce > 0]
    if bounces:
        open_hits += place_impulses(n, np.array([s.opens + s.bounce_delay for s in bounces]) * scale,
                                    np.array([s.bounce * s.size for s in bounces]))
    close_hits = place_impulses(n, closes, sizes)
    impacts = (_strike(open_hits, valve.open_modes, sample_rate, valve.open_db)
               + _strike(close_hits, valve.close_modes, sample_rate, valve.close_db))

    flow_env = np.zeros(n)
    coil = np.zeros(n)
    for s in strokes:
        if s.size > 0:
            open_gate = gate(n, sample_rate, [(s.opens, s.closes)], 0.008)
            if s.bounce > 0:
                # the rebound briefly re-seats the plunger: the flow drops for a few milliseconds
                dip = gate(n, sample_rate, [(s.opens + s.bounce_delay - 0.004, s.opens + s.bounce_delay + 0.004)],
                           0.003)
                open_gate = open_gate * (1.0 - 0.8 * min(s.bounce, 1.0) * dip)
            flow_env = np.maximum(flow_env, s.size * open_gate)
        coil = np.maximum(coil, gate(n, sample_rate, [(s.command_on, s.command_off)], 0.002))
    sound = impacts + flow * flow_env + db(valve.buzz_db) * buzz * coil + db(valve.idle_db) * idle
    return unit(sound)
