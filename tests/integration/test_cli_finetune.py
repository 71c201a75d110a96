"""`asdlab finetune` then `asdlab embed --model` through the real entry point."""

from __future__ import annotations

import numpy as np
import pytest

from asdlab.cli import main as cli_main
from asdlab.data.synth import generate_dataset


@pytest.fixture(autouse=True)
def _only_ours(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "finetune" in cli_main._COMMAND_MODULES
    monkeypatch.setattr(cli_main, "_COMMAND_MODULES", ("finetune", "embed"))


def test_finetune_then_embed_with_the_model(tmp_path, capsys):
    root = tmp_path / "data"
    generate_dataset(root, machines=2, train_source=4, train_target=2, test_per_group=1, duration_s=1.0, seed=4)
    model = tmp_path / "model"
    args = ["finetune", str(root), "--out", str(model), "--recipe", "two-branch-cnn", "--preset",
            "two-branch-cnn-small", "--steps", "2", "--batch-size", "4", "--accelerator", "cpu", "--log-every", "1"]
    assert cli_main.main(args) == 0
    captured = capsys.readouterr()
    # per machine: 4 source clips in 4 attribute classes, 2 target clips in the target's 2 classes
    assert "step 2/2  loss " in captured.err and "fine-tuned 2 steps on 12 classes" in captured.out
    assert (model / "model.json").is_file() and (model / "train_log.csv").is_file()

    out = tmp_path / "emb.npz"
    assert cli_main.main(["embed", str(root), "--model", str(model), "--out", str(out)]) == 0
    assert "64-d, two-branch-cnn-small" in capsys.readouterr().out
    assert np.load(out)["embeddings"].shape == (20, 64)
    assert cli_main.main(["embed", str(root), "--out", str(out)]) == 2
    assert "exactly one of --backbone NAME or --model DIR" in capsys.readouterr().err
