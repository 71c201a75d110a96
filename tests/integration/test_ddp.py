"""Two processes with DDP on the CPU (gloo), started as a user starts them (`torchrun ... -m asdlab`):
DAP and fine-tuning give the losses and weights of one process accumulating two micro-batches (the
same global batch and seed), every rank holds the same weights, a stopped 2-process run resumes
exactly, and only rank 0 writes files."""

import csv
import os
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

pytestmark = pytest.mark.slow

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]  # = torchrun
DDP = ["--batch-size", "2", "--devices", "2", "--strategy", "ddp"]
ONE_PROCESS = ["--batch-size", "2", "--accumulate", "2"]  # the same global batch of 4 clips


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """Eight 2-s noise clips of one machine with two attribute values."""
    folder = tmp_path_factory.mktemp("ddp") / "root" / "fan" / "train"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(8):
        with wave.open(str(folder / f"section_00_source_train_normal_{i:04d}_a_{i % 2}.wav"), "wb") as f:
            f.setnchannels(1)
            f.setsampwidth(2)
            f.setframerate(16000)
            f.writeframes((rng.standard_normal(32000) * 3000).astype("<i2").tobytes())
    return folder.parents[1]


def _asdlab(*args, launcher=(sys.executable, "-m")) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([*launcher, "asdlab", *map(str, args)], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def _torchrun(*args) -> None:
    _asdlab(*args, launcher=(*TORCHRUN, "-m"))


def _log(path: Path) -> list[dict[str, str]]:
    with open(path / "train_log.csv", newline="") as f:
        return list(csv.DictReader(f))


def _assert_same_run(one: Path, two: Path, weights: str) -> None:
    rows_one, rows_two = _log(one), _log(two)
    assert [r["step"] for r in rows_two] == [r["step"] for r in rows_one] == ["1", "2", "3", "4"]
    for a, b in zip(rows_one, rows_two):
        assert float(b["loss"]) == pytest.approx(float(a["loss"]), rel=1e-4)
        assert float(b["rank_weight_spread"]) == 0.0  # both ranks hold the same weights
    a, b = load_file(str(one / weights)), load_file(str(two / weights))
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=1e-4, atol=1e-6, msg=name)


def _assert_only_outputs(folder: Path, expected: set[str]) -> None:
    assert {p.name for p in folder.iterdir()} == expected  # no second copy, no left-over temporary file


def test_dap_on_two_processes_equals_one_and_resumes_exactly(root, tmp_path):
    common = ["pretrain", root, "--preset", "eat-tiny", "--clones", "2", "--steps", "4", "--warmup", "1",
              "--log-every", "1", "--checkpoint-every", "2", "--accelerator", "cpu"]
    _asdlab(*common, "--out", tmp_path / "one", *ONE_PROCESS)
    _torchrun(*common, "--out", tmp_path / "two", *DDP, "--stop-after", "2")  # as if the job's time ran out
    assert [r["step"] for r in _log(tmp_path / "two")] == ["1", "2"]
    _torchrun(*common, "--out", tmp_path / "two", *DDP, "--resume")
    _assert_same_run(tmp_path / "one", tmp_path / "two", "encoder.safetensors")
    _assert_only_outputs(tmp_path / "two", {"cache", "last.ckpt", "train_log.csv", "pretrain_settings.json",
                                            "encoder.safetensors", "teacher.safetensors", "decoder.safetensors"})


def test_finetuning_on_two_processes_equals_one(root, tmp_path):
    common = ["finetune", root, "--recipe", "eat", "--preset", "eat-tiny", "--steps", "4", "--warmup", "1",
              "--lr", "1e-4", "--drop-path", "0", "--log-every", "1", "--checkpoint-every", "4",
              "--accelerator", "cpu"]
    _asdlab(*common, "--out", tmp_path / "one", *ONE_PROCESS)
    _torchrun(*common, "--out", tmp_path / "two", *DDP)
    _assert_same_run(tmp_path / "one", tmp_path / "two", "encoder.safetensors")
    _assert_only_outputs(tmp_path / "two", {"last.ckpt", "train_log.csv", "finetune_settings.json", "model.json",
                                            "encoder.safetensors", "embedding_layers.safetensors",
                                            "head.safetensors"})
