"""Machines built around a rotor: fan, pump, gearbox, slide (a belt-driven carriage that strokes back
and forth), bearing test rig and compressor.

Each type maps its attributes (speed, load, blades, ...) to the parameters of a rotor (`Rotor`);
`render_rotor` turns one rotor and at most one fault (`asdlab.data._faults`) into a dry, unit-RMS
machine sound: tonal orders of the shaft rate, casing resonances and broadband noise, plus impulsive
strokes for the compressor and end-stop knocks for the slide.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from asdlab.data import _faults
from asdlab.data._signal_blocks import (
    db,
    events,
    gate,
    harmonic_sum,
    lowpass,
    peaks,
    place_impulses,
    resonator,
    shaped_noise,
    tilt,
    unit,
    wander,
)

__all__ = ["Rotor", "build_bearing", "build_compressor", "build_fan", "build_gear", "build_pump",
           "build_slider", "render_rotor"]

Array = NDArray[np.float64]


@dataclass(frozen=True)
class Rotor:
    """Physical parameters of one machine in one clip (after the per-clip random variation)."""

    f_rot: float  # shaft rotation rate, Hz
    orders: tuple[float, ...]  # tonal components, in multiples of f_rot
    levels_db: tuple[float, ...]  # their levels relative to the strongest one
    resonances: tuple[tuple[float, float, float], ...]  # casing modes (centre Hz, bandwidth Hz, gain dB)
    broadband_db: float  # broadband machine noise relative to the tonal part
    broadband_lowpass_hz: float
    drift: float = 0.003  # relative speed wander within a clip
    stroke_hz: float = 0.0  # slider: back-and-forth rate; 0 for steady rotation
    stroke_accel: float = 0.2  # slider: fraction of each stroke spent accelerating
    pulses_per_rev: int = 0  # compressor: impulsive strokes per revolution
    pulse_db: float = -120.0
    mic_tilt_db_per_octave: float = 0.0  # microphone position on the machine as a spectral tilt
    defect_order: float = 3.4  # outer-race defect rate in shaft orders (BPFO of a small bearing)


# One physical unit has its own fingerprint: each tonal order and casing mode sits a little off the
# design (manufacturing tolerances, mounting), the same in every recording of that unit (`unit`
# draws). Between recordings of the unit at fixed attributes only temperature, lubrication and load
# move them, by a fraction of that (`clip` draws).
_UNIT_LEVEL_DB, _CLIP_LEVEL_DB = 1.5, 0.3
_UNIT_MODE_SHIFT, _CLIP_MODE_SHIFT = 0.01, 0.001
_UNIT_MODE_DB, _CLIP_MODE_DB = 1.0, 0.2


def _levels(unit: np.random.Generator, clip: np.random.Generator, levels_db: Sequence[float]) -> tuple[float, ...]:
    spread = unit.normal(0.0, _UNIT_LEVEL_DB, len(levels_db)) + clip.normal(0.0, _CLIP_LEVEL_DB, len(levels_db))
    return tuple(float(v) for v in np.asarray(levels_db) + spread)


def _modes(
    unit: np.random.Generator, clip: np.random.Generator, modes: Sequence[tuple[float, float, float]]
) -> tuple[tuple[float, float, float], ...]:
    return tuple(
        (c * (1 + unit.normal(0, _UNIT_MODE_SHIFT) + clip.normal(0, _CLIP_MODE_SHIFT)), b,
         g + unit.normal(0, _UNIT_MODE_DB) + clip.normal(0, _CLIP_MODE_DB))
        for c, b, g in modes
    )


def build_fan(attrs: dict[str, str], rng: np.random.Generator, unit: np.random.Generator) -> Rotor:
    blades = int(attrs["bl"])
    rpm = float(attrs["rpm"])
    orders = (1, 2, 3) + tuple(blades * k for k in range(1, 7))
    levels = (-20, -25, -30, 0, -6, -11, -16, -20, -24)
    return Rotor(
        f_rot=rpm / 60 * (1 + rng.normal(0, 0.001)),
        orders=orders,
        levels_db=_levels(unit, rng, levels),
        resonances=_modes(unit, rng, ((650, 90, 9), (1700, 220, 7), (4200, 600, 5))),
        broadband_db=-3.0 + rpm / 600 + rng.normal(0, 0.3),
        broadband_lowpass_hz=800 * rpm / 1200,
    )


def build_pump(attrs: dict[str, str], rng: np.random.Generator, unit: np.random.Generator) -> Rotor:
    vanes = int(attrs["vn"])
    load = float(attrs["load"])
    orders = (1, 2, 3, 4) + tuple(vanes * k for k in range(1, 5))
    levels = (-12, -16, -21, -25, 0, -8, -14, -20)
    return Rotor(
        f_rot=24.6 * (1 - 0.0006 * load) * (1 + rng.normal(0, 0.001)),  # induction-motor slip grows with load
        orders=orders,
        levels_db=_levels(unit, rng, levels),
        resonances=_modes(unit, rng, ((420, 60, 10), (1250, 150, 8), (3100, 400, 6))),
        broadband_db=-10.0 + 0.12 * (load - 40) + rng.normal(0, 0.3),
        broadband_lowpass_hz=2000,
    )


GEAR_TEETH = 23


def build_gear(attrs: dict[str, str], rng: np.random.Generator, unit: np.random.Generator) -> Rotor:
    volt = float(attrs["volt"])
    weight = float(attrs["wt"])
    orders: list[float] = [1, 2]
    levels: list[float] = [-14, -20]
    side_db = -20 + 0.03 * weight  # heavier load, stronger mesh modulation sidebands
    for k in range(1, 5):
        base = -6.0 * (k - 1)
        mesh = GEAR_TEETH * k
        orders += [mesh, mesh - 1, mesh + 1, mesh - 2, mesh + 2]
        levels += [base, base + side_db, base + side_db, base + side_db - 6, base + side_db - 6]
    return Rotor(
        f_rot=18 * volt * (1 - 0.0003 * weight) * (1 + rng.normal(0, 0.001)),
        orders=tuple(orders),
        levels_db=_levels(unit, rng, levels),
        resonances=_modes(unit, rng, ((2400, 300, 9), (5200, 700, 6))),
        broadband_db=-12.0 + rng.normal(0, 0.3),
        broadband_lowpass_hz=3000,
    )


def build_slider(attrs: dict[str, str], rng: np.random.Generator, unit: np.random.Generator) -> Rotor:
    velocity = float(attrs["vel"])
    accel = float(attrs["ac"])
    return Rotor(
        f_rot=velocity / 10 * (1 + rng.normal(0, 0.001)),  # belt-drive motor, rate proportional to slide speed
        orders=tuple(range(1, 11)),
        levels_db=_levels(unit, rng, (0, -4, -9, -7, -13, -16, -15, -21, -24, -26)),
        resonances=_modes(unit, rng, ((900, 120, 8), (2900, 350, 7))),
        broadband_db=-5.0 + rng.normal(0, 0.3),  # rail friction changes a little with temperature
        broadband_lowpass_hz=5000,
        # a fixed rail length: 400 mm/s makes one back-and-forth per second; the default speeds give a
        # whole number of reversals per 2 s clip, so clips of one class hold the same strokes
        stroke_hz=velocity / 400,
        stroke_accel=max(accel, 0.05),
    )


def build_bearing(attrs: dict[str, str], rng: np.random.Generator, unit: np.random.Generator) -> Rotor:
    velocity = float(attrs["vel"])
    tilt_db = {"A": 0.0, "B": -2.5, "C": -1.2}[attrs["loc"]]  # behind the housing: duller
    return Rotor(
        f_rot=3.0 * velocity * (1 + rng.normal(0, 0.001)),
        orders=(1, 2, 3, 4, 5, 6),
        levels_db=_levels(unit, rng, (0, -5, -9, -14, -18, -22)),
        resonances=_modes(unit, rng, ((1800, 250, 10), (3600, 450, 8), (6300, 900, 5))),
        broadband_db=2.0 + rng.normal(0, 0.3),
        broadband_lowpass_hz=4000,
        mic_tilt_db_per_octave=tilt_db,
        defect_order=3.1,
    )


def build_compressor(attrs: dict[str, str], rng: np.random.Generator, unit: np.random.Generator) -> Rotor:
    cylinders = int(attrs["cyl"])
    pressure = float(attrs["pres"])
    return Rotor(
        f_rot=(24 - 0.4 * pressure) * (1 + rng.normal(0, 0.001)),
        orders=tuple(range(1, 13)),
        levels_db=_levels(unit, rng, [-2.5 * k for k in range(12)]),
        resonances=_modes(unit, rng, ((900, 110, 9), (2600, 320, 8))),
        broadband_db=-9.0 + rng.normal(0, 0.3),
        broadband_lowpass_hz=2500,
        pulses_per_rev=cylinders,
        pulse_db=-6.0 + 0.5 * pressure + rng.normal(0, 0.3),
    )


# --------------------------------------------------------------------------------------------
# Rendering


def _stroke(t: Array, rate_hz: float, accel: float, offset: float) -> Array:
    """Trapezoidal back-and-forth velocity in [-1, 1] (forward half a cycle, back the other half)."""
    u = (t * rate_hz + offset) % 1.0
    w = (u % 0.5) / 0.5
    ramp = np.clip(np.minimum(w, 1.0 - w) / accel, 0.0, 1.0)
    return np.where(u < 0.5, ramp, -ramp)


def _hesitate(velocity: Array, sample_rate: int, level: float, rng: np.random.Generator,
              cruise_s: float) -> tuple[Array, float]:
    """The slide sticks once mid-stroke: |velocity| falls to 15 % for the stall, then jerks back.

    The stall lasts `strength` seconds, at most 60 % of the stroke's constant-speed part (`cruise_s`),
    and lies inside one constant-speed part, away from the clip's edges. Returns the new velocity
    and the time (s) the slide breaks free.
    """
    n = len(velocity)
    length = min(_faults.strength("hesitation", level), 0.6 * cruise_s)
    half = int(length / 2 * sample_rate)
    cruising = np.abs(velocity) > 0.99
    cruising[: half + int(0.05 * sample_rate)] = False
    cruising[n - half - int(0.05 * sample_rate):] = False
    # centres whose whole stall is at cruising speed: the run of cruising samples around them is long enough
    ok = np.convolve(cruising.astype(float), np.ones(2 * half + 1), mode="same") >= 2 * half + 1 - 0.5
    candidates = np.flatnonzero(ok)
    centre = int(rng.choice(candidates)) if len(candidates) else int(np.argmax(np.abs(velocity)))
    start = centre / sample_rate - length / 2
    stall = gate(n, sample_rate, [(start, start + length)], 0.03)
    return velocity * (1.0 - 0.85 * stall), start + length


def _surge(n: int, sample_rate: int, level: float, rng: np.random.Generator) -> Array:
    """Relative speed factor with one 0.25-0.45 s dip of `strength` (a load spike, then recovery)."""
    length = rng.uniform(0.25, 0.45)
    start = _faults.inside(rng, n / sample_rate, length)
    return 1.0 - _faults.strength("surge", level) * gate(n, sample_rate, [(start, start + length)], 0.1)


# RMS of one end-stop knock spread over a second: knocks keep their loudness however many a clip holds
_KNOCK_RMS = 0.00125


def render_rotor(
    rotor: Rotor,
    n: int,
    sample_rate: int,
    rng: np.random.Generator,
    fault: str | None,
    level: float,
    fault_rng: np.random.Generator,
) -> Array:
    """Dry machine sound (unit normal RMS) plus the fault, if any. `rng` draws do not depend on the fault."""
    t = np.arange(n) / sample_rate
    speed = 1.0 + rotor.drift * wander(rng, n, sample_rate, 0.6)
    envelope = np.ones(n)
    velocity = None
    freed_at = None
    if rotor.stroke_hz > 0:
        velocity = _stroke(t, rotor.stroke_hz, rotor.stroke_accel, rng.uniform())
        if fault == "hesitation":
            cruise_s = (1 - 2 * rotor.stroke_accel) * 0.5 / rotor.stroke_hz
            velocity, freed_at = _hesitate(velocity, sample_rate, level, fault_rng, cruise_s)
        speed = speed * (0.12 + 0.88 * np.abs(velocity))
        envelope = 0.25 + 0.75 * np.abs(velocity)
    if fault == "surge":
        speed = speed * _surge(n, sample_rate, level, fault_rng)
    phase = 2 * math.pi * np.cumsum(rotor.f_rot * speed) / sample_rate + rng.uniform(0, 2 * math.pi)
    tone_phases = rng.uniform(0, 2 * math.pi, len(rotor.orders))

    orders = list(rotor.orders)
    levels = list(rotor.levels_db)
    if fault == "harmonic":
        # one of the three strongest components above 100 Hz (below, hum masks it) goes missing
        # or moves off its order
        audible = [k for k in np.argsort(levels)[::-1] if orders[k] * rotor.f_rot >= 100.0] or list(range(len(orders)))
        target = int(fault_rng.choice(audible[:3]))
        if fault_rng.uniform() < 0.5:
            levels[target] -= _faults.strength("harmonic", level)
        else:
            orders[target] *= 1.0 + _faults.strength("harmonic", level) / 200.0

    nyquist_guard = 0.45 * sample_rate / (rotor.f_rot * float(np.max(speed)))
    keep = [k for k, order in enumerate(orders) if order < nyquist_guard]
    tonal = harmonic_sum(phase, [orders[k] for k in keep], [db(levels[k]) for k in keep],
                         [tone_phases[k] for k in keep])
    tonal = unit(tonal) * envelope

    broadband = shaped_noise(
        rng, n, sample_rate, lambda f: lowpass(f, rotor.broadband_lowpass_hz) * peaks(f, rotor.resonances)
    )
    machine = tonal + db(rotor.broadband_db) * broadband * envelope

    if rotor.pulses_per_rev:
        kicks = np.zeros(n)
        strokes = events(phase, rotor.pulses_per_rev)
        kicks[strokes] = 1.0 + 0.1 * rng.standard_normal()
        if fault == "missing_stroke" and len(strokes):
            # an inner stroke, so that the gap it leaves is inside the clip
            inner = strokes[1:-1] if len(strokes) > 2 else strokes
            kicks[int(fault_rng.choice(inner))] *= 1.0 - min(_faults.strength("missing_stroke", level), 1.0)
        ringing = sum(resonator(kicks, sample_rate, c, b) * db(g) for c, b, g in rotor.resonances)
        machine += db(rotor.pulse_db) * unit(ringing)
    if velocity is not None:
        # end-stop knocks where the slide reverses; a stuck slide also knocks when it jerks free
        knocks = np.zeros(n)
        knocks[np.flatnonzero(np.diff(np.signbit(velocity)))] = 1.0
        if freed_at is not None:
            knocks += place_impulses(n, np.array([freed_at * sample_rate]), 1.0)
        if knocks.any():
            machine += 0.5 * resonator(knocks, sample_rate, rotor.resonances[0][0], 60.0) / _KNOCK_RMS

    # load and supply fluctuations: a slow level wander of a few dB, deeper in some clips than others
    machine = unit(machine * (1.0 + rng.uniform(0.0, 0.2) * wander(rng, n, sample_rate, 0.5)))
    lively = None if velocity is None else np.abs(velocity) > 0.9  # a slide at speed, not turning round
    machine = machine + _added_fault(fault, rotor, phase, machine, sample_rate, level, fault_rng, lively) * envelope
    if rotor.mic_tilt_db_per_octave:
        spectrum = np.fft.rfft(machine)
        spectrum *= tilt(np.fft.rfftfreq(n, 1.0 / sample_rate), rotor.mic_tilt_db_per_octave, 200.0)
        machine = np.fft.irfft(spectrum, n)
    return machine


def _added_fault(
    fault: str | None,
    rotor: Rotor,
    phase: Array,
    machine: Array,
    sample_rate: int,
    level: float,
    rng: np.random.Generator,
    lively: Array | None = None,
) -> Array | float:
    """The additive part of a fault, relative to the (unit-RMS) normal machine sound; 0 for the others."""
    if fault == "rattle":
        return _faults.rattle(len(phase), sample_rate, level, rng, lively)
    if fault == "contact":
        return _faults.contact(phase, sample_rate, level, rng)
    if fault == "chipped_tooth":
        return _faults.chipped_tooth(phase, sample_rate, level, rng, rotor.resonances)
    if fault == "bearing":
        return _faults.bearing(phase, sample_rate, level, rng, rotor.defect_order)
    if fault == "rub":
        return _faults.rub(phase, sample_rate, level, rng)
    if fault == "imbalance":
        # once-per-revolution amplitude modulation of the whole machine sound
        return _faults.strength("imbalance", level) * np.cos(phase + rng.uniform(0, 2 * math.pi)) * machine
    return 0.0
