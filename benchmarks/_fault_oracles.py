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


class _MeanDraws:
    """Stands in for the builders' random generators: every draw at its distribution's mean."""

    def normal(self, loc: float = 0.0, scale: float = 1.0, size: int | None = None) -> float | Array:
        return float(loc) if size is None else np.full(size, float(loc))

    def uniform(self, low: float = 0.0, high: float = 1.0, size: int | None = None) -> float | Array:
        return (low + high) / 2 if size is None else np.full(size, (low + high) / 2)


def design(machine: str, attrs: dict[str, str]) -> rot.Rotor:
    """The machine's rotor as its attributes set it, without the unit's or the clip's variation."""
    return _BUILDERS[machine](attrs, _MeanDraws(), _MeanDraws())


def _band(x: Array, low_hz: float, high_hz: float) -> Array:
    sos = signal.butter(4, [low_hz, min(high_hz, 0.45 * SR)], btype="bandpass", fs=SR, output="sos")
    return signal.sosfiltfilt(sos, x)


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


_PANEL_BANDS = ((1400.0, 2200.0), (2200.0, 3500.0), (3500.0, 5500.0))


def _kurtosis_track(y: Array, width: int = 960, hop: int = 160) -> Array:
    """Kurtosis (E y^4 / (E y^2)^2) of `y` in `width`-sample windows every `hop`: 3 for steady noise,
    higher while a few impacts ring."""
    p2 = np.convolve(y**2, np.ones(width) / width, mode="valid")[::hop]
    p4 = np.convolve(y**4, np.ones(width) / width, mode="valid")[::hop]
    return p4 / (p2**2 + 1e-30)


def feature_bursts(x: Array, machine: str, attrs: dict[str, str], guard_s: float = 0.04) -> Array:
    """Rattles and brief contacts: the largest 60 ms kurtosis (log) in three 1.4-5.5 kHz bands; on a
    slide, windows within 40 ms of an end-stop knock (500-2000 Hz onsets) are left out."""
    width, hop = 960, 160
    tracks = [_kurtosis_track(_band(x, low, high), width, hop) for low, high in _PANEL_BANDS]
    keep = np.ones(len(tracks[0]), dtype=bool)
    if machine == "SynSlider":
        centres = (np.arange(len(keep)) * hop + width / 2) / SR
        for t in onsets(x, low_hz=500.0, high_hz=2000.0, frame=128, lags=(2, 3), threshold=11.0):
            keep &= np.abs(centres - t) > guard_s
        if not keep.any():
            keep[:] = True
    return np.array([np.log(track[keep].max()) for track in tracks])


_WIDE_BANDS = tuple((low, 1.5 * low) for low in (1600.0, 2000.0, 2500.0, 3100.0, 3900.0, 4800.0))
_NARROW_BANDS = tuple((low, 1.25 * low) for low in (2300.0, 2700.0, 3200.0, 3800.0, 4500.0, 5300.0))


def _envelope_spectrum(x: Array, low_hz: float, high_hz: float) -> tuple[Array, Array]:
    """Frequencies and power spectrum of the band's squared envelope (mean removed, Hann window)."""
    envelope = np.abs(signal.hilbert(_band(x, low_hz, high_hz))) ** 2
    envelope -= envelope.mean()
    return np.fft.rfftfreq(len(envelope), 1 / SR), np.abs(np.fft.rfft(envelope * np.hanning(len(envelope)))) ** 2


def _envelope_line(x: Array, low_hz: float, high_hz: float, rate_hz: float, search: float = 0.04) -> float:
    """dB of the band envelope's spectrum at `rate_hz` (peak within +-search) over its median nearby."""
    freqs, spectrum = _envelope_spectrum(x, low_hz, high_hz)
    near = (freqs > rate_hz * (1 - search)) & (freqs < rate_hz * (1 + search))
    around = (freqs > rate_hz * 0.5) & (freqs < rate_hz * 1.5) & ~near
    return 10 * math.log10(spectrum[near].max() / np.median(spectrum[around]))


def _comb_db(freqs: Array, spectrum: Array, rate_hz: float, harmonics: int, search: float) -> float:
    """Mean dB over the first `harmonics` lines of a comb at the rate (best within +-search, 0.1 %
    steps) above each line's local median (within half the rate): an impact train's signature."""
    log_power = 10 * np.log10(spectrum + 1e-30)
    floors = [np.median(log_power[(freqs > (h - 0.5) * rate_hz) & (freqs < (h + 0.5) * rate_hz)])
              for h in range(1, harmonics + 1)]
    best = -np.inf
    for rate in rate_hz * np.arange(1 - search, 1 + search + 1e-9, 0.001):
        bins = np.rint(np.arange(1, harmonics + 1) * rate / freqs[1]).astype(int)
        lines = [log_power[k - 1:k + 2].max() - floor for k, floor in zip(bins, floors)]
        best = max(best, float(np.mean(lines)))
    return best


def _best_band_comb(x: Array, rate_hz: float, harmonics: int, search: float,
                    bands: tuple[tuple[float, float], ...]) -> Array:
    """`_comb_db` of each band's envelope spectrum, the best band's (the fault rings a mode we do not know)."""
    return np.array([max(_comb_db(*_envelope_spectrum(x, low, high), rate_hz, harmonics, search) for low, high in bands)])


def feature_once_per_rev(x: Array, machine: str, attrs: dict[str, str]) -> Array:
    """Chipped tooth: the envelope comb at the shaft rate, 12 harmonics (a short impact per revolution
    has many), best of six 1.6-7.2 kHz bands."""
    return _best_band_comb(x, design(machine, attrs).f_rot, 12, 0.01, _WIDE_BANDS)


def feature_scrape(x: Array, machine: str, attrs: dict[str, str]) -> Array:
    """Rub: the envelope comb at the shaft rate, 4 harmonics (a scrape lasts a good part of each
    revolution, so its envelope has few), best of six 1.6-7.2 kHz bands."""
    return _best_band_comb(x, design(machine, attrs).f_rot, 4, 0.01, _WIDE_BANDS)


def feature_swell(x: Array, machine: str, attrs: dict[str, str]) -> Array:
    """Imbalance: the 150-6000 Hz envelope spectrum at the shaft rate."""
    return np.array([_envelope_line(x, 150.0, 6000.0, design(machine, attrs).f_rot)])


def feature_ball_pass(x: Array, machine: str, attrs: dict[str, str]) -> Array:
    """Bearing defect: the envelope comb at the outer-race ball-pass rate (2 harmonics, rate within
    +-6 %, as the defect's geometry is not known exactly), best of six 2.3-6.6 kHz bands."""
    rotor = design(machine, attrs)
    return _best_band_comb(x, rotor.defect_order * rotor.f_rot, 2, 0.06, _NARROW_BANDS)


def feature_harmonics(x: Array, machine: str, attrs: dict[str, str]) -> Array:
    """Harmonic faults (a strong tonal order drops or moves off its order): the energies (dB, within
    +-1 % of each order) of the design's five strongest orders above 100 Hz, relative to their mean,
    and how far (%) the peaks of the three strongest sit from their orders (within +-2 %, parabolic
    interpolation), after fitting the clip's shaft rate to all its orders."""
    rotor = design(machine, attrs)
    freqs, power = signal.welch(x, fs=SR, nperseg=8192)
    log_power = 10 * np.log10(power + 1e-20)
    audible = [(o, lv) for o, lv in zip(rotor.orders, rotor.levels_db) if 100 <= o * rotor.f_rot < 6000]
    orders = np.array([o for o, _ in audible])
    grid = rotor.f_rot * np.linspace(0.985, 1.015, 61)
    f_rot = grid[int(np.argmax([np.interp(orders * f, freqs, log_power).sum() for f in grid]))]
    strongest = orders[np.argsort([lv for _, lv in audible])[::-1][:5]]
    energy = np.array([10 * np.log10(power[np.abs(freqs - o * f_rot) < 0.01 * o * f_rot].sum() + 1e-20)
                       for o in strongest])
    offsets = []
    for order in strongest[:3]:
        near = np.flatnonzero(np.abs(freqs - order * f_rot) < 0.02 * order * f_rot)
        k = near[np.argmax(log_power[near])]
        a, b, c = log_power[k - 1:k + 2]
        peak_hz = (k + 0.5 * (a - c) / (a - 2 * b + c)) * freqs[1]
        offsets.append(100 * abs(peak_hz / (order * f_rot) - 1))
    return np.concatenate([energy - energy.mean(), offsets])


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


def feature_speed(x: Array, machine: str, attrs: dict[str, str], frame: int = 2048, hop: int = 256) -> Array:
    """Surge: the machine's speed per 128 ms frame (the scale of the design's 100-3000 Hz tonal orders
    that best fits the frame's log spectrum, weighted by their design levels, 88-104 % in 0.1 %
    steps), 3-frame smoothed; the largest drop below the clip's median speed and the mean of the five largest."""
    rotor = design(machine, attrs)
    freqs, _, spec = signal.stft(x, fs=SR, nperseg=frame, noverlap=frame - hop)
    log_power = np.log(np.abs(spec) ** 2 + 1e-20)
    scales = np.linspace(0.88, 1.04, 161)
    fit = np.zeros((len(scales), log_power.shape[1]))
    for order, level_db in zip(rotor.orders, rotor.levels_db):
        if 100 <= order * rotor.f_rot <= 3000:
            position = order * rotor.f_rot * scales / freqs[1]
            below = np.floor(position).astype(int)
            frac = (position - below)[:, None]
            fit += 10 ** (level_db / 20) * ((1 - frac) * log_power[below] + frac * log_power[below + 1])
    speed = np.convolve(scales[np.argmax(fit, axis=0)], np.ones(3) / 3, mode="valid")
    drop = 1 - speed / np.median(speed)
    return np.array([drop.max(), np.sort(drop)[-5:].mean()])


ORACLES: dict[str, tuple[str, Callable[[Array, str, dict[str, str]], Array]]] = {
    "missing_stroke": ("impacts without a partner one cycle away (valve); largest pulse gap (compressor)",
                       feature_rhythm),
    "extra_stroke": ("impacts without a partner one cycle away", feature_rhythm),
    "late_stroke": ("impacts without a partner one cycle away", feature_rhythm),
    "double_stroke": ("share of impacts followed by another within 10-45 ms", feature_rebound),
    "hesitation": ("500-2000 Hz knocks off the half-stroke grid of the end-stop knocks", feature_stall),
    "rattle": ("largest 60 ms kurtosis in three 1.4-5.5 kHz bands (a slide's end-stop knocks left out)",
               feature_bursts),
    "contact": ("largest 60 ms kurtosis in three 1.4-5.5 kHz bands (a slide's end-stop knocks left out)",
                feature_bursts),
    "chipped_tooth": ("envelope comb at the shaft rate, 12 harmonics, best of six 1.6-7.2 kHz bands",
                      feature_once_per_rev),
    "surge": ("largest drop of the speed that best fits the tonal orders, per 128 ms frame", feature_speed),
    "bearing": ("envelope comb at the ball-pass rate, 2 harmonics, best of six 2.3-6.6 kHz bands", feature_ball_pass),
    "imbalance": ("150-6000 Hz envelope spectrum at the shaft rate", feature_swell),
    "rub": ("envelope comb at the shaft rate, 4 harmonics, best of six 1.6-7.2 kHz bands", feature_scrape),
    "harmonic": ("energies of the design's five strongest tonal orders and the offsets of the three strongest "
                 "from their orders", feature_harmonics),
}

