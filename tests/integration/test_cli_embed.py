"""`asdlab embed` through the real entry point: one row per clip, metadata, crash + resume, bad clips."""

from __future__ import annotations

import json
import shutil
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest

import asdlab
import asdlab.embeddings.extract as extract
from asdlab.cli import main as cli_main
from asdlab.data.index import index_dataset
from asdlab.data.synth import generate_dataset
from asdlab.embeddings.table import EmbeddingTable

_LOAD_AUDIO = extract.load_audio

# 4 clips a batch, a chunk written after every batch; "all" frames keeps eat-tiny at ~24 tokens a clip.
FAST = ["--backbone", "eat-tiny", "--batch-size", "4", "--checkpoint-every", "1", "--target-frames", "all"]


@pytest.fixture(autouse=True)
def _only_embed(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "embed" in cli_main._COMMAND_MODULES
    monkeypatch.setattr(cli_main, "_COMMAND_MODULES", ("embed",))  # independent of sibling commands


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth")
    generate_dataset(root, machines=2, train_source=6, train_target=2, test_per_group=2, duration_s=0.5,
                     seed=1, overwrite=True)
    return root


@pytest.fixture(scope="module")
def uninterrupted(dataset, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("whole") / "emb.npz"
    assert cli_main.main(["embed", str(dataset), *FAST, "--out", str(out)]) == 0
    return out


def _assert_same_table(a: EmbeddingTable, b: EmbeddingTable) -> None:
    for column in fields(EmbeddingTable):
        np.testing.assert_array_equal(getattr(a, column.name), getattr(b, column.name), err_msg=column.name)


class _CountingLoader:
    """Stands in for `load_audio`; raises after `crash_after` calls to simulate a crash mid-run."""

    def __init__(self, crash_after: int | None = None):
        self.calls = 0
        self.crash_after = crash_after

    def __call__(self, *args, **kwargs):
        if self.crash_after is not None and self.calls == self.crash_after:
            raise RuntimeError("simulated crash")
        self.calls += 1
        return _LOAD_AUDIO(*args, **kwargs)


def test_one_row_per_clip_and_the_settings_beside_it(dataset, uninterrupted):
    table = EmbeddingTable.load(uninterrupted)
    records = index_dataset(dataset)
    assert len(records) == 32
    assert table.embeddings.shape == (32, 192) and np.isfinite(table.embeddings).all()
    assert table.path.tolist() == [str(r.path) for r in records]
    assert sorted(set(table.split)) == ["test", "train"] and len(set(table.machine)) == 2

    metadata = json.loads(uninterrupted.with_suffix(".json").read_text())
    assert metadata["format"] == "asdlab-embeddings" and metadata["n_clips"] == 32 and metadata["failures"] == []
    settings = metadata["settings"]
    assert settings["backbone"] == "eat-tiny" and settings["pooling"] == "cls" and settings["embed_dim"] == 192
    assert settings["sample_rate"] == 16000 and settings["target_frames"] is None and settings["seed"] == 0
    assert settings["weights_sha256"] is None and metadata["weights"] is None
    assert settings["asdlab_version"] == asdlab.__version__
    assert not Path(str(uninterrupted) + ".partial").exists()


def test_a_rerun_after_a_crash_continues_and_gives_the_same_table(dataset, uninterrupted, tmp_path, monkeypatch,
                                                                  capsys):
    out = tmp_path / "emb.npz"
    partial = tmp_path / "emb.npz.partial"
    monkeypatch.setattr(extract, "load_audio", _CountingLoader(crash_after=10))
    with pytest.raises(RuntimeError, match="simulated crash"):
        cli_main.main(["embed", str(dataset), *FAST, "--out", str(out)])
    assert not out.exists()
    assert sorted(p.name for p in partial.glob("chunk-*.npz")) == [
        "chunk-00000000-00000004.npz", "chunk-00000004-00000008.npz"
    ]

    rerun = _CountingLoader()
    monkeypatch.setattr(extract, "load_audio", rerun)
    assert cli_main.main(["embed", str(dataset), *FAST, "--out", str(out)]) == 0
    assert rerun.calls == 32 - 8  # the two finished chunks are not embedded again
    assert "resumed: 8 clips" in capsys.readouterr().out
    _assert_same_table(EmbeddingTable.load(out), EmbeddingTable.load(uninterrupted))
    key = json.loads(out.with_suffix(".json").read_text())["key"]
    assert key == json.loads(uninterrupted.with_suffix(".json").read_text())["key"]
    assert not partial.exists()


def test_a_rerun_with_other_settings_refuses_to_mix(dataset, tmp_path, monkeypatch, capsys):
    out = tmp_path / "emb.npz"
    monkeypatch.setattr(extract, "load_audio", _CountingLoader(crash_after=5))
    with pytest.raises(RuntimeError, match="simulated crash"):
        cli_main.main(["embed", str(dataset), *FAST, "--out", str(out)])
    monkeypatch.undo()
    monkeypatch.setattr(cli_main, "_COMMAND_MODULES", ("embed",))

    assert cli_main.main(["embed", str(dataset), *FAST, "--pooling", "mean", "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert "emb.npz.partial: holds partial embeddings from another run (settings pooling differ)" in error
    assert "--restart" in error and not out.exists()

    assert cli_main.main(["embed", str(dataset), *FAST, "--pooling", "mean", "--restart", "--out", str(out)]) == 0
    assert json.loads(out.with_suffix(".json").read_text())["settings"]["pooling"] == "mean"
    assert len(EmbeddingTable.load(out)) == 32


def test_a_corrupt_clip_is_reported_and_skipped(dataset, uninterrupted, tmp_path, capsys, caplog):
    root = tmp_path / "data"
    shutil.copytree(dataset, root)
    broken = sorted(root.rglob("*test*.wav"))[3]
    broken.write_bytes(b"RIFF\x00\x00not really a wav")
    out = tmp_path / "emb.npz"
    assert cli_main.main(["embed", str(root), *FAST, "--out", str(out)]) == 0

    printed = capsys.readouterr().out
    assert "skipped 1 clip(s) that could not be used" in printed
    reports = [r.getMessage() for r in caplog.records if str(broken) in r.getMessage()]
    assert len(reports) == 1 and f"{broken}: not an audio file" in reports[0]
    table = EmbeddingTable.load(out)
    assert len(table) == 31 and str(broken) not in table.path.tolist()
    metadata = json.loads(out.with_suffix(".json").read_text())
    assert [f["path"] for f in metadata["failures"]] == [str(broken)] and metadata["n_clips"] == 31
    # The other clips' embeddings do not depend on the missing one.
    whole = EmbeddingTable.load(uninterrupted)
    np.testing.assert_array_equal(table.filename, whole.filename[whole.filename != broken.name])
    np.testing.assert_allclose(table.embeddings, whole.embeddings[whole.filename != broken.name], atol=1e-5)


def test_bad_arguments_are_reported(dataset, tmp_path, capsys):
    assert cli_main.main(["embed", str(dataset), "--backbone", "eat-huge", "--out", str(tmp_path / "e.npz")]) == 2
    assert "unknown backbone 'eat-huge'; choose one of" in capsys.readouterr().err
    assert cli_main.main(["embed", str(dataset), "--backbone", "eat-tiny", "--out", str(tmp_path / "e.csv")]) == 2
    assert "e.csv: the output must be a .npz file" in capsys.readouterr().err
