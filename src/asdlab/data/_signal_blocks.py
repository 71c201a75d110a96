"""Signal building blocks of the synthetic machines: levels, coloured noise, filters as frequency
responses, resonators, tone sums, event trains and time gates (NumPy and SciPy only)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import NDArray
from scipy import signal

__all__ = [
    "db",
    "events",
    "gate",
    "harmonic_sum",
    "highpass",
    "lowpass",
    "peaks",
    "place_impulses",
    "resonator",
    "rms",
    "shaped_noise",
    "tilt",
    "unit",
    "wander",
]

Array = NDArray[np.float64]


def rms(x: Array) -> float:
    return float(np.sqrt(np.mean(np.square(x)) + 1e-30))


def unit(x: Array) -> Array:
    """`x` scaled to unit RMS."""
    return x / rms(x)


def db(value: float | Array) -> float | Array:
    """Decibels to an amplitude ratio (scalars or arrays)."""
    return 10.0 ** (value / 20.0)


def wander(rng: np.random.Generator, n: int, sample_rate: int, rate_hz: float, terms: int = 4) -> Array:
    """Slow zero-mean wander of roughly unit amplitude: a few random low-frequency sinusoids."""
    # computed on a coarse grid (every 32 samples, far above `rate_hz`) and interpolated: 30x cheaper
    step = 32
    coarse_t = np.arange(n // step + 2) * (step / sample_rate)
    freqs = rng.uniform(0.3, 1.0, terms) * rate_hz
    phases = rng.uniform(0.0, 2 * math.pi, terms)
    coarse = np.sin(2 * math.pi * freqs[:, None] * coarse_t[None, :] + phases[:, None]).sum(axis=0)
    return np.interp(np.arange(n) / sample_rate, coarse_t, coarse) / math.sqrt(terms / 2)


def shaped_noise(rng: np.random.Generator, n: int, sample_rate: int, magnitude: Callable[[Array], Array]) -> Array:
    """Gaussian noise with amplitude spectrum `magnitude(freq_hz)`, unit RMS."""
    bins = n // 2 + 1
    spectrum = rng.standard_normal(bins) + 1j * rng.standard_normal(bins)
    freqs = np.fft.rfftfreq(n, 1.0 / sample_rate)
    return unit(np.fft.irfft(spectrum * magnitude(freqs), n))


def tilt(freqs: Array, db_per_octave: float, floor_hz: float = 30.0) -> Array:
    # amplitude slope of `db_per_octave`: 10**(s/20) per doubling = f**(s / 20log10(2))
    return (np.maximum(freqs, floor_hz) / 1000.0) ** (db_per_octave / 6.0206)


def lowpass(freqs: Array, cutoff_hz: float, order: int = 2) -> Array:
    return 1.0 / np.sqrt(1.0 + (freqs / cutoff_hz) ** (2 * order))


def highpass(freqs: Array, cutoff_hz: float, order: int = 2) -> Array:
    return 1.0 / np.sqrt(1.0 + (cutoff_hz / np.maximum(freqs, 1e-3)) ** (2 * order))


def peaks(freqs: Array, resonances: Sequence[tuple[float, float, float]]) -> Array:
    """1 + Lorentzian peaks; each resonance is (centre Hz, bandwidth Hz, gain dB above the floor)."""
    out = np.ones_like(freqs)
    for centre, bandwidth, gain_db in resonances:
        out += (db(gain_db) - 1.0) / (1.0 + ((freqs - centre) / (bandwidth / 2)) ** 2)
    return out


def resonator(x: Array, sample_rate: int, centre_hz: float, bandwidth_hz: float) -> Array:
    """Two-pole resonator: each impulse in `x` rings as a damped sinusoid (a struck casing mode)."""
    radius = math.exp(-math.pi * bandwidth_hz / sample_rate)
    theta = 2 * math.pi * centre_hz / sample_rate
    return signal.lfilter([1.0 - radius], [1.0, -2 * radius * math.cos(theta), radius * radius], x)


def harmonic_sum(phase: Array, orders: Sequence[float], amplitudes: Sequence[float], phases: Sequence[float]) -> Array:
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


def events(phase: Array, per_cycle: float) -> NDArray[np.intp]:
    """Sample indices where `per_cycle * phase / 2pi` crosses an integer (one event per crossing)."""
    count = np.floor(phase * per_cycle / (2 * math.pi))
    return np.flatnonzero(np.diff(count) > 0) + 1


def place_impulses(n: int, positions: Array, amplitudes: Array | float = 1.0) -> Array:
    """A length-`n` signal with impulses at `positions` (samples, rounded); those outside are dropped."""
    positions = np.rint(np.asarray(positions, dtype=np.float64))
    amps = np.broadcast_to(np.asarray(amplitudes, dtype=np.float64), positions.shape)
    inside = (positions >= 0) & (positions < n)
    out = np.zeros(n)
    np.add.at(out, positions[inside].astype(np.intp), amps[inside])
    return out


def gate(n: int, sample_rate: int, intervals: Sequence[tuple[float, float]], ramp_s: float) -> Array:
    """0..1 envelope that is 1 inside each (start_s, stop_s) interval, with raised-cosine edges of `ramp_s`."""
    out = np.zeros(n)
    for start, stop in intervals:
        # only the samples the interval and its ramps touch
        first = max(0, int(math.floor((start - ramp_s / 2) * sample_rate)))
        last = min(n, int(math.ceil((stop + ramp_s / 2) * sample_rate)) + 1)
        if first >= last:
            continue
        t = np.arange(first, last) / sample_rate
        rise = np.clip((t - start) / ramp_s + 0.5, 0.0, 1.0)
        fall = np.clip((stop - t) / ramp_s + 0.5, 0.0, 1.0)
        out[first:last] = np.maximum(out[first:last], 0.5 - 0.5 * np.cos(math.pi * np.minimum(rise, fall)))
    return out
