"""Every class of bad clip beside good ones, through `embed`, `fit`, `score` and the service: each bad clip is
named once with its reason, and the good clips' embeddings and scores equal those of a clean run exactly."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asdlab.cli import main as cli_main
from asdlab.data.synth import generate_dataset
from asdlab.embeddings.table import EmbeddingTable
from asdlab.metrics.files import read_anomaly_scores

RATE = 16000


def _write(path: Path, samples, subtype="FLOAT") -> bytes:
    sf.write(path, np.asarray(samples, np.float32), RATE, subtype=subtype)
    return path.read_bytes()


def _bad_clips(folder: Path, template: str) -> dict[str, str]:
    """Write one clip of every bad class into `folder`, named like `template` (a DCASE name); returns name -> reason."""
    def name(index: int) -> str:
        parts = template.split("_")
        parts[5] = f"{900 + index:04d}"  # section_00_source_test_normal_NNNN_...: the clip number
        return "_".join(parts)

    rng = np.random.default_rng(0)
    expected = {}

    def add(index, reason, make):
        path = folder / name(index)
        make(path)
        expected[path.name] = reason

    add(0, "shorter than one", lambda p: _write(p, rng.normal(0, 0.1, 28)))
    add(1, "empty audio file (0 samples)", lambda p: _write(p, np.zeros(0)))
    add(2, "empty file (0 bytes)", lambda p: p.write_bytes(b""))
    add(3, "truncated file", lambda p: p.write_bytes(_write(p, rng.normal(0, 0.1, RATE), "PCM_16")[:44 + 500]))
    add(4, "not an audio file", lambda p: p.write_text("this is a text file, not a recording\n" * 20))
    add(5, "NaN or inf", lambda p: _write(p, np.where(np.arange(RATE) == 100, np.nan, 0.1)))
    add(6, "NaN or inf", lambda p: _write(p, np.where(np.arange(RATE) == 100, np.inf, 0.1)))
    add(7, "all-silent audio", lambda p: _write(p, np.zeros(RATE)))
    add(8, "broken symbolic link", lambda p: p.symlink_to(p.with_name("no_such_recording.wav")))

    def unknown_encoding(path):
        data = bytearray(_write(path, rng.normal(0, 0.1, RATE), "PCM_16"))
        data[20:22] = (0xFFFE).to_bytes(2, "little")  # WAVE_FORMAT_EXTENSIBLE tag on a plain fmt chunk
        path.write_bytes(bytes(data))

    add(9, "unknown or unsupported audio encoding", unknown_encoding)
    return expected


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    base = tmp_path_factory.mktemp("bad_input")
    clean = base / "clean"
    generate_dataset(clean, machines=1, train_source=6, train_target=2, test_per_group=2, duration_s=1.0, seed=5)
    bad = base / "bad"
    shutil.copytree(clean, bad, symlinks=True)
    expected = {}
    for split in ("train", "test"):
        folder = next(bad.rglob(split))
        template = sorted(p.name for p in folder.glob("*.wav"))[0]
        expected.update(_bad_clips(folder, template))
    return clean, bad, expected


def _reports(caplog, expected) -> dict[str, list[str]]:
    """Warnings naming each expected bad clip (the evaluation's one-line summary of unscored clips aside)."""
    messages = [r.getMessage() for r in caplog.records
                if r.levelno >= logging.WARNING and "ground-truth clips have no score" not in r.getMessage()]
    return {name: [m for m in messages if name in m] for name in expected}


def _assert_each_named_once(caplog, expected, names):
    reports = _reports(caplog, {n: expected[n] for n in names})
    for name in names:
        assert len(reports[name]) == 1, (name, reports[name])
        assert expected[name] in reports[name][0], (name, reports[name][0])


def test_embed_fit_score_and_the_service_on_bad_clips(roots, tmp_path, caplog, capsys):
    clean, bad, expected = roots
    caplog.set_level(logging.WARNING)
    all_bad = list(expected)
    test_bad = [n for n in all_bad if "_test_" in n]

    # embed: a learned model (batch results would differ in the last bits if bad clips changed the batches)
    embed = ["--backbone", "two-branch-cnn-small", "--batch-size", "4"]
    assert cli_main.main(["embed", str(clean), *embed, "--out", str(tmp_path / "clean.npz")]) == 0
    caplog.clear()
    assert cli_main.main(["embed", str(bad), *embed, "--out", str(tmp_path / "bad.npz")]) == 0
    _assert_each_named_once(caplog, expected, all_bad)
    assert f"skipped {len(all_bad)} clip(s)" in capsys.readouterr().out
    clean_table, bad_table = EmbeddingTable.load(tmp_path / "clean.npz"), EmbeddingTable.load(tmp_path / "bad.npz")
    assert bad_table.filename.tolist() == clean_table.filename.tolist()
    assert bad_table.embeddings.tobytes() == clean_table.embeddings.tobytes()

    # fit (no training, so the comparison is about the clips) and score
    for name in ("clean", "bad"):
        caplog.clear()
        root = clean if name == "clean" else bad
        assert cli_main.main(["fit", str(root), "--recipe", "baseline", "--out", str(tmp_path / f"{name}_det")]) == 0
        if name == "bad":
            train_bad = [n for n in all_bad if "_train_" in n]
            _assert_each_named_once(caplog, expected, train_bad)
        caplog.clear()
        assert cli_main.main(["score", str(tmp_path / f"{name}_det"), str(root), "--out", str(tmp_path / f"{name}_scores")]) == 0
        if name == "bad":
            _assert_each_named_once(caplog, expected, test_bad)
            warnings = [r.getMessage() for r in caplog.records if "ground-truth clips have no score" in r.getMessage()]
            assert len(warnings) == 1 and f"{len(test_bad)} ground-truth clips have no score" in warnings[0]
            printed = capsys.readouterr().out
            assert f"skipped {len(test_bad)} clip(s)" in printed and "official score" in printed.lower()
    (score_file,) = (tmp_path / "clean_scores").glob("anomaly_score_*.csv")
    clean_names, clean_scores = read_anomaly_scores(score_file)
    bad_names, bad_scores = read_anomaly_scores(tmp_path / "bad_scores" / score_file.name)
    assert bad_names == clean_names and bad_scores.tobytes() == clean_scores.tobytes()
    assert (tmp_path / "bad_scores" / "evaluation.csv").is_file()

    # the service, on the detector fitted with bad clips around
    pytest.importorskip("fastapi", reason="the serve extra is not installed")
    from fastapi.testclient import TestClient

    from asdlab.detector import load_detector
    from asdlab.serve import create_app

    cli_scores = dict(zip(clean_names, clean_scores.tolist()))
    test_folder = next(bad.rglob("test"))
    with TestClient(create_app(load_detector(tmp_path / "bad_det"))) as client:
        for path in sorted(test_folder.iterdir()):
            data = path.read_bytes() if path.exists() else b""
            answer = client.post("/v1/score", params={"machine": "SynFan", "filename": path.name}, content=data,
                                 headers={"content-type": "audio/wav"})
            if path.name in expected:
                assert answer.status_code in (415, 422), (path.name, answer.text)
                problem = answer.json()["problems"][0]
                reason = expected[path.name] if path.exists() else "empty file (0 bytes)"  # a dangling link uploads nothing
                assert problem["file"] == path.name and reason in problem["problem"]
            else:
                assert answer.status_code == 200 and answer.json()["results"][0]["score"] == cli_scores[path.name]


def test_score_exits_2_only_when_nothing_could_be_scored(roots, tmp_path, capsys):
    clean, _, _ = roots
    root = tmp_path / "all_bad"
    shutil.copytree(clean, root)
    assert cli_main.main(["fit", str(root), "--recipe", "baseline", "--out", str(tmp_path / "det")]) == 0
    for clip in next(root.rglob("test")).glob("*.wav"):
        clip.write_text("not audio")
    assert cli_main.main(["score", str(tmp_path / "det"), str(root), "--out", str(tmp_path / "scores")]) == 2
    assert "none of the 8 clips could be embedded (8 failed)" in capsys.readouterr().err
