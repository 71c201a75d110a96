"""The synthetic machine types and `render_clip`: one machine, at most one fault, recorded in a domain.

Each type lists its attributes per domain (no value shared between domains, as in DCASE's domain
shifts), its sound (`_rotating_machines`, `_valve`) and the fault kinds it suffers with a gain each
(`_faults.FAULTS`), chosen so that every kind is about equally hard to find on that machine. The
recording chain (background, room, microphone) is `_recording_conditions`.
"""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from asdlab.data import _rotating_machines as rot
from asdlab.data._faults import ANOMALY_KINDS, FAULTS, AnomalyKind
from asdlab.data._recording_conditions import record
from asdlab.data._signal_blocks import rms, unit
from asdlab.data._valve import render_valve
from asdlab.errors import ConfigError

__all__ = [
    "ANOMALY_KINDS",
    "AnomalyKind",
    "FAULTS",
    "MACHINE_TYPES",
    "MachineType",
    "GAIN_DB",
    "TARGET_RMS",
    "attribute_combinations",
    "render_clip",
]

# Clips leave at -32 dBFS RMS give or take a recording gain of +-2 dB drawn with the background
# (so loudness varies as between real recordings but never tells normal from anomalous); the
# headroom keeps the valve's impacts (crest factor up to ~28) from clipping.
TARGET_RMS = 10.0 ** (-32.0 / 20.0)
GAIN_DB = 2.0

Array = NDArray[np.float64]
# attributes, samples, sample rate, clip rng, fault kind, fault level, fault rng, unit rng -> dry sound (unit RMS)
Renderer = Callable[[dict[str, str], int, int, np.random.Generator, str | None, float, np.random.Generator,
                     np.random.Generator], Array]


@dataclass(frozen=True)
class MachineType:
    """One synthetic machine type: its attribute grid per domain, its sound and its faults.

    Attributes:
        name: DCASE machine-type name (no `_`).
        attribute_keys: attribute names, in file-name order.
        source_values: per key, the values the source domain uses.
        target_values: per key, the values the target domain uses (none shared with the source).
        render: attributes + generators -> dry sound.
        faults: (kind, gain) pairs: the kinds this machine suffers, in the order test clips cycle
            through them, and each one's strength relative to `FAULTS[kind].strength`.
    """

    name: str
    attribute_keys: tuple[str, ...]
    source_values: tuple[tuple[str, ...], ...]
    target_values: tuple[tuple[str, ...], ...]
    render: Renderer
    faults: tuple[tuple[AnomalyKind, float], ...]

    @property
    def fault_kinds(self) -> tuple[AnomalyKind, ...]:
        return tuple(kind for kind, _ in self.faults)


def _rotor(build: Callable[[dict[str, str], np.random.Generator, np.random.Generator], rot.Rotor]) -> Renderer:
    def render(attrs, n, sample_rate, rng, fault, level, fault_rng, unit_rng):
        return rot.render_rotor(build(attrs, rng, unit_rng), n, sample_rate, rng, fault, level, fault_rng)

    return render


MACHINE_TYPES: dict[str, MachineType] = {m.name: m for m in (
    MachineType("SynFan", ("bl", "rpm"), (("5", "7"), ("1200", "1440")), (("6",), ("1800", "1860")),
                _rotor(rot.build_fan),
                (("rattle", 0.6), ("contact", 1.0), ("surge", 1.0), ("imbalance", 1.2), ("rub", 1.0))),
    MachineType("SynValve", ("pat", "pres"), (("00", "01", "02"), ("2", "3", "4")), (("03", "04"), ("6",)),
                render_valve,
                (("missing_stroke", 2.0), ("extra_stroke", 2.0), ("late_stroke", 2.0), ("double_stroke", 1.0))),
    MachineType("SynGear", ("volt", "wt"), (("1.0", "1.3"), ("0", "100")), (("1.6",), ("250", "300")),
                _rotor(rot.build_gear),
                (("chipped_tooth", 0.7), ("rattle", 0.6), ("harmonic", 0.6), ("bearing", 0.7))),
    MachineType("SynSlider", ("vel", "ac"), (("400", "600"), ("0.1", "0.3")), (("800", "1000"), ("0.2",)),
                _rotor(rot.build_slider),
                (("hesitation", 2.0), ("rattle", 0.9), ("contact", 1.0), ("harmonic", 1.0))),
    MachineType("SynPump", ("vn", "load"), (("5", "6"), ("40", "60")), (("7",), ("85", "95")), _rotor(rot.build_pump),
                (("surge", 1.0), ("contact", 1.0), ("harmonic", 1.0), ("rub", 1.0))),
    MachineType("SynBearing", ("vel", "loc"), (("6", "10"), ("A", "B")), (("16", "18"), ("C",)),
                _rotor(rot.build_bearing),
                (("bearing", 1.0), ("contact", 1.0), ("rattle", 1.0), ("surge", 1.0))),
    MachineType("SynCompressor", ("cyl", "pres"), (("1", "2"), ("4", "6")), (("3",), ("9", "10")),
                _rotor(rot.build_compressor),
                (("missing_stroke", 1.0), ("rattle", 1.0), ("harmonic", 1.0), ("imbalance", 1.0))),
)}


def attribute_combinations(machine: str, domain: str) -> list[tuple[tuple[str, str], ...]]:
    """Every attribute assignment of `machine` in `domain`, as ((key, value), ...) tuples."""
    mtype = MACHINE_TYPES[machine]
    values = mtype.source_values if domain == "source" else mtype.target_values
    return [tuple(zip(mtype.attribute_keys, combo)) for combo in itertools.product(*values)]


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
    fault_strengths: Mapping[str, float] | None = None,
    unit_seed: int | Sequence[int] = 0,
) -> NDArray[np.float32]:
    """Synthesise one clip: machine (with optional fault) recorded in the domain, near `TARGET_RMS`.

    Args:
        machine: a key of `MACHINE_TYPES`.
        attributes: the clip's true ((key, value), ...) attributes.
        domain: selects the background noise, room and microphone.
        anomaly: fault to add (one of the machine's `fault_kinds`), or None for a normal clip.
        seed: entropy for `numpy.random.SeedSequence`; the fault has its own stream, so the same
            seed with and without a fault gives the same machine, background and channel.
        duration_s: clip length, seconds.
        anomaly_level: fault strength; 1.0 is the calibrated default, 0 adds nothing.
        sample_rate: Hz.
        fault_strengths: per-kind multipliers of `anomaly_level` (missing kinds: 1).
        unit_seed: the physical unit: clips with the same `unit_seed` (and machine type) come from one
            machine, with the same resonances and tonal fingerprint.

    Returns:
        Float32 waveform, shape (S,), RMS within `GAIN_DB` of `TARGET_RMS`.

    Raises:
        ConfigError: unknown machine type, a fault kind the machine does not have, or attributes
            with other keys.
    """
    if machine not in MACHINE_TYPES:
        raise ConfigError(f"machine: unknown machine type {machine!r}; choose from {', '.join(MACHINE_TYPES)}")
    mtype = MACHINE_TYPES[machine]
    if anomaly is not None and anomaly not in mtype.fault_kinds:
        known = "unknown kind" if anomaly not in FAULTS else f"{machine} has no fault kind"
        raise ConfigError(f"anomaly: {known} {anomaly!r}; {machine} suffers {', '.join(mtype.fault_kinds)}")
    if sorted(key for key, _ in attributes) != sorted(mtype.attribute_keys):
        raise ConfigError(f"attributes: {machine} needs the keys {', '.join(mtype.attribute_keys)}, got {attributes!r}")
    machine_rng, fault_rng, noise_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))
    n = int(round(duration_s * sample_rate))
    level = 0.0
    if anomaly is not None:
        level = anomaly_level * dict(mtype.faults)[anomaly] * (fault_strengths or {}).get(anomaly, 1.0)
    fault = anomaly if level > 0 else None
    unit_entropy = [zlib.crc32(machine.encode()), *np.atleast_1d(np.asarray(unit_seed, dtype=np.int64)).tolist()]
    unit_rng = np.random.default_rng(unit_entropy)
    sound = mtype.render(dict(attributes), n, sample_rate, machine_rng, fault, level, fault_rng, unit_rng)
    mix = record(unit(sound), domain, sample_rate, noise_rng)
    gain = 10.0 ** (noise_rng.uniform(-GAIN_DB, GAIN_DB) / 20.0)
    return (mix * (gain * TARGET_RMS / rms(mix))).astype(np.float32)
