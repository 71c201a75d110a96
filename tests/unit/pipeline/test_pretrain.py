"""`run_pretraining` at toy size: files written, the DAP encoder loads, a killed run resumes exactly."""

import csv

import pytest
import torch

from asdlab.data.synth import generate_dataset
from asdlab.encoders.backbone import build_backbone
from asdlab.encoders.checkpoints import read_encoder_metadata, save_encoder
from asdlab.encoders.registry import create_encoder
from asdlab.errors import ConfigError
from asdlab.pipeline.pretrain import PretrainSettings, build_dap_task, run_pretraining
from asdlab.training.loop import CHECKPOINT_NAME, LOG_NAME, read_checkpoint

TINY = PretrainSettings(preset="eat-tiny", steps=6, batch_size=4, clones=2, lr=1e-3, warmup_steps=1,
                        accelerator="cpu", checkpoint_every=2, log_every=1, seed=3)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    generate_dataset(out, machines=2, train_source=4, train_target=2, test_per_group=1, duration_s=1.0, seed=2,
                     overwrite=True)
    return out


def test_pretraining_writes_a_loadable_dap_encoder(root, tmp_path):
    result = run_pretraining([root], tmp_path, TINY)
    assert result.steps == 6 and result.clips == 12  # 2 machines x (4 + 2) train clips, no test clips
    metadata = read_encoder_metadata(result.encoder_path)
    assert metadata["source"] == "dap" and metadata["preset"] == "eat-tiny" and metadata["target_frames"] == "112"
    backbone = build_backbone("eat-tiny", weights=result.encoder_path, pooling="mean", target_frames=112)
    assert backbone(torch.zeros(2, 16000)).shape == (2, 192)
    state = read_checkpoint(result.checkpoint)
    assert any(k.startswith("teacher.") for k in state["task"]) and any(k.startswith("decoder.") for k in state["task"])
    rows = list(csv.DictReader(open(result.log_path)))
    assert {"loss_frame", "loss_utterance", "ema_decay", "lr"} <= set(rows[0])
    assert len(list((tmp_path / "cache").glob("clips-*.npy"))) == 1


def test_killed_run_resumes_to_the_same_step_and_losses(root, tmp_path):
    full = run_pretraining([root], tmp_path / "full", TINY)

    class Killed(Exception):
        pass

    def kill_at_three(report):
        if report.step == 3:
            raise Killed

    with pytest.raises(Killed):
        run_pretraining([root], tmp_path / "cut", TINY, progress=kill_at_three)
    assert read_checkpoint(tmp_path / "cut" / CHECKPOINT_NAME)["step"] == 2
    resumed = run_pretraining([root], tmp_path / "cut", TINY, resume=True)
    assert resumed.steps == 6
    full_rows = list(csv.DictReader(open(tmp_path / "full" / LOG_NAME)))
    cut_rows = list(csv.DictReader(open(tmp_path / "cut" / LOG_NAME)))
    assert [r["step"] for r in cut_rows] == [str(s) for s in range(1, 7)]
    assert [r["loss"] for r in cut_rows] == [r["loss"] for r in full_rows]
    a = read_checkpoint(full.checkpoint)["task"]
    b = read_checkpoint(resumed.checkpoint)["task"]
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
    with pytest.raises(ConfigError, match="clones"):
        run_pretraining([root], tmp_path / "cut", PretrainSettings(**{**TINY.__dict__, "clones": 3}), resume=True)


def test_a_run_continues_from_an_earlier_run_with_its_teacher_and_decoder(root, tmp_path):
    first = run_pretraining([root], tmp_path / "general", TINY)
    task = build_dap_task(PretrainSettings(preset="eat-tiny", init=str(tmp_path / "general"), seed=9),
                          target_frames=112)
    state = read_checkpoint(first.checkpoint)["task"]
    for module_name in ("encoder", "teacher", "decoder"):
        for key, value in getattr(task, module_name).state_dict().items():
            torch.testing.assert_close(value, state[f"{module_name}.{key}"], rtol=0, atol=0)
    assert not torch.equal(task.teacher.cls_token, task.encoder.cls_token)  # the EMA teacher, not a copy


def test_init_from_an_asdlab_encoder_file(tmp_path):
    torch.manual_seed(5)
    source = create_encoder("eat-tiny")
    save_encoder(source, tmp_path / "enc.safetensors", preset="eat-tiny")
    task = build_dap_task(PretrainSettings(preset="eat-tiny", init=str(tmp_path / "enc.safetensors")),
                          target_frames=32)
    torch.testing.assert_close(task.encoder.cls_token, source.cls_token)
    torch.testing.assert_close(task.teacher.cls_token, source.cls_token)
    scratch_a = build_dap_task(PretrainSettings(preset="eat-tiny", seed=1), target_frames=32)
    scratch_b = build_dap_task(PretrainSettings(preset="eat-tiny", seed=1), target_frames=32)
    torch.testing.assert_close(scratch_a.encoder.cls_token, scratch_b.encoder.cls_token)
    with pytest.raises(ConfigError, match="DAP trains transformer encoders"):
        build_dap_task(PretrainSettings(preset="mobilenet-mn04"), target_frames=32)
