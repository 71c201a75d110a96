"""Each synthetic fault kind changes what it claims to change, and little else.

A clip rendered with and without its fault from the same seed shares machine, background and
channel (the fault has its own random stream), so the pair isolates the fault. Timing faults move
impacts while the long-term spectrum moves by less than a stated bound; intermittent faults are
confined to a short stretch of the clip; spectral faults are steady, at the machine's own rates.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from asdlab.data import _rotating_machines, _valve
from asdlab.data._machine_sounds import FAULTS, MACHINE_TYPES, render_clip

SR = 16000
VALVE = (("pat", "01"), ("pres", "4"))
FAN = (("bl", "5"), ("rpm", "1200"))  # shaft 20 Hz
GEAR = (("volt", "1.0"), ("wt", "0"))  # shaft 18 Hz
SLIDER = (("vel", "400"), ("ac", "0.1"))  # a knock at each reversal, every 0.5 s


def _pair(machine, attrs, kind, seed=(3, 1), level=1.0, duration_s=2.0):
    common = dict(domain="source", seed=seed, duration_s=duration_s, anomaly_level=level)
    normal = render_clip(machine, attrs, anomaly=None, **common).astype(np.float64)
    return normal, render_clip(machine, attrs, anomaly=kind, **common).astype(np.float64)


def _band_levels_db(x: np.ndarray) -> np.ndarray:
    """Long-term spectrum: power share (dB) of 24 mel-spaced bands, 30 Hz - 8 kHz."""
    freqs, power = signal.welch(x, fs=SR, nperseg=1024)
    mel = 2595 * np.log10(1 + freqs / 700)
    edges = np.linspace(mel[1], mel[-1], 25)
    return np.array([10 * np.log10(power[(mel >= a) & (mel < b)].sum() / power.sum()) for a, b in zip(edges, edges[1:])])


def _impacts(x: np.ndarray, low_hz: float = 1000.0, high_hz: float = 7000.0, frame: int = 256) -> np.ndarray:
    """Impact times (s): peaks of the band's mean dB rise over the frames 8-12 ms earlier."""
    freqs, times, spec = signal.stft(x, fs=SR, nperseg=frame, noverlap=frame - 32, boundary=None, padded=False)
    level = 10 * np.log10(np.abs(spec[(freqs >= low_hz) & (freqs <= high_hz)]) ** 2 + 1e-12)
    lags = (4, 5, 6) if frame == 256 else (2, 3)
    flux = np.maximum(level - np.maximum.reduce([np.roll(level, k, axis=1) for k in lags]), 0).mean(axis=0)
    flux[:6] = 0
    median = np.median(flux)
    peaks, _ = signal.find_peaks(flux, height=median + 9 * np.median(np.abs(flux - median)), distance=5)
    return times[peaks]


def _matched(a: np.ndarray, b: np.ndarray, tol: float = 0.003) -> np.ndarray:
    """For each time in a: is there one in b within tol?"""
    return np.array([np.abs(b - t).min() < tol if len(b) else False for t in a], dtype=bool)


def _envelope_peak_hz(x: np.ndarray, low_hz: float, high_hz: float, search: tuple[float, float]) -> float:
    sos = signal.butter(4, [low_hz, high_hz], btype="bandpass", fs=SR, output="sos")
    envelope = np.abs(signal.hilbert(signal.sosfiltfilt(sos, x))) ** 2
    spectrum = np.abs(np.fft.rfft((envelope - envelope.mean()) * np.hanning(len(x))))
    freqs = np.fft.rfftfreq(len(x), 1 / SR)
    inside = (freqs > search[0]) & (freqs < search[1])
    return float(freqs[inside][np.argmax(spectrum[inside])])


@pytest.mark.parametrize(("machine", "kind"), [(m, k) for m, t in MACHINE_TYPES.items() for k in t.fault_kinds])
def test_level_zero_adds_nothing_and_level_one_changes_the_clip(machine, kind):
    attrs = MACHINE_TYPES[machine]
    attrs = tuple(zip(attrs.attribute_keys, (values[0] for values in attrs.source_values)))
    normal, faulty = _pair(machine, attrs, kind, duration_s=1.0)
    _, same = _pair(machine, attrs, kind, level=0.0, duration_s=1.0)
    np.testing.assert_array_equal(same, normal)
    assert not np.array_equal(faulty, normal)


def test_fault_strengths_scale_one_kind_only():
    common = dict(domain="source", seed=(3, 4), duration_s=1.0)
    normal = render_clip("SynFan", FAN, anomaly=None, **common)
    off = render_clip("SynFan", FAN, anomaly="rattle", fault_strengths={"rattle": 0.0, "rub": 5.0}, **common)
    np.testing.assert_array_equal(off, normal)
    once = render_clip("SynFan", FAN, anomaly="rattle", **common) - normal
    twice = render_clip("SynFan", FAN, anomaly="rattle", fault_strengths={"rattle": 2.0}, **common) - normal
    assert np.std(twice) > 1.5 * np.std(once)


# Timing faults: the valve's impacts move; its long-term spectrum moves by less than 1.5 dB in every
# band, less than between two normal clips of the same valve (measured: up to 3 dB).
TIMING_BOUND_DB = 1.5


@pytest.mark.parametrize("kind", ["missing_stroke", "extra_stroke", "late_stroke", "double_stroke"])
def test_timing_faults_move_impacts_not_the_long_term_spectrum(kind):
    gain = dict(MACHINE_TYPES["SynValve"].faults)[kind]
    # late strokes at an 80 ms largest delay, so that a late impact cannot reach the next one
    level = 0.08 / (FAULTS[kind].strength * gain) if kind == "late_stroke" else 1.0
    for seed in ((5, 0), (5, 1), (5, 2)):
        normal, faulty = _pair("SynValve", VALVE, kind, seed=seed, level=level)
        before = _impacts(normal)
        after = _impacts(faulty)
        before = before[(before > 0.05) & (before < 1.95)]
        after = after[(after > 0.05) & (after < 1.95)]
        if kind == "missing_stroke":  # the opening and closing impact of one stroke are gone
            assert _matched(after, before).all() and len(after) == len(before) - 2
        elif kind == "extra_stroke":  # one more stroke, the others untouched
            assert _matched(before, after).all() and len(after) == len(before) + 2
        elif kind == "late_stroke":  # every stroke 24-80 ms late (impacts near the clip's ends may leave)
            late = [after[(after > t) & (after < t + 0.082)] for t in before if t < 1.86]
            assert all(len(lag) for lag in late) and not _matched(after, before).any()
            assert min(lag.min() - t for lag, t in zip(late, before)) > 0.02
        else:  # a rebound 15-35 ms after each opening impact
            assert _matched(before, after).all() and len(after) > len(before)
            new = after[~_matched(after, before)]
            assert all(0.013 < t - before[before < t].max() < 0.037 for t in new)
        change = np.abs(_band_levels_db(faulty) - _band_levels_db(normal)).max()
        assert change < TIMING_BOUND_DB, (kind, seed, change)


def test_timing_faults_act_on_the_stroke_plan():
    rng = np.random.default_rng(0)
    plan = _valve.plan_strokes(_valve.PATTERNS["01"], 2.0, rng)
    gaps = np.diff([s.opens for s in plan])  # pattern 01: strokes 0.25 s apart, then a 0.75 s pause
    assert np.allclose(sorted(gaps[:2]), [0.25, 0.75], atol=0.012) and np.allclose(gaps[2:], gaps[:-2], atol=0.012)
    missing = _valve._apply_fault(list(plan), "missing_stroke", 1.0, 2.0, np.random.default_rng(1))
    assert sum(s.size == 0 for s in missing) == 1
    late = _valve._apply_fault(list(plan), "late_stroke", 1.0, 2.0, np.random.default_rng(1))
    delays = np.array([b.opens - a.opens for a, b in zip(plan, late)])
    assert np.all((delays >= 0.3 * 0.08 - 1e-9) & (delays <= 0.08 + 1e-9)) and np.ptp(delays) > 0.01
    assert all(b.command_on == a.command_on for a, b in zip(plan, late))  # the coil is on time, the plunger late


def test_hesitation_adds_a_knock_off_the_reversal_grid():
    for seed in ((6, 0), (6, 1)):
        normal, faulty = _pair("SynSlider", SLIDER, "hesitation", seed=seed)
        knocks = _impacts(normal, 500.0, 2000.0, frame=128)
        extra = _impacts(faulty, 500.0, 2000.0, frame=128)
        assert _matched(knocks, extra).all()
        new = extra[~_matched(extra, knocks)]
        assert len(new) == 1
        # reversals come every 0.5 s; the slide jerks free mid-stroke, at least 0.05 s from any of them
        phase = np.mod(new[0] - knocks[0], 0.5)
        assert 0.05 < phase < 0.45
        assert np.abs(_band_levels_db(faulty) - _band_levels_db(normal)).max() < 2.5


@pytest.mark.parametrize(("machine", "attrs", "kind"), [("SynFan", FAN, "rattle"), ("SynFan", FAN, "contact"),
                                                         ("SynGear", GEAR, "rattle")])
def test_intermittent_faults_are_short(machine, attrs, kind):
    normal, faulty = _pair(machine, attrs, kind)
    energy = np.convolve((faulty - normal) ** 2, np.ones(SR // 2), mode="valid")  # per 0.5 s window
    assert energy.max() > 0.95 * np.sum((faulty - normal) ** 2)  # all of it within half a second


def test_a_slide_rattles_at_speed_not_while_it_turns_round():
    # the slide reverses every 0.5 s; its loose cover is lifted while the slide runs at full speed,
    # between the reversals' end-stop knocks
    for seed in range(4):
        normal, faulty = _pair("SynSlider", SLIDER, "rattle", seed=(seed, 2))
        knocks = _impacts(normal, 500.0, 2000.0, frame=128)
        energy = np.convolve((faulty - normal) ** 2, np.ones(SR // 50), mode="same")  # 20 ms windows
        loud = np.flatnonzero(energy > 0.25 * energy.max()) / SR
        distance = np.abs(loud[:, None] - knocks[None, :]).min(axis=1)
        assert len(knocks) >= 3
        assert np.median(distance) > 0.06  # the knocks are 0.5 s apart; a burst sits well between them


def test_surge_slows_the_machine_briefly():
    # on the dry machine sound (no background tones to confuse the tracker): the fan's blade-pass tone
    def dry(fault):
        rng, fault_rng = np.random.default_rng(5), np.random.default_rng(6)
        fan = _rotating_machines.build_fan(dict(FAN), rng, np.random.default_rng(7))
        return _rotating_machines.render_rotor(fan, 2 * SR, SR, rng, fault, 1.0, fault_rng)

    freqs, _, spec = signal.stft(np.stack([dry(None), dry("surge")]), fs=SR, nperseg=4096, noverlap=4096 - 512)
    band = (freqs > 180) & (freqs < 220)  # the blade-pass tone's 2nd order, 200 Hz
    power = np.log(np.abs(spec[:, band]) ** 2)  # (2, F, T)
    k = np.clip(np.argmax(power, axis=1), 1, band.sum() - 2)  # (2, T)
    a, b, c = (np.take_along_axis(power, (k + d)[:, None], axis=1)[:, 0] for d in (-1, 0, 1))
    tone = freqs[band][k] + 0.5 * (a - c) / (a - 2 * b + c) * (freqs[1] - freqs[0])  # parabolic peak
    tone = tone[:, 4:-4]  # frames that hang over the clip's ends see zero padding
    drop = 1 - tone[1] / np.median(tone[0])
    assert 0.03 < drop.max() < 0.07  # 5 % slower at the bottom of the dip
    assert np.mean(drop > 0.02) < 0.3  # and only briefly
    assert np.abs(tone[0] / np.median(tone[0]) - 1).max() < 0.015


@pytest.mark.parametrize(("machine", "attrs", "kind", "low_hz", "rate_hz"), [
    ("SynGear", GEAR, "chipped_tooth", 2800.0, 18.0),  # once per revolution of the 18 Hz shaft
    ("SynGear", GEAR, "bearing", 2500.0, 18.0 * 3.4),  # one click per ball pass: 3.4 shaft orders
    ("SynFan", FAN, "rub", 2800.0, 20.0),  # a scrape per revolution
])
def test_periodic_faults_repeat_at_the_machine_rate(machine, attrs, kind, low_hz, rate_hz):
    normal, faulty = _pair(machine, attrs, kind)
    difference = faulty - normal
    quarters = np.sum(difference.reshape(4, -1) ** 2, axis=1)
    assert quarters.max() < 3 * quarters.min()  # steady, all clip long
    peak = _envelope_peak_hz(difference, low_hz, 6000.0, (0.6 * rate_hz, 1.4 * rate_hz))
    assert abs(peak / rate_hz - 1) < 0.05


def test_imbalance_swells_once_per_revolution_and_harmonic_is_narrow():
    normal, faulty = _pair("SynFan", FAN, "imbalance")
    assert abs(_envelope_peak_hz(faulty - normal, 150.0, 6000.0, (10.0, 30.0)) - 20.0) < 1.0
    normal, faulty = _pair("SynGear", GEAR, "harmonic")
    power = np.abs(np.fft.rfft(faulty - normal)) ** 2
    assert np.sort(power)[::-1][: len(power) // 100].sum() > 0.5 * power.sum()  # 1 % of the bins
