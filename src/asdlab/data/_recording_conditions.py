"""Where and how a synthetic machine is recorded, per domain: factory background noise, the room
(reverberation) and the microphone (frequency response).

The target domain differs from the source in all three, as DCASE's domain shifts do (DCASE.md,
"Dataset layout"; the Task 2 papers list other factories, noise and microphone set-ups): another
hall with other machines and voices, a longer reverberation, and another microphone mounted
further away (housing resonances). In long-term log-mel statistics this moves a clip further than
any fault does (`benchmarks/synthetic_calibration.py` measures both). Within a domain the hall and
microphone are fixed, but what goes on in the hall is not: each recording finds the other machines,
the air leak and the voices louder or quieter and the machine louder or quieter against them (SNR):
within +-4.5 dB in the source domain, gathered over a long time, and +-3 dB in the target domain,
recorded in one short session. Real recordings vary like this from one to the next, so log-mel
statistics of normal clips spread, and a handful of target references no longer covers every target
test clip.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from asdlab.data._signal_blocks import db, harmonic_sum, highpass, lowpass, peaks, shaped_noise, tilt, unit, wander

__all__ = ["Domain", "record"]

Domain = Literal["source", "target"]
Array = NDArray[np.float64]


@dataclass(frozen=True)
class _Background:
    """Factory background of one domain. Levels (dB, relative to the broadband floor) and the floor's
    slope are (low, high) ranges: each clip draws its own, as the hall's activity changes between recordings."""

    tilt_db_per_octave: tuple[float, float]
    mains_hz: float
    hum_db: tuple[float, float]
    distant_hz: float  # a machine down the hall (its shaft rate), cycling between idle and working
    distant_db: tuple[float, float]
    air_centre_hz: float  # a compressed-air leak or blow-off nearby: 2-6 kHz hiss around this frequency
    air_db: tuple[float, float]
    babble_db: tuple[float, float] | None  # voices


@dataclass(frozen=True)
class _Channel:
    """Room and microphone of one domain."""

    snr_db: tuple[float, float]  # machine-to-background power ratio, uniform range
    rt60_s: float  # reverberation time of the hall
    direct_to_reverb_db: float  # microphone distance: close = mostly direct sound
    mic_highpass_hz: float
    mic_lowpass_hz: float
    mic_resonances: tuple[tuple[float, float, float], ...]  # (centre Hz, bandwidth Hz, gain dB)
    mic_tilt_db_per_octave: float


_BACKGROUND: dict[str, _Background] = {
    "source": _Background((-2.55, -2.45), 50.0, (-16.5, -7.5), 43.0, (-8.5, 0.5), 3000.0, (-28.5, -19.5), None),
    "target": _Background((-2.05, -1.95), 60.0, (-17.0, -11.0), 37.0, (-19.0, -13.0), 4200.0, (-23.0, -17.0),
                          (-9.0, -3.0)),
}
_CHANNEL: dict[str, _Channel] = {
    # a measurement microphone half a metre from the machine in a damped test bay
    "source": _Channel((0.0, 9.0), 0.25, 10.0, 40.0, 7500.0, (), 0.0),
    # another microphone two metres away in a barer hall: housing resonances (the top one bright)
    "target": _Channel((0.5, 6.5), 0.35, 8.0, 40.0, 7500.0,
                       ((1100.0, 600.0, 3.0), (2900.0, 900.0, -2.0), (4800.0, 2000.0, 3.0)), 0.0),
}


def _background(domain: str, n: int, sample_rate: int, rng: np.random.Generator) -> Array:
    """Factory noise of `domain` (see `_BACKGROUND`), unit RMS, with a slow level wander."""
    profile = _BACKGROUND[domain]
    slope = rng.uniform(*profile.tilt_db_per_octave)
    mix = shaped_noise(rng, n, sample_rate, lambda f: tilt(f, slope))

    t = np.arange(n) / sample_rate
    hum_levels = db(-4.0 * np.arange(1, 9) + rng.normal(0, 2.0, 8))
    hum = harmonic_sum(2 * math.pi * profile.mains_hz * t, range(1, 9), hum_levels, rng.uniform(0, 2 * math.pi, 8))
    mix += db(rng.uniform(*profile.hum_db)) * unit(hum)

    phase = 2 * math.pi * profile.distant_hz * np.cumsum(1 + 0.01 * wander(rng, n, sample_rate, 0.3)) / sample_rate
    tones = harmonic_sum(phase, range(1, 16), db(-3.0 * np.arange(1, 16)), rng.uniform(0, 2 * math.pi, 15))
    distant = unit(tones)
    distant += 0.7 * shaped_noise(rng, n, sample_rate, lambda f: lowpass(f, 300.0, 3))
    distant *= np.maximum(1.0 + rng.uniform(0.2, 0.8) * wander(rng, n, sample_rate, 1.5), 0.1)
    mix += db(rng.uniform(*profile.distant_db)) * unit(distant)

    air_centre = profile.air_centre_hz * (1 + rng.normal(0, 0.02))
    air = shaped_noise(rng, n, sample_rate, lambda f: highpass(f, 1500.0) * lowpass(f, 7000.0)
                       * peaks(f, ((air_centre, 2000.0, 6.0),)))
    mix += db(rng.uniform(*profile.air_db)) * air

    if profile.babble_db is not None:
        # the same three workers talk in every clip (their voices are fixed per hall), saying other things
        voices = np.random.default_rng(zlib.crc32(domain.encode()))
        babble = np.zeros(n)
        for _ in range(3):
            formants = ((voices.uniform(300, 900), 150.0, 14.0), (voices.uniform(1000, 2600), 300.0, 10.0))
            voice = shaped_noise(
                rng, n, sample_rate, lambda f: highpass(f, 150.0) * lowpass(f, 3500.0) * peaks(f, formants)
            )
            babble += voice * np.maximum(wander(rng, n, sample_rate, 5.0, terms=6), 0.0) ** 1.5  # syllables
        mix += db(rng.uniform(*profile.babble_db)) * unit(babble)

    return unit(mix * (1.0 + rng.uniform(0.0, 0.25) * wander(rng, n, sample_rate, 0.4)))


def _reverberate(x: Array, sample_rate: int, rt60_s: float, direct_to_reverb_db: float, seed: int) -> Array:
    """Direct sound plus an exponentially decaying noise tail (Sabine-style late reverberation).

    The tail is drawn from `seed`, fixed per domain: one hall, one microphone position, the same
    response for every clip. Circular convolution: the clip is treated as one period of a steady
    process, so its first `rt60_s` carries the tail of what came before instead of a silent start.
    """
    n = len(x)
    length = min(n, int(1.2 * rt60_s * sample_rate))
    t = np.arange(length) / sample_rate
    # -60 dB at rt60; high frequencies die faster (air and wall absorption): a gentle low-pass
    tail = np.random.default_rng(seed).standard_normal(length) * np.exp(-6.91 * t / rt60_s)
    tail = np.fft.irfft(np.fft.rfft(tail) * lowpass(np.fft.rfftfreq(length, 1.0 / sample_rate), 3000.0, 1), length)
    response = np.zeros(n)
    response[:length] = db(-direct_to_reverb_db) * tail / math.sqrt(np.sum(tail**2) + 1e-30)
    response[0] += 1.0
    return np.fft.irfft(np.fft.rfft(x) * np.fft.rfft(response), n)


def record(machine: Array, domain: Domain, sample_rate: int, rng: np.random.Generator) -> Array:
    """The machine sound (unit RMS, dry) as the domain's microphone hears it in its hall.

    Args:
        machine: (S,) dry machine sound.
        domain: "source" or "target".
        sample_rate: Hz.
        rng: draws the background and the SNR (the hall and the microphone are fixed per domain).

    Returns:
        (S,) float64 mix, unit RMS.
    """
    channel = _CHANNEL[domain]
    n = len(machine)
    noise = _background(domain, n, sample_rate, rng)
    snr_db = rng.uniform(*channel.snr_db)
    wet = _reverberate(machine, sample_rate, channel.rt60_s, channel.direct_to_reverb_db, zlib.crc32(domain.encode()))
    mix = unit(wet) + db(-snr_db) * noise
    freqs = np.fft.rfftfreq(n, 1.0 / sample_rate)
    response = (highpass(freqs, channel.mic_highpass_hz) * lowpass(freqs, channel.mic_lowpass_hz, 2)
                * peaks(freqs, channel.mic_resonances) * tilt(freqs, channel.mic_tilt_db_per_octave, 100.0))
    return unit(np.fft.irfft(np.fft.rfft(mix) * response, n))
