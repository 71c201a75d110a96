"""Synthetic machines: determinism, DCASE layout and grammar, counts, hidden attributes, loudness,
faults and overwrite protection, on a tiny dataset built once per module."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asdlab.data.filenames import parse_clip_name
from asdlab.data.metadata import read_attribute_correspondence, read_attributes_csv
from asdlab.data.records import NO_ATTRIBUTE
from asdlab.data import _recording_conditions, _rotating_machines, _valve
from asdlab.data._machine_sounds import FAULTS, GAIN_DB, MACHINE_TYPES, attribute_combinations
from asdlab.data.synth import (
    ANOMALY_KINDS,
    MACHINE_NAMES,
    TARGET_RMS,
    generate_dataset,
    make_config,
    plan_clips,
    render_clip,
)
from asdlab.errors import ConfigError, DataError

TINY = dict(
    machines=["SynFan", "SynGear"],
    train_source=4,
    train_target=2,
    test_per_group=4,
    duration_s=0.5,
    hide_attributes=1,  # the last chosen machine: SynGear
    seed=7,
)
SR = 16000


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("synth") / "ds"
    return generate_dataset(out, **TINY)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _wavs(raw: Path) -> list[Path]:
    return sorted(raw.rglob("*.wav"))


def _split_name(path: Path) -> dict[str, str]:
    """DCASE.md grammar: basename split on `_`."""
    parts = path.stem.split("_")
    return {
        "section": parts[1],
        "domain": parts[2],
        "split": parts[3],
        "label": parts[4],
        "index": parts[5],
        "attributes": "_".join(parts[6:]),
    }


def test_same_seed_same_bytes_other_seed_other_audio(tiny, tmp_path):
    again = generate_dataset(tmp_path / "again", **TINY)
    assert _files(again.out_dir) == _files(tiny.out_dir)

    other = generate_dataset(tmp_path / "other", **{**TINY, "seed": 8, "machines": ["SynFan"], "hide_attributes": 0})
    first, second = _files(tiny.raw_dir / "SynFan"), _files(other.raw_dir / "SynFan")
    assert first.keys() == second.keys()
    wav_names = [name for name in first if name.endswith(".wav")]
    assert all(first[name] != second[name] for name in wav_names)


def test_clip_does_not_depend_on_which_other_machines_are_generated(tiny, tmp_path):
    alone = generate_dataset(tmp_path / "alone", **{**TINY, "machines": ["SynGear"]})
    gear_alone = _files(alone.raw_dir / "SynGear")
    gear_pair = _files(tiny.raw_dir / "SynGear")
    assert {k: v for k, v in gear_alone.items() if k.endswith(".wav")} == {
        k: v for k, v in gear_pair.items() if k.endswith(".wav")
    }


def test_file_holds_the_rendered_clip(tiny):
    clip = plan_clips(tiny.config)[5]
    wave = render_clip(
        clip.machine, clip.attributes, domain=clip.domain, anomaly=clip.anomaly,
        seed=clip.seed_key(tiny.config.seed), duration_s=0.5, unit_seed=tiny.config.seed,
    )
    data, _ = sf.read(tiny.raw_dir / clip.relative_path, dtype="int16")
    np.testing.assert_array_equal(data, np.rint(wave.astype(np.float64) * 32767).astype(np.int16))


def test_layout_grammar_and_audio_format(tiny):
    raw = tiny.raw_dir
    assert raw == tiny.out_dir / "dev_data" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == ["SynFan", "SynGear"]
    for path in _wavs(raw):
        machine, split = path.parent.parent.name, path.parent.name
        fields = _split_name(path)
        assert fields["section"] == "00"
        assert fields["split"] == split
        assert fields["domain"] in ("source", "target")
        assert fields["label"] == "normal" or (split == "test" and fields["label"] == "anomaly")
        assert len(fields["index"]) == 4 and fields["index"].isdigit()
        record = parse_clip_name(path)
        assert (record.machine, record.split, record.domain, record.label) == (
            machine, split, fields["domain"], fields["label"]
        )
        assert record.layout == "dcase2023"
        info = sf.info(path)
        assert (info.samplerate, info.channels, info.subtype, info.format) == (SR, 1, "PCM_16", "WAV")
        assert info.frames == int(0.5 * SR)
    fan = [_split_name(p)["attributes"] for p in _wavs(raw / "SynFan")]
    assert all(parse_clip_name(p).attribute_values[0][0] == "bl" for p in _wavs(raw / "SynFan"))
    assert "bl_5_rpm_1200" in fan and "bl_6_rpm_1800" in fan  # a source and a target combination
    assert {_split_name(p)["attributes"] for p in _wavs(raw / "SynGear")} == {NO_ATTRIBUTE}


def test_counts(tiny):
    expected = {"train": {("source", "normal"): 4, ("target", "normal"): 2}}
    expected["test"] = {(d, lab): 4 for d in ("source", "target") for lab in ("normal", "anomaly")}
    for machine in ("SynFan", "SynGear"):
        for split, groups in expected.items():
            names = [_split_name(p) for p in _wavs(tiny.raw_dir / machine / split)]
            for (domain, label), count in groups.items():
                indices = sorted(n["index"] for n in names if (n["domain"], n["label"]) == (domain, label))
                assert indices == [f"{i:04d}" for i in range(count)]
            assert tiny.counts[machine][f"{split}/source/normal"] == groups[("source", "normal")]
    assert tiny.n_clips == 2 * (4 + 2 + 16) == len(_wavs(tiny.raw_dir))
    with open(tiny.out_dir / "synth_clips.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == tiny.n_clips
    for machine in ("SynFan", "SynGear"):
        kinds = [r["anomaly_kind"] for r in rows if r["label"] == "anomaly" and r["machine"] == machine]
        # 4 anomalies per domain: the machine's first four kinds, once per domain
        assert sorted(kinds) == sorted(2 * MACHINE_TYPES[machine].fault_kinds[:4])
    assert all(r["anomaly_kind"] == "" for r in rows if r["label"] == "normal")
    meta = json.loads((tiny.out_dir / "synth.json").read_text())
    assert meta["config"]["machines"] == ["SynFan", "SynGear"] and meta["config"]["seed"] == 7


def test_attribute_files_and_hidden_correspondence(tiny):
    fan_dir, gear_dir = tiny.raw_dir / "SynFan", tiny.raw_dir / "SynGear"
    header = (fan_dir / "attributes_00.csv").read_text().splitlines()[0]
    assert header == "file_name,d1p,d1v,d2p,d2v"
    fan_table = read_attributes_csv(fan_dir / "attributes_00.csv")
    assert fan_table == {p.name: _split_name(p)["attributes"] for p in _wavs(fan_dir)}
    first_row = (fan_dir / "attributes_00.csv").read_text().splitlines()[1]
    assert first_row == "SynFan/train/section_00_source_train_normal_0000_bl_5_rpm_1200.wav,bl,5,rpm,1200"
    assert not list(fan_dir.glob("*correspondence*"))

    assert set(read_attributes_csv(gear_dir / "attributes_00.csv").values()) == {NO_ATTRIBUTE}
    with open(tiny.out_dir / "synth_clips.csv", newline="") as f:
        truth = {Path(r["file_name"]).name: r["attributes"] for r in csv.DictReader(f) if r["machine"] == "SynGear"}
    for split in ("train", "test"):
        path = gear_dir / f"attributes_00_{split}_correspondence.csv"
        assert path.read_text().splitlines()[0] == "source_file_name,target_file_name"
        mapping = read_attribute_correspondence(path)
        assert sorted(mapping) == sorted(p.name for p in _wavs(gear_dir / split))
        for hidden, revealing in mapping.items():
            fields = _split_name(Path(revealing))
            assert hidden == revealing.replace(fields["attributes"], NO_ATTRIBUTE)
            assert fields["attributes"] == truth[hidden]
            assert fields["attributes"].startswith("volt_") and "_wt_" in fields["attributes"]


def test_loudness_varies_within_the_recording_gain_and_never_with_the_label(tiny):
    levels = []
    for path in _wavs(tiny.raw_dir):
        data, _ = sf.read(path, dtype="float64")
        levels.append(20 * np.log10(np.sqrt(np.mean(data**2))))
        assert np.max(np.abs(data)) < 1.0
    assert np.all(np.abs(np.array(levels) - 20 * np.log10(TARGET_RMS)) <= GAIN_DB + 0.01)
    assert np.ptp(levels) > 1.0  # the gain does vary
    # the gain comes with the background: the same clip with and without its fault is as loud
    common = dict(domain="target", seed=(3, 9), duration_s=0.5)
    for machine, attrs in (("SynFan", (("bl", "6"), ("rpm", "1800"))), ("SynValve", (("pat", "03"), ("pres", "6")))):
        normal = render_clip(machine, attrs, anomaly=None, **common).astype(np.float64)
        for kind in MACHINE_TYPES[machine].fault_kinds:
            faulty = render_clip(machine, attrs, anomaly=kind, **common).astype(np.float64)
            assert np.sqrt(np.mean(faulty**2)) == pytest.approx(np.sqrt(np.mean(normal**2)), rel=1e-5)


def test_default_plan_balances_fault_kinds_and_pairs_them_with_every_combination():
    clips = plan_clips(make_config(machines=len(MACHINE_NAMES)))
    for machine in MACHINE_NAMES:
        kinds = MACHINE_TYPES[machine].fault_kinds
        for domain in ("source", "target"):
            mine = [c for c in clips if (c.machine, c.domain, c.label) == (machine, domain, "anomaly")]
            counts = Counter(c.anomaly for c in mine)
            assert set(counts) == set(kinds) and max(counts.values()) - min(counts.values()) <= 1
            combos = attribute_combinations(machine, domain)
            if len(mine) >= len(kinds) * len(combos):
                assert len({(c.anomaly, c.attributes) for c in mine}) == len(kinds) * len(combos)
    assert {c.anomaly for c in clips if c.anomaly} == set(ANOMALY_KINDS) == set(FAULTS)


@pytest.mark.parametrize("machine", MACHINE_NAMES)
def test_domains_share_no_attribute_value(machine):
    mtype = MACHINE_TYPES[machine]
    assert len(mtype.source_values) == len(mtype.target_values) == len(mtype.attribute_keys)
    for source, target in zip(mtype.source_values, mtype.target_values):
        assert not set(source) & set(target)


def test_every_fault_kind_is_documented():
    for fault in FAULTS.values():
        assert fault.family in ("timing", "intermittent", "spectral")
        assert fault.strength > 0 and fault.unit and len(fault.story) > 40


def test_ten_second_clips_on_request(tmp_path):
    summary = generate_dataset(tmp_path / "long", machines=["SynValve"], train_source=1, train_target=1,
                               test_per_group=1, duration_s=10.0, seed=2)
    for path in _wavs(summary.raw_dir):
        assert sf.info(path).frames == 10 * SR


def test_refuses_a_non_empty_folder_and_overwrites_its_own(tiny, tmp_path):
    out = tmp_path / "ds"
    generate_dataset(out, **{**TINY, "machines": ["SynFan"], "hide_attributes": 0})
    with pytest.raises(DataError, match="not empty.*overwrite"):
        generate_dataset(out, **{**TINY, "machines": ["SynFan"], "hide_attributes": 0})
    stale = out / "dev_data" / "raw" / "SynFan" / "train" / "section_00_source_train_normal_0099_bl_5_rpm_1200.wav"
    stale.write_bytes(b"stale")
    summary = generate_dataset(out, **TINY, overwrite=True)
    assert not stale.exists()
    assert _files(summary.out_dir) == _files(tiny.out_dir)

    def interrupt(machine: str, done: int, total: int) -> None:
        raise KeyboardInterrupt

    broken = tmp_path / "broken"
    with pytest.raises(KeyboardInterrupt):
        generate_dataset(broken, **TINY, progress=interrupt)
    assert not (broken / "synth.json").exists()  # an interrupted run is never taken for a dataset
    generate_dataset(broken, **TINY, overwrite=True)
    assert _files(broken) == _files(tiny.out_dir)

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="did not write"):
        generate_dataset(foreign, **TINY, overwrite=True)
    assert (foreign / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"machines": 99}, "machines: 99 is out of range"),
        ({"machines": ["SynFan", "fan"]}, "machines: unknown machine type"),
        ({"machines": 0}, "machines: at least one"),
        ({"hide_attributes": ["SynPump"], "machines": ["SynFan"]}, "hide_attributes: unknown"),
        ({"hide_attributes": 5}, "hide_attributes: 5 is out of range"),
        ({"train_source": 0}, "train_source"),
        ({"test_per_group": 10000}, "test_per_group"),
        ({"duration_s": 0.0}, "duration_s"),
        ({"duration_s": 60.0}, "duration_s"),
        ({"anomaly_level": float("nan")}, "anomaly_level"),
        ({"fault_strengths": {"crack": 1.0}}, "fault_strengths: unknown fault kind 'crack'"),
        ({"fault_strengths": {"rattle": -1.0}}, "fault_strengths: rattle needs a finite number >= 0"),
        ({"fault_strengths": [("rattle", 1.0)]}, "fault_strengths: expected a mapping"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        make_config(**kwargs)


def test_render_clip_names_a_bad_argument():
    with pytest.raises(ConfigError, match="machine: unknown machine type 'fan'"):
        render_clip("fan", (), domain="source", anomaly=None, seed=0, duration_s=0.5)
    with pytest.raises(ConfigError, match="anomaly: unknown kind 'crack'"):
        render_clip("SynFan", (("bl", "5"), ("rpm", "1200")), domain="source", anomaly="crack", seed=0, duration_s=0.5)
    with pytest.raises(ConfigError, match="anomaly: SynFan has no fault kind 'missing_stroke'; SynFan suffers rattle"):
        render_clip("SynFan", (("bl", "5"), ("rpm", "1200")), domain="source", anomaly="missing_stroke", seed=0,
                    duration_s=0.5)
    with pytest.raises(ConfigError, match="attributes: SynFan needs the keys bl, rpm"):
        render_clip("SynFan", (("bl", "5"),), domain="source", anomaly=None, seed=0, duration_s=0.5)


def test_defaults():
    config = make_config()
    assert config.machines == MACHINE_NAMES[:4] and config.hidden == ()
    assert (config.train_source, config.train_target, config.test_per_group) == (120, 6, 20)
    assert config.duration_s == 2.0 and config.sample_rate == SR
    assert all("_" not in name for name in MACHINE_NAMES)
    assert make_config(hide_attributes=2).hidden == MACHINE_NAMES[2:4]


def test_target_domain_is_two_attribute_combinations_per_machine():
    # as in DCASE, the few target training clips are split over more than one new condition (3 clips
    # each by default): a detector cannot learn the target domain as one tight class
    for machine in MACHINE_TYPES:
        assert len(attribute_combinations(machine, "target")) == 2, machine


@pytest.mark.parametrize("pattern", sorted(_valve.PATTERNS))
def test_a_valve_program_repeats_a_whole_number_of_times_per_clip(pattern):
    # whatever the clip's start, a 2 s clip holds the same strokes: clips of one class stay alike
    counts = set()
    for seed in range(8):
        strokes = _valve.plan_strokes(_valve.PATTERNS[pattern], 2.0, np.random.default_rng(seed))
        counts.add(sum(0.0 <= s.opens < 2.0 for s in strokes))
    assert len(counts) == 1, counts


def test_slide_speeds_give_whole_reversals_per_clip():
    values = MACHINE_TYPES["SynSlider"]
    for velocity in values.source_values[0] + values.target_values[0]:
        rng, unit = np.random.default_rng(0), np.random.default_rng(1)
        stroke_hz = _rotating_machines.build_slider({"vel": velocity, "ac": "0.1"}, rng, unit).stroke_hz
        assert abs(2 * 2.0 * stroke_hz - round(2 * 2.0 * stroke_hz)) < 1e-9, velocity


@pytest.mark.parametrize("build", [_rotating_machines.build_fan, _rotating_machines.build_gear])
def test_a_unit_keeps_its_fingerprint_between_recordings(build):
    # the same unit recorded twice: casing modes within 0.7 % (the clip spread is 0.1 %) and tonal
    # levels within 0.8 dB RMS (0.3 dB each)
    attrs = {"bl": "5", "rpm": "1200"} if build is _rotating_machines.build_fan else {"volt": "1.0", "wt": "0"}

    def rotor(unit_seed, clip_seed):
        return build(attrs, np.random.default_rng(clip_seed), np.random.default_rng(unit_seed))

    def mode_gap(a, b):
        return max(abs(x[0] / y[0] - 1) for x, y in zip(a.resonances, b.resonances))

    def level_gap(a, b):
        return float(np.sqrt(np.mean(np.square(np.subtract(a.levels_db, b.levels_db)))))

    same = [(rotor(unit, 10 + unit), rotor(unit, 20 + unit)) for unit in range(8)]
    other = [(rotor(unit, 10 + unit), rotor(unit + 8, 20 + unit)) for unit in range(8)]
    assert max(mode_gap(a, b) for a, b in same) < 0.007 and max(level_gap(a, b) for a, b in same) < 0.8
    # another unit: typically 1-2 % and 2 dB apart (the unit spread is 1 % and 1.5 dB)
    assert np.mean([mode_gap(a, b) for a, b in other]) > 4 * np.mean([mode_gap(a, b) for a, b in same])
    assert np.mean([level_gap(a, b) for a, b in other]) > 3 * np.mean([level_gap(a, b) for a, b in same])


def test_a_valve_unit_keeps_its_body_modes_between_recordings():
    def valve(unit_seed, clip_seed):
        return _valve._valve(3.0, np.random.default_rng(clip_seed), np.random.default_rng(unit_seed))

    def gap(a, b):
        return max(abs(x[0] / y[0] - 1) for x, y in zip(a.open_modes + a.close_modes, b.open_modes + b.close_modes))

    assert gap(valve(1, 10), valve(1, 11)) < 0.007
    assert gap(valve(1, 10), valve(2, 11)) > 0.007


def test_the_dataset_seed_picks_the_unit(tiny, tmp_path):
    # render_clip with the dataset's unit gives the file; another unit gives other audio
    clip = plan_clips(tiny.config)[0]
    common = dict(domain=clip.domain, anomaly=None, seed=clip.seed_key(tiny.config.seed), duration_s=0.5)
    own = render_clip(clip.machine, clip.attributes, unit_seed=tiny.config.seed, **common)
    other = render_clip(clip.machine, clip.attributes, unit_seed=tiny.config.seed + 1, **common)
    data, _ = sf.read(tiny.raw_dir / clip.relative_path, dtype="int16")
    np.testing.assert_array_equal(data, np.rint(own.astype(np.float64) * 32767).astype(np.int16))
    assert not np.allclose(own, other, atol=1e-3)


@pytest.mark.parametrize("domain", ["source", "target"])
def test_the_hall_is_busier_in_some_recordings_than_in_others(domain):
    # a steady 1 kHz tone as the machine: tone over the rest is the SNR (the room and the microphone
    # are fixed per domain, so their gain at 1 kHz is the same in every recording)
    n, sample_rate = 32000, 16000
    tone = np.sin(2 * np.pi * 1000.0 * np.arange(n) / sample_rate)
    shares = []  # SNR per recording, dB
    for seed in range(16):
        recording = _recording_conditions.record(tone, domain, sample_rate, np.random.default_rng(seed))
        power = np.abs(np.fft.rfft(recording)) ** 2
        at_tone = power[1998:2003].sum()
        shares.append(10 * np.log10(at_tone / (power.sum() - at_tone)))
    low, high = _recording_conditions._CHANNEL[domain].snr_db
    assert np.ptp(shares) > 3.0  # recordings differ by several dB in how loud the hall is
    assert np.ptp(shares) < high - low + 0.5  # within the range the domain allows

