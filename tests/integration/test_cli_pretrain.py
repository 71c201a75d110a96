"""`asdlab pretrain` through the real entry point: progress lines, the DAP encoder, --resume."""

from __future__ import annotations

import pytest

from asdlab.cli import main as cli_main
from asdlab.data.synth import generate_dataset
from asdlab.encoders.checkpoints import read_encoder_metadata

FAST = ["--preset", "eat-tiny", "--batch-size", "4", "--clones", "2", "--lr", "1e-3", "--warmup", "1",
        "--accelerator", "cpu", "--log-every", "1", "--checkpoint-every", "2"]


@pytest.fixture(autouse=True)
def _only_pretrain(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "pretrain" in cli_main._COMMAND_MODULES
    monkeypatch.setattr(cli_main, "_COMMAND_MODULES", ("pretrain",))


def test_pretrain_cli_prints_progress_and_resumes(tmp_path, capsys):
    root = tmp_path / "data"
    generate_dataset(root, machines=2, train_source=4, train_target=2, test_per_group=1, duration_s=1.0, seed=4)
    out = tmp_path / "dap"
    assert cli_main.main(["pretrain", str(root), "--out", str(out), "--steps", "2", *FAST]) == 0
    printed = capsys.readouterr().out
    assert "step 1/2 | loss " in printed and "(frame " in printed and "| ema 0.99980" in printed
    assert "clips/s | ETA" in printed and "DAP encoder:" in printed
    assert read_encoder_metadata(out / "encoder.safetensors")["steps"] == "2"

    assert cli_main.main(["pretrain", str(root), "--out", str(out), "--steps", "3", *FAST, "--resume"]) == 2
    assert "cannot resume with other settings (steps: 2 -> 3)" in capsys.readouterr().err
    assert cli_main.main(["pretrain", str(root), "--out", str(out), "--steps", "2", *FAST, "--resume"]) == 0
    assert "for 2 updates" in capsys.readouterr().out
