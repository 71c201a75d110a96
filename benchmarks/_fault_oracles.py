"""Oracle features for the synthetic fault kinds: one measurement written for each kind, told the
machine's design (shaft rate from its attributes, the valve's controller pattern), used by
`synthetic_calibration.py` to show that every fault kind is really in the audio.

Each `feature_*` maps a clip (float64 waveform at 16 kHz) and its true attributes to a small
vector; the calibration scores it with the project's kNN backend (Euclidean, per domain) fitted on
the normal training clips, and reports the AUC of normal test clips against one kind's anomalies.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray
from scipy import signal

from asdlab.data import _rotating_machines as rot
from asdlab.data._valve import PATTERNS

SR = 16000
Array = NDArray[np.float64]

_BUILDERS = {"SynFan": rot.build_fan, "SynPump": rot.build_pump, "SynGear": rot.build_gear,
             "SynSlider": rot.build_slider, "SynBearing": rot.build_bearing, "SynCompressor": rot.build_compressor}


def design(machine: str, attrs: dict[str, str]) -> rot.Rotor:
    """The machine's rotor as its attributes set it (the per-clip variation is a fixed draw: within 1 %)."""
    return _BUILDERS[machine](attrs, np.random.default_rng(0))


def _band(x: Array, low_hz: float, high_hz: float) -> Array:
    sos = signal.butter(4, [low_hz, min(high_hz, 0.45 * SR)], btype="bandpass", fs=SR, output="sos")
    return signal.sosfiltfilt(sos, x)


def _frame_db(x: Array, hop: int, width: int) -> Array:
    """Short-time power in dB: frames of `width` samples every `hop`."""
    power = np.convolve(x * x, np.ones(width) / width, mode="same")[::hop]
    return 10 * np.log10(power + 1e-12)


def onsets(x: Array, low_hz: float = 1000.0, high_hz: float = 7000.0, threshold: float = 7.0,
           frame: int = 256, lags: tuple[int, ...] = (4, 5, 6)) -> Array:
    """Times (s) of impacts: peaks of the band's spectral flux (mean dB rise over the frames `lags`
    x 2 ms earlier; `frame`-sample frames every 2 ms) above median + `threshold` x MAD."""
    freqs, times, spec = signal.stft(x, fs=SR, nperseg=frame, noverlap=frame - 32, boundary=None, padded=False)
    band = (freqs >= low_hz) & (freqs <= high_hz)
    level = 10 * np.log10(np.abs(spec[band]) ** 2 + 1e-12)
    before = np.maximum.reduce([np.roll(level, lag, axis=1) for lag in lags])
    flux = np.maximum(level - before, 0.0).mean(axis=0)
    flux[: max(lags)] = 0.0
    median = np.median(flux)
    peaks, _ = signal.find_peaks(flux, height=median + threshold * np.median(np.abs(flux - median)), distance=5)
    return times[peaks]


def _partner_error(times: Array, lag: float, duration: float, cap: float = 0.1) -> Array:
    """Per event: distance from t + lag (or t - lag) to the nearest event, where that time is in the clip."""
    errors = []
    for t in times:
        options = [abs(times - (t + s * lag)).min() for s in (1, -1) if 0.01 < t + s * lag < duration - 0.01]
        if options:
            errors.append(min(min(options), cap))
    return np.array(errors)


def feature_rhythm(x: Array, machine: str, attrs: dict[str, str]) -> Array:
    """Timing faults of the valve: how far impacts are from their partner one controller cycle away,
    plus the event count per second; the compressor: the largest gap between pulses over the median."""
    duration = len(x) / SR
    times = onsets(x)
    if machine == "SynValve":
        errors = _partner_error(times, PATTERNS[attrs["pat"]].period_s, duration)
        return np.array([errors.sum() if len(errors) else 0.0, np.sort(errors)[-3:].sum() if len(errors) else 0.0,
                         len(times) / duration])
    gaps = np.diff(times) if len(times) > 2 else np.array([1.0, 1.0])
    return np.array([gaps.max() / np.median(gaps), len(times) / duration])


def feature_rebound(x: Array, machine: str, attrs: dict[str, str]) -> Array:
    """Double strokes: the share of impacts followed by another one 10-45 ms later."""
    times = onsets(x)
    if len(times) < 2:
        return np.zeros(1)
    gaps = np.diff(times)
    return np.array([np.mean((gaps > 0.010) & (gaps < 0.045))])


def feature_bursts(x: Array, machine: str, attrs: dict[str, str]) -> Array:
    """Rattles and brief contacts: how far the 1.4-5 kHz level rises above its median (20 and 80 ms
    averages), and the most 1.4-6 kHz impacts within any 0.2 s."""
    level = _frame_db(_band(x, 1400.0, 5000.0), 80, 160)  # 5 ms hop
    out = []
    for frames in (4, 16):
        smooth = np.convolve(level, np.ones(frames) / frames, mode="valid")
        out.append(smooth.max() - np.median(smooth))
    times = onsets(x, low_hz=1400.0, high_hz=6000.0, frame=128, lags=(2, 3), threshold=5.0)
    out.append(max((np.sum((times >= t) & (times < t + 0.2)) for t in times), default=0))
    return np.array(out)


def _envelope_line(x: Array, low_hz: float, high_hz: float, rate_hz: float, search: float = 0.04) -> float:
    """dB of the band envelope's spectrum at `rate_hz` (peak within +-search) over its median nearby."""
    envelope = np.abs(signal.hilbert(_band(x, low_hz, high_hz))) ** 2
    envelope -= envelope.mean()
    spectrum = np.abs(np.fft.rfft(envelope * np.hanning(len(envelope)))) ** 2
    freqs = np.fft.rfftfreq(len(envelope), 1 / SR)
    near = (freqs > rate_hz * (1 - search)) & (freqs < rate_hz * (1 + search))
    around = (freqs > rate_hz * 0.5) & (freqs < rate_hz * 1.5) & ~near
    return 10 * math.log10(spectrum[near].max() / np.median(spectrum[around]))


def feature_once_per_rev(x: Array, machine: str, attrs: dict[str, str]) -> Array:
    """Chipped tooth, rub: the 2.8-6 kHz band's envelope spectrum at the shaft rate and twice it."""
    f_rot = design(machine, attrs).f_rot
    return np.array([_envelope_line(x, 2800.0, 6000.0, f_rot), _envelope_line(x, 2800.0, 6000.0, 2 * f_rot)])


def feature_swell(x: Array, machine: str, attrs: dict[str, str]) -> Array:
    """Imbalance: the 150-6000 Hz envelope spectrum at the shaft rate."""
    return np.array([_envelope_line(x, 150.0, 6000.0, design(machine, attrs).f_rot)])


def feature_ball_pass(x: Array, machine: str, attrs: dict[str, str]) -> Array:
    """Bearing defect: the 2.5-6 kHz envelope at the outer-race ball-pass rate."""
    rotor = design(machine, attrs)
    return np.array([_envelope_line(x, 2500.0, 6000.0, rotor.defect_order * rotor.f_rot, search=0.06)])


def _tone_track(x: Array, centre_hz: float) -> Array:
    """Frequency (Hz) of the strongest peak within +-12 % of `centre_hz`: 128 ms frames every 32 ms,
    parabolic interpolation between FFT bins."""
    freqs, _, spec = signal.stft(x, fs=SR, nperseg=2048, noverlap=2048 - 512)
    power = np.abs(spec) ** 2
    band = np.flatnonzero((freqs > centre_hz * 0.88) & (freqs < centre_hz * 1.12))
    k = band[np.argmax(power[band], axis=0)]
    a, b, c = (np.log(power[k + d, np.arange(power.shape[1])] + 1e-20) for d in (-1, 0, 1))
    shift = 0.5 * (a - c) / np.where(np.abs(a - 2 * b + c) > 1e-12, a - 2 * b + c, 1e-12)
    return (k + np.clip(shift, -1, 1)) * (freqs[1] - freqs[0])


def feature_harmonics(x: Array, machine: str, attrs: dict[str, str]) -> Array:
    """Harmonic faults: the levels (dB) of the design's five strongest tonal orders above 100 Hz (the
    fault picks one of the three strongest after the clip's variation), relative to the median level
    of all its orders."""
    rotor = design(machine, attrs)
    freqs, power = signal.welch(x, fs=SR, nperseg=8192)
    log_power = 10 * np.log10(power + 1e-20)
    orders = np.array([o for o in rotor.orders if 100 <= o * rotor.f_rot < 6000])
    levels_db = np.array([lv for o, lv in zip(rotor.orders, rotor.levels_db) if 100 <= o * rotor.f_rot < 6000])
    grid = rotor.f_rot * np.linspace(0.985, 1.015, 61)
    fits = [np.interp(orders * f, freqs, log_power).sum() for f in grid]
    f_rot = grid[int(np.argmax(fits))]
    width = np.maximum(np.minimum(0.012 * orders * f_rot, 0.4 * f_rot), freqs[1])
    levels = np.array([log_power[(freqs >= o * f_rot - w) & (freqs <= o * f_rot + w)].max()
                       for o, w in zip(orders, width)])
    strongest = np.argsort(levels_db)[::-1][:5]
    return levels[strongest] - np.median(levels)


def _off_grid(times: Array, period: float, tolerance: float = 0.015) -> Array:
    """Distance of each event from the grid phase + k * period that the most events fit."""
    if len(times) == 0:
        return np.zeros(0)
    phases = np.mod(times, period)

    def distance(phase: float) -> Array:
        d = np.mod(phases - phase, period)
        return np.minimum(d, period - d)

    best = max(phases, key=lambda p: (np.sum(distance(p) < tolerance), -distance(p).sum()))
    return distance(best)


def feature_stall(x: Array, machine: str, attrs: dict[str, str]) -> Array:
    """Hesitation of a slide: knocks off the grid of end-stop knocks (one every half stroke)."""
    rotor = design(machine, attrs)
    times = onsets(x, low_hz=500.0, high_hz=2000.0, frame=128, lags=(2, 3), threshold=11.0)
    off = _off_grid(times, 0.5 / rotor.stroke_hz)
    return np.array([off.max(initial=0.0), np.sum(off > 0.03)])


def feature_speed(x: Array, machine: str, attrs: dict[str, str]) -> Array:
    """Surge: the largest relative drop below their clip medians of the three strongest 150-2000 Hz
    tonal orders (the median and the smallest of the three drops, per frame)."""
    rotor = design(machine, attrs)
    ranked = sorted(((level, order) for order, level in zip(rotor.orders, rotor.levels_db)
                     if 150 <= order * rotor.f_rot <= 2000), reverse=True)[:3]
    drops = []
    for _, order in ranked:
        track = _tone_track(x, order * rotor.f_rot)
        track = np.convolve(track / np.median(track), np.ones(3) / 3, mode="valid")
        drops.append(1 - track)
    drops = np.sort(np.stack(drops), axis=0)  # per frame, the drops of the tracked orders, ascending
    return np.array([drops[len(ranked) // 2].max(), drops[0].max()])


ORACLES: dict[str, tuple[str, Callable[[Array, str, dict[str, str]], Array]]] = {
    "missing_stroke": ("impacts without a partner one cycle away (valve); largest pulse gap (compressor)",
                       feature_rhythm),
    "extra_stroke": ("impacts without a partner one cycle away", feature_rhythm),
    "late_stroke": ("impacts without a partner one cycle away", feature_rhythm),
    "double_stroke": ("share of impacts followed by another within 10-45 ms", feature_rebound),
    "hesitation": ("500-2000 Hz knocks off the half-stroke grid of the end-stop knocks", feature_stall),
    "rattle": ("1.4-5 kHz level peak over its median, impacts within 0.2 s", feature_bursts),
    "contact": ("1.4-5 kHz level peak over its median, impacts within 0.2 s", feature_bursts),
    "chipped_tooth": ("2.8-6 kHz envelope spectrum at 1x and 2x the shaft rate", feature_once_per_rev),
    "surge": ("largest relative drop of three tonal orders' frequencies", feature_speed),
    "bearing": ("2.5-6 kHz envelope spectrum at the ball-pass rate", feature_ball_pass),
    "imbalance": ("150-6000 Hz envelope spectrum at the shaft rate", feature_swell),
    "rub": ("2.8-6 kHz envelope spectrum at 1x and 2x the shaft rate", feature_once_per_rev),
    "harmonic": ("levels of the design's five strongest tonal orders", feature_harmonics),
}

