"""Sound sources of the synthetic machines: rotating-machine tones, casing resonances, factory noise
and four kinds of fault.

Each machine type maps its attributes (speed, load, model) to the parameters of a rotor
(`_Rotor`); `render_clip` turns one rotor, one background and at most one fault into a
level-normalised waveform. Used by `asdlab.data.synth`; the domain shift follows DCASE.md
("Dataset layout"): the target domain has other attribute values and other background noise.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from scipy import signal

from asdlab.errors import ConfigError

__all__ = [
    "ANOMALY_KINDS",
    "AnomalyKind",
    "MACHINE_TYPES",
    "MachineType",
    "TARGET_RMS",
    "attribute_combinations",
    "render_clip",
]

AnomalyKind = Literal["bearing", "imbalance", "rub", "harmonic"]
ANOMALY_KINDS: tuple[AnomalyKind, ...] = ("bearing", "imbalance", "rub", "harmonic")

# Every clip leaves at -26 dBFS RMS, so loudness never tells normal from anomalous; the
# headroom (crest factor 20) keeps bearing clicks from clipping at anomaly levels up to ~5.
TARGET_RMS = 10.0 ** (-26.0 / 20.0)

# Machine-to-background power ratio (dB) per domain; the target domain is also noisier.
_SNR_DB = {"source": (3.0, 6.0), "target": (2.0, 5.0)}

# Fault strengths at anomaly_level=1 before each type's `fault_gains`: added RMS relative to the
# normal machine sound, AM depth, dB removed from a harmonic, relative shift of a harmonic. Tuned
# so that the reference detector (log-mel mean+std per bin, cosine 1-NN per domain, min over
# domains) scores about 0.72 official on the default dataset, with every machine in 0.6-0.85.
_BEARING_RMS = 0.2
_RUB_RMS = 0.2
_IMBALANCE_DEPTH = 0.4
_HARMONIC_DROP_DB = 20.0
_HARMONIC_SHIFT = 0.12


def _rms(x: NDArray[np.float64]) -> float:
    return float(np.sqrt(np.mean(np.square(x)) + 1e-30))


def _unit(x: NDArray[np.float64]) -> NDArray[np.float64]:
    return x / _rms(x)


def _db(value: float) -> float:
    return 10.0 ** (value / 20.0)


def _wander(rng: np.random.Generator, n: int, sample_rate: int, rate_hz: float, terms: int = 4) -> NDArray[np.float64]:
    """Slow zero-mean wander of roughly unit amplitude: a few random low-frequency sinusoids."""
    # computed on a coarse grid (every 32 samples, far above `rate_hz`) and interpolated: 30x cheaper
    step = 32
    coarse_t = np.arange(n // step + 2) * (step / sample_rate)
    freqs = rng.uniform(0.3, 1.0, terms) * rate_hz
    phases = rng.uniform(0.0, 2 * math.pi, terms)
    coarse = np.sin(2 * math.pi * freqs[:, None] * coarse_t[None, :] + phases[:, None]).sum(axis=0)
    return np.interp(np.arange(n) / sample_rate, coarse_t, coarse) / math.sqrt(terms / 2)


def _shaped_noise(
    rng: np.random.Generator, n: int, sample_rate: int, magnitude: Callable[[NDArray[np.float64]], NDArray[np.float64]]
) -> NDArray[np.float64]:
    """Gaussian noise with amplitude spectrum `magnitude(freq_hz)`, unit RMS."""
    bins = n // 2 + 1
    spectrum = rng.standard_normal(bins) + 1j * rng.standard_normal(bins)
    freqs = np.fft.rfftfreq(n, 1.0 / sample_rate)
    return _unit(np.fft.irfft(spectrum * magnitude(freqs), n))


def _tilt(freqs: NDArray[np.float64], db_per_octave: float, floor_hz: float = 30.0) -> NDArray[np.float64]:
    # amplitude slope of `db_per_octave`: 10**(s/20) per doubling = f**(s / 20log10(2))
    return (np.maximum(freqs, floor_hz) / 1000.0) ** (db_per_octave / 6.0206)


def _lowpass(freqs: NDArray[np.float64], cutoff_hz: float, order: int = 2) -> NDArray[np.float64]:
    return 1.0 / np.sqrt(1.0 + (freqs / cutoff_hz) ** (2 * order))


def _highpass(freqs: NDArray[np.float64], cutoff_hz: float, order: int = 2) -> NDArray[np.float64]:
    return 1.0 / np.sqrt(1.0 + (cutoff_hz / np.maximum(freqs, 1e-3)) ** (2 * order))


def _peaks(freqs: NDArray[np.float64], resonances: Sequence[tuple[float, float, float]]) -> NDArray[np.float64]:
    """1 + Lorentzian peaks; each resonance is (centre Hz, bandwidth Hz, gain dB above the floor)."""
    out = np.ones_like(freqs)
    for centre, bandwidth, gain_db in resonances:
        out += (_db(gain_db) - 1.0) / (1.0 + ((freqs - centre) / (bandwidth / 2)) ** 2)
    return out


def _resonator(x: NDArray[np.float64], sample_rate: int, centre_hz: float, bandwidth_hz: float) -> NDArray[np.float64]:
    """Two-pole resonator: each impulse in `x` rings as a damped sinusoid (a struck casing mode)."""
    radius = math.exp(-math.pi * bandwidth_hz / sample_rate)
    theta = 2 * math.pi * centre_hz / sample_rate
    return signal.lfilter([1.0 - radius], [1.0, -2 * radius * math.cos(theta), radius * radius], x)


def _harmonic_sum(
    phase: NDArray[np.float64], orders: Sequence[float], amplitudes: Sequence[float], phases: Sequence[float]
) -> NDArray[np.float64]:
    """sum_k a_k sin(order_k * phase + phi_k): integer orders through a one-cycle wavetable (O(S)
    whatever their number; linear-interpolation error below -60 dB), other orders directly."""
    size = 4096
    grid = np.arange(size) * (2 * math.pi / size)
    table = np.zeros(size + 1)
    out = np.zeros_like(phase)
    for order, amplitude, p in zip(orders, amplitudes, phases):
        if float(order).is_integer():
            table[:size] += amplitude * np.sin(order * grid + p)
        else:
            out += amplitude * np.sin(order * phase + p)
    table[size] = table[0]
    position = np.mod(phase, 2 * math.pi) * (size / (2 * math.pi))
    return out + np.interp(position, np.arange(size + 1), table)


def _events(phase: NDArray[np.float64], per_cycle: float) -> NDArray[np.intp]:
    """Sample indices where `per_cycle * phase / 2pi` crosses an integer (one event per crossing)."""
    count = np.floor(phase * per_cycle / (2 * math.pi))
    return np.flatnonzero(np.diff(count) > 0) + 1


# --------------------------------------------------------------------------------------------
# Machine types


@dataclass(frozen=True)
class _Rotor:
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
    mic_tilt_db_per_octave: float = 0.0  # microphone position as a spectral tilt
    defect_order: float = 3.4  # outer-race defect rate in shaft orders (BPFO of a small bearing)


@dataclass(frozen=True)
class MachineType:
    """One synthetic machine type: its attribute grid per domain and its sound.

    Attributes:
        name: DCASE machine-type name (no `_`).
        attribute_keys: attribute names, in file-name order.
        source_values: per key, the values the source domain uses.
        target_values: per key, the values the target domain uses (at least one key differs).
        build: attributes + per-clip generator -> rotor parameters.
        fault_gains: strength of each fault (`ANOMALY_KINDS` order) relative to the common scale, so
            that each kind is about equally hard to hear on this machine.
    """

    name: str
    attribute_keys: tuple[str, ...]
    source_values: tuple[tuple[str, ...], ...]
    target_values: tuple[tuple[str, ...], ...]
    build: Callable[[dict[str, str], np.random.Generator], _Rotor]
    fault_gains: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)


def _jitter_levels(rng: np.random.Generator, levels_db: Sequence[float], sigma_db: float = 0.8) -> tuple[float, ...]:
    return tuple(float(v) for v in np.asarray(levels_db) + rng.normal(0.0, sigma_db, len(levels_db)))


def _jitter_modes(
    rng: np.random.Generator, modes: Sequence[tuple[float, float, float]]
) -> tuple[tuple[float, float, float], ...]:
    return tuple((c * (1 + rng.normal(0, 0.01)), b, g + rng.normal(0, 0.5)) for c, b, g in modes)


def _fan(attrs: dict[str, str], rng: np.random.Generator) -> _Rotor:
    blades = int(attrs["bl"])
    rpm = float(attrs["rpm"])
    orders = (1, 2, 3) + tuple(blades * k for k in range(1, 7))
    levels = (-20, -25, -30, 0, -6, -11, -16, -20, -24)
    return _Rotor(
        f_rot=rpm / 60 * (1 + rng.normal(0, 0.004)),
        orders=orders,
        levels_db=_jitter_levels(rng, levels),
        resonances=_jitter_modes(rng, ((650, 90, 9), (1700, 220, 7), (4200, 600, 5))),
        broadband_db=-3.0 + rpm / 600 + rng.normal(0, 0.5),
        broadband_lowpass_hz=800 * rpm / 1200,
    )


def _pump(attrs: dict[str, str], rng: np.random.Generator) -> _Rotor:
    vanes = int(attrs["vn"])
    load = float(attrs["load"])
    orders = (1, 2, 3, 4) + tuple(vanes * k for k in range(1, 5))
    levels = (-12, -16, -21, -25, 0, -8, -14, -20)
    return _Rotor(
        f_rot=24.6 * (1 - 0.0006 * load) * (1 + rng.normal(0, 0.004)),  # induction-motor slip grows with load
        orders=orders,
        levels_db=_jitter_levels(rng, levels),
        resonances=_jitter_modes(rng, ((420, 60, 10), (1250, 150, 8), (3100, 400, 6))),
        broadband_db=-10.0 + 0.12 * (load - 40) + rng.normal(0, 0.5),
        broadband_lowpass_hz=2000,
    )


def _gear(attrs: dict[str, str], rng: np.random.Generator) -> _Rotor:
    volt = float(attrs["volt"])
    weight = float(attrs["wt"])
    teeth = 23
    orders: list[float] = [1, 2]
    levels: list[float] = [-14, -20]
    side_db = -20 + 0.03 * weight  # heavier load, stronger mesh modulation sidebands
    for k in range(1, 5):
        base = -6.0 * (k - 1)
        orders += [teeth * k, teeth * k - 1, teeth * k + 1, teeth * k - 2, teeth * k + 2]
        levels += [base, base + side_db, base + side_db, base + side_db - 6, base + side_db - 6]
    return _Rotor(
        f_rot=18 * volt * (1 - 0.0003 * weight) * (1 + rng.normal(0, 0.004)),
        orders=tuple(orders),
        levels_db=_jitter_levels(rng, levels),
        resonances=_jitter_modes(rng, ((2400, 300, 9), (5200, 700, 6))),
        broadband_db=-12.0 + rng.normal(0, 0.5),
        broadband_lowpass_hz=3000,
    )


def _slider(attrs: dict[str, str], rng: np.random.Generator) -> _Rotor:
    velocity = float(attrs["vel"])
    accel = float(attrs["ac"])
    return _Rotor(
        f_rot=velocity / 10 * (1 + rng.normal(0, 0.004)),  # belt-drive motor, rate proportional to slide speed
        orders=tuple(range(1, 11)),
        levels_db=_jitter_levels(rng, (0, -4, -9, -7, -13, -16, -15, -21, -24, -26)),
        resonances=_jitter_modes(rng, ((900, 120, 8), (2900, 350, 7))),
        broadband_db=-5.0 + rng.normal(0, 0.5),
        broadband_lowpass_hz=5000,
        stroke_hz=velocity / 600,
        stroke_accel=max(accel, 0.05),
    )


def _bearing(attrs: dict[str, str], rng: np.random.Generator) -> _Rotor:
    velocity = float(attrs["vel"])
    tilt = {"A": 0.0, "B": -2.5}[attrs["loc"]]  # location B is behind the housing: duller
    return _Rotor(
        f_rot=3.0 * velocity * (1 + rng.normal(0, 0.004)),
        orders=(1, 2, 3, 4, 5, 6),
        levels_db=_jitter_levels(rng, (0, -5, -9, -14, -18, -22)),
        resonances=_jitter_modes(rng, ((1800, 250, 10), (3600, 450, 8), (6300, 900, 5))),
        broadband_db=2.0 + rng.normal(0, 0.5),
        broadband_lowpass_hz=4000,
        mic_tilt_db_per_octave=tilt,
        defect_order=3.1,
    )


def _compressor(attrs: dict[str, str], rng: np.random.Generator) -> _Rotor:
    cylinders = int(attrs["cyl"])
    pressure = float(attrs["pres"])
    return _Rotor(
        f_rot=(24 - 0.4 * pressure) * (1 + rng.normal(0, 0.004)),
        orders=tuple(range(1, 13)),
        levels_db=_jitter_levels(rng, [-2.5 * k for k in range(12)]),
        resonances=_jitter_modes(rng, ((900, 110, 9), (2600, 320, 8))),
        broadband_db=-9.0 + rng.normal(0, 0.5),
        broadband_lowpass_hz=2500,
        pulses_per_rev=cylinders,
        pulse_db=-6.0 + 0.5 * pressure + rng.normal(0, 1.0),
    )


MACHINE_TYPES: dict[str, MachineType] = {
    m.name: m
    for m in (
        # name, keys, source values, target values, sound, fault gains (bearing, imbalance, rub, harmonic)
        MachineType("SynFan", ("bl", "rpm"), (("5", "7"), ("1200", "1440")), (("5", "7"), ("1800",)),
                    _fan, (0.6, 1.0, 1.0, 0.7)),
        MachineType("SynPump", ("vn", "load"), (("5", "6"), ("40", "60")), (("5", "6"), ("85",)),
                    _pump, (0.7, 1.0, 1.0, 1.0)),
        MachineType("SynGear", ("volt", "wt"), (("1.0", "1.3"), ("0", "100")), (("1.0", "1.3"), ("250",)),
                    _gear, (0.6, 1.0, 1.4, 0.5)),
        MachineType("SynSlider", ("vel", "ac"), (("300", "500"), ("0.1", "0.3")), (("800",), ("0.1", "0.3")),
                    _slider, (1.3, 1.8, 2.6, 1.3)),
        MachineType("SynBearing", ("vel", "loc"), (("6", "10"), ("A", "B")), (("16",), ("A", "B")),
                    _bearing, (2.0, 1.8, 2.5, 2.0)),
        MachineType("SynCompressor", ("cyl", "pres"), (("1", "2"), ("4", "6")), (("1", "2"), ("9",)),
                    _compressor, (0.6, 1.8, 1.3, 3.0)),
    )
}


def attribute_combinations(machine: str, domain: str) -> list[tuple[tuple[str, str], ...]]:
    """Every attribute assignment of `machine` in `domain`, as ((key, value), ...) tuples."""
    mtype = MACHINE_TYPES[machine]
    values = mtype.source_values if domain == "source" else mtype.target_values
    return [tuple(zip(mtype.attribute_keys, combo)) for combo in itertools.product(*values)]


# --------------------------------------------------------------------------------------------
# Rendering


def _stroke(t: NDArray[np.float64], rate_hz: float, accel: float, offset: float) -> NDArray[np.float64]:
    """Trapezoidal back-and-forth velocity in [-1, 1] (forward half a cycle, back the other half)."""
    u = (t * rate_hz + offset) % 1.0
    w = (u % 0.5) / 0.5
    ramp = np.clip(np.minimum(w, 1.0 - w) / accel, 0.0, 1.0)
    return np.where(u < 0.5, ramp, -ramp)


def _render_rotor(
    rotor: _Rotor,
    n: int,
    sample_rate: int,
    rng: np.random.Generator,
    anomaly: AnomalyKind | None,
    level: float,
    fault_rng: np.random.Generator,
) -> NDArray[np.float64]:
    """Machine sound (unit normal RMS) plus the fault, if any. `rng` draws do not depend on the fault."""
    t = np.arange(n) / sample_rate
    speed = 1.0 + rotor.drift * _wander(rng, n, sample_rate, 0.6)
    envelope = np.ones(n)
    velocity = None
    if rotor.stroke_hz > 0:
        velocity = _stroke(t, rotor.stroke_hz, rotor.stroke_accel, rng.uniform())
        speed = speed * (0.12 + 0.88 * np.abs(velocity))
        envelope = 0.25 + 0.75 * np.abs(velocity)
    phase = 2 * math.pi * np.cumsum(rotor.f_rot * speed) / sample_rate + rng.uniform(0, 2 * math.pi)
    tone_phases = rng.uniform(0, 2 * math.pi, len(rotor.orders))

    orders = list(rotor.orders)
    levels = list(rotor.levels_db)
    if anomaly == "harmonic":
        # one of the three strongest components above 100 Hz (below, hum masks it) goes missing
        # or moves off its order
        audible = [k for k in np.argsort(levels)[::-1] if orders[k] * rotor.f_rot >= 100.0] or list(range(len(orders)))
        target = int(fault_rng.choice(audible[:3]))
        if fault_rng.uniform() < 0.5:
            levels[target] -= _HARMONIC_DROP_DB * level
        else:
            orders[target] *= 1.0 + _HARMONIC_SHIFT * level

    nyquist_guard = 0.45 * sample_rate / (rotor.f_rot * float(np.max(speed)))
    keep = [k for k, order in enumerate(orders) if order < nyquist_guard]
    tonal = _harmonic_sum(
        phase, [orders[k] for k in keep], [_db(levels[k]) for k in keep], [tone_phases[k] for k in keep]
    )
    tonal = _unit(tonal) * envelope

    broadband = _shaped_noise(
        rng, n, sample_rate, lambda f: _lowpass(f, rotor.broadband_lowpass_hz) * _peaks(f, rotor.resonances)
    )
    machine = tonal + _db(rotor.broadband_db) * broadband * envelope

    if rotor.pulses_per_rev:
        kicks = np.zeros(n)
        kicks[_events(phase, rotor.pulses_per_rev)] = 1.0 + 0.1 * rng.standard_normal()
        ringing = sum(_resonator(kicks, sample_rate, c, b) * _db(g) for c, b, g in rotor.resonances)
        machine += _db(rotor.pulse_db) * _unit(ringing)
    if velocity is not None:
        # end-stop knocks where the slide reverses
        knocks = np.zeros(n)
        knocks[np.flatnonzero(np.diff(np.signbit(velocity)))] = 1.0
        if knocks.any():
            machine += 0.3 * _unit(_resonator(knocks, sample_rate, rotor.resonances[0][0], 60.0))

    # load and supply fluctuations: a slow level wander of a few dB, deeper in some clips than others
    machine = _unit(machine * (1.0 + rng.uniform(0.0, 0.2) * _wander(rng, n, sample_rate, 0.5)))
    if anomaly is not None and anomaly != "harmonic":
        machine = machine + _fault(anomaly, rotor, phase, n, sample_rate, level, fault_rng, machine) * envelope
    if rotor.mic_tilt_db_per_octave:
        spectrum = np.fft.rfft(machine)
        spectrum *= _tilt(np.fft.rfftfreq(n, 1.0 / sample_rate), rotor.mic_tilt_db_per_octave, 200.0)
        machine = np.fft.irfft(spectrum, n)
    return machine


def _fault(
    kind: AnomalyKind,
    rotor: _Rotor,
    phase: NDArray[np.float64],
    n: int,
    sample_rate: int,
    level: float,
    rng: np.random.Generator,
    machine: NDArray[np.float64],
) -> NDArray[np.float64]:
    """The additive part of a fault, scaled relative to the (unit-RMS) normal machine sound."""
    if kind == "bearing":
        # outer-race defect: one click per ball pass, stronger in the load zone, ringing a high mode
        hits = _events(phase + rng.uniform(0, 2 * math.pi), rotor.defect_order * (1 + rng.normal(0, 0.02)))
        hits = np.clip(hits + rng.integers(-8, 9, len(hits)), 0, n - 1)
        clicks = np.zeros(n)
        clicks[hits] = (1 + 0.6 * np.cos(phase[hits])) * rng.uniform(0.7, 1.0, len(hits))
        ring = _resonator(clicks, sample_rate, rng.uniform(2500, 5500), rng.uniform(150, 400))
        return _BEARING_RMS * level * _unit(ring)
    if kind == "imbalance":
        # once-per-revolution amplitude modulation of the whole machine sound
        depth = _IMBALANCE_DEPTH * level
        return depth * np.cos(phase + rng.uniform(0, 2 * math.pi)) * machine
    assert kind == "rub", kind  # "harmonic" changes the tone parameters instead
    # friction bursts: broadband hiss at each contact, in a few separate episodes
    hiss = _shaped_noise(rng, n, sample_rate, lambda f: _highpass(f, 1200.0) * _lowpass(f, 6000.0))
    contact = np.maximum(np.cos(phase + rng.uniform(0, 2 * math.pi)), 0.0) ** 4
    episodes = _wander(rng, n, sample_rate, 2.0) > rng.uniform(-0.5, 0.5)
    gated = hiss * contact * episodes
    if not gated.any():
        gated = hiss * contact
    return _RUB_RMS * level * _unit(gated)


@dataclass(frozen=True)
class _NoiseProfile:
    """Factory background of one domain; levels in dB relative to the broadband floor."""

    tilt_db_per_octave: float
    mains_hz: float
    hum_db: float
    distant_db: float | None  # a machine down the hall, cycling between idle and working
    babble_db: float | None  # voices


_NOISE = {
    "source": _NoiseProfile(-2.5, 50.0, -12.0, -4.0, None),
    "target": _NoiseProfile(-1.0, 60.0, -14.0, -16.0, -3.0),
}


def _background(domain: str, n: int, sample_rate: int, rng: np.random.Generator) -> NDArray[np.float64]:
    """Factory noise of `domain` (see `_NOISE`), unit RMS, with a slow level wander."""
    profile = _NOISE[domain]
    mix = _shaped_noise(rng, n, sample_rate, lambda f: _tilt(f, profile.tilt_db_per_octave))

    t = np.arange(n) / sample_rate
    hum_levels = _db(-4.0 * np.arange(1, 9) + rng.normal(0, 2.0, 8))
    hum = _harmonic_sum(2 * math.pi * profile.mains_hz * t, range(1, 9), hum_levels, rng.uniform(0, 2 * math.pi, 8))
    mix += _db(profile.hum_db + rng.normal(0, 1.0)) * _unit(hum)

    if profile.distant_db is not None:
        f0 = rng.uniform(40.0, 46.0)
        phase = 2 * math.pi * f0 * np.cumsum(1 + 0.01 * _wander(rng, n, sample_rate, 0.3)) / sample_rate
        tones = _harmonic_sum(phase, range(1, 16), _db(-3.0 * np.arange(1, 16)), rng.uniform(0, 2 * math.pi, 15))
        distant = _unit(tones)
        distant += 0.7 * _shaped_noise(rng, n, sample_rate, lambda f: _lowpass(f, 300.0, 3))
        distant *= np.maximum(1.0 + rng.uniform(0.2, 0.8) * _wander(rng, n, sample_rate, 1.5), 0.1)
        mix += _db(profile.distant_db + rng.normal(0, 1.0)) * _unit(distant)

    if profile.babble_db is not None:
        babble = np.zeros(n)
        for _ in range(3):
            formants = ((rng.uniform(300, 900), 150.0, 14.0), (rng.uniform(1000, 2600), 300.0, 10.0))
            voice = _shaped_noise(
                rng, n, sample_rate, lambda f: _highpass(f, 150.0) * _lowpass(f, 3500.0) * _peaks(f, formants)
            )
            babble += voice * np.maximum(_wander(rng, n, sample_rate, 5.0, terms=6), 0.0) ** 1.5  # syllables
        mix += _db(profile.babble_db + rng.normal(0, 1.0)) * _unit(babble)

    return _unit(mix * (1.0 + rng.uniform(0.0, 0.25) * _wander(rng, n, sample_rate, 0.4)))


def render_clip(
    machine: str,
    attributes: Sequence[tuple[str, str]],
    *,
    domain: Literal["source", "target"],
    anomaly: AnomalyKind | None,
    seed: int | Sequence[int],
    duration_s: float,
    anomaly_level: float = 1.0,
    sample_rate: int = 16000,
) -> NDArray[np.float32]:
    """Synthesise one clip: machine (with optional fault) in domain background, at `TARGET_RMS`.

    Args:
        machine: a key of `MACHINE_TYPES`.
        attributes: the clip's true ((key, value), ...) attributes.
        domain: selects the background noise and SNR range.
        anomaly: fault to add, or None for a normal clip.
        seed: entropy for `numpy.random.SeedSequence`; the fault has its own stream, so the same
            seed with and without a fault gives the same machine and background.
        duration_s: clip length, seconds.
        anomaly_level: fault strength; 1.0 is the tuned default, 0 adds nothing.
        sample_rate: Hz.

    Returns:
        Float32 waveform, shape (S,), RMS equal to `TARGET_RMS`.

    Raises:
        ConfigError: unknown machine type or anomaly kind, or attributes with other keys.
    """
    if machine not in MACHINE_TYPES:
        raise ConfigError(f"machine: unknown machine type {machine!r}; choose from {', '.join(MACHINE_TYPES)}")
    if anomaly is not None and anomaly not in ANOMALY_KINDS:
        raise ConfigError(f"anomaly: unknown kind {anomaly!r}; choose from {', '.join(ANOMALY_KINDS)}")
    mtype = MACHINE_TYPES[machine]
    if sorted(key for key, _ in attributes) != sorted(mtype.attribute_keys):
        raise ConfigError(f"attributes: {machine} needs the keys {', '.join(mtype.attribute_keys)}, got {attributes!r}")
    machine_rng, fault_rng, noise_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))
    n = int(round(duration_s * sample_rate))
    rotor = mtype.build(dict(attributes), machine_rng)
    level = anomaly_level * (mtype.fault_gains[ANOMALY_KINDS.index(anomaly)] if anomaly else 0.0)
    sound = _render_rotor(rotor, n, sample_rate, machine_rng, anomaly, level, fault_rng)
    noise = _background(domain, n, sample_rate, noise_rng)
    snr_db = noise_rng.uniform(*_SNR_DB[domain])
    mix = _unit(sound) + _db(-snr_db) * noise
    return (mix * (TARGET_RMS / _rms(mix))).astype(np.float32)

