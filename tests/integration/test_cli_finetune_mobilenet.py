"""`asdlab finetune --recipe mobilenet` then `asdlab embed --model` through the real entry point."""

from __future__ import annotations

import json

import numpy as np
import pytest

from asdlab.cli import main as cli_main
from asdlab.data.synth import generate_dataset


@pytest.fixture(autouse=True)
def _only_ours(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli_main, "_COMMAND_MODULES", ("finetune", "embed"))


def test_mobilenet_recipe_from_the_cli(tmp_path, capsys):
    root = tmp_path / "data"
    generate_dataset(root, machines=1, train_source=6, train_target=2, test_per_group=1, duration_s=1.0, seed=4)
    model = tmp_path / "model"
    args = ["finetune", str(root), "--out", str(model), "--recipe", "mobilenet", "--embed-layer", "6",
            "--crop-s", "0.5", "--steps", "50", "--epochs", "1", "--batch-size", "4", "--accelerator", "cpu",
            "--log-every", "1"]
    assert cli_main.main(args) == 0
    assert "fine-tuned 2 steps on" in capsys.readouterr().out  # ceil(1 x 8 clips / 4) of the 50 allowed
    description = json.loads((model / "model.json").read_text())
    assert (description["recipe"], description["pooling"], description["embed_layer"]) == ("mobilenet", "band-mean", 6)
    out = tmp_path / "emb.npz"
    assert cli_main.main(["embed", str(root), "--model", str(model), "--out", str(out)]) == 0
    assert np.load(out)["embeddings"].shape == (12, 256)
