"""The Fabric training loop: schedule, accumulation, checkpoints and exact resume on a toy task."""

import csv

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from asdlab.errors import ConfigError
from asdlab.training.loop import CHECKPOINT_NAME, LOG_NAME, TrainOutput, TrainSettings, read_checkpoint, train
from asdlab.training.schedules import cosine_with_warmup, eat_layer_id, parameter_groups


class NoisyRegression(nn.Module):
    """Linear regression whose loss uses the step generator (as masks and augmentation do)."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 1)
        self.norm = nn.LayerNorm(4)
        self.updates = 0

    def forward(self, batch, *, generator):
        x, y = batch
        noise = torch.randn(x.shape, generator=generator, device=x.device) * 0.01
        loss = ((self.linear(self.norm(x + noise)).squeeze(-1) - y) ** 2).mean()
        return TrainOutput(loss, {"noise": noise.abs().mean()})

    def optimizer_groups(self, *, weight_decay):
        return parameter_groups(self.named_parameters(), weight_decay=weight_decay)

    def after_optimizer_step(self, step):
        self.updates = step
        return {"updates": float(step)}


def _data(n=40):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 4, generator=g)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 3.0]) + 0.1
    return TensorDataset(x, y)


def _settings(**overrides):
    base = dict(max_steps=12, batch_size=8, lr=0.05, warmup_steps=2, grad_clip=1.0, accelerator="cpu",
                checkpoint_every=4, log_every=2, seed=3)
    return TrainSettings(**{**base, **overrides})


def _model(seed=0):
    torch.manual_seed(seed)
    return NoisyRegression()


def test_cosine_with_warmup_shape():
    values = [cosine_with_warmup(s, warmup_steps=4, total_steps=12) for s in range(14)]
    assert values[:4] == [0.25, 0.5, 0.75, 1.0]
    assert values[4] == pytest.approx(1.0)
    assert values[8] == pytest.approx(0.5)
    assert values[12] == pytest.approx(0.0) and values[13] == pytest.approx(0.0)
    assert cosine_with_warmup(12, warmup_steps=0, total_steps=12, min_ratio=0.1) == pytest.approx(0.1)


def test_parameter_groups_exclude_biases_norms_and_tokens():
    module = nn.Module()
    module.linear = nn.Linear(3, 2)
    module.norm = nn.LayerNorm(3)
    module.cls_token = nn.Parameter(torch.zeros(1, 1, 3))
    module.frozen = nn.Linear(3, 3).requires_grad_(False)
    groups = parameter_groups(module.named_parameters(), weight_decay=0.05)
    by_decay = {g["weight_decay"]: sorted(g["names"]) for g in groups}
    assert by_decay == {0.05: ["linear.weight"], 0.0: ["cls_token", "linear.bias", "norm.bias", "norm.weight"]}


def test_eat_layer_ids():
    assert eat_layer_id("encoder.patch_embed.weight", 12, prefix="encoder.") == 0
    assert eat_layer_id("encoder.cls_token", 12, prefix="encoder.") == 0
    assert eat_layer_id("encoder.blocks.0.attn.qkv.weight", 12, prefix="encoder.") == 1
    assert eat_layer_id("encoder.blocks.11.mlp.fc2.bias", 12, prefix="encoder.") == 12
    assert eat_layer_id("head.weight", 12, prefix="encoder.") == 13


def test_loss_falls_and_files_are_written(tmp_path):
    model = _model()
    seen = []
    result = train(model, _data(), _settings(max_steps=40, lr=0.3, checkpoint_every=100), out_dir=tmp_path,
                   progress=seen.append)
    assert result.steps == 40 and model.updates == 40
    rows = list(csv.DictReader(open(tmp_path / LOG_NAME)))
    assert [int(r["step"]) for r in rows] == list(range(2, 41, 2))
    assert float(rows[-1]["loss"]) < 0.2 * float(rows[0]["loss"])
    assert {"lr", "noise", "updates", "grad_norm", "clips_per_s"} <= set(rows[0])
    assert seen[-1].step == 40 and seen[-1].eta_s == pytest.approx(0.0)
    state = read_checkpoint(tmp_path / CHECKPOINT_NAME)
    assert state["step"] == 40 and "linear.weight" in state["task"]


def test_killed_run_resumes_to_the_same_weights_and_log(tmp_path):
    full = _model()
    train(full, _data(), _settings(), out_dir=tmp_path / "full")

    class Killed(Exception):
        pass

    def kill_at_six(report):
        if report.step == 6:
            raise Killed

    interrupted = _model()
    with pytest.raises(Killed):
        train(interrupted, _data(), _settings(), out_dir=tmp_path / "cut", progress=kill_at_six)
    assert read_checkpoint(tmp_path / "cut" / CHECKPOINT_NAME)["step"] == 4  # the last checkpoint before the kill

    resumed = _model(seed=123)  # a fresh process would start from other weights
    result = train(resumed, _data(), _settings(), out_dir=tmp_path / "cut", resume=True)
    assert result.resumed_from == 4 and result.steps == 12
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    full_rows = list(csv.DictReader(open(tmp_path / "full" / LOG_NAME)))
    cut_rows = list(csv.DictReader(open(tmp_path / "cut" / LOG_NAME)))
    assert [r["step"] for r in cut_rows] == [r["step"] for r in full_rows]
    assert [r["loss"] for r in cut_rows] == [r["loss"] for r in full_rows]


def test_accumulation_matches_one_big_batch_without_noise(tmp_path):
    class Plain(NoisyRegression):
        def forward(self, batch, *, generator):
            x, y = batch
            return TrainOutput(((self.linear(self.norm(x)).squeeze(-1) - y) ** 2).mean(), {})

    data = _data(16)
    torch.manual_seed(0)
    big, small = Plain(), Plain()
    small.load_state_dict(big.state_dict())
    common = dict(max_steps=3, lr=0.05, warmup_steps=0, grad_clip=None, accelerator="cpu", seed=1)
    train(big, data, TrainSettings(batch_size=16, **common), out_dir=tmp_path / "big")
    train(small, data, TrainSettings(batch_size=8, accumulate_steps=2, **common), out_dir=tmp_path / "small")
    for a, b in zip(big.state_dict().values(), small.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_too_small_dataset_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="fewer than one batch"):
        train(_model(), _data(4), _settings(), out_dir=tmp_path)


def test_ranks_take_the_single_process_batches_in_turn_and_as_many_each():
    from asdlab.training.loop import epoch_batches

    single = epoch_batches(23, batch_size=3, seed=1, epoch=2)  # 7 batches
    ranks = [epoch_batches(23, batch_size=3, seed=1, epoch=2, rank=r, world=2) for r in range(2)]
    assert len(single) == 7 and len(ranks[0]) == len(ranks[1]) == 3  # 6 split evenly, 1 left out
    assert [batch for pair in zip(*ranks) for batch in pair] == single[:6]
    assert epoch_batches(23, batch_size=3, seed=1, epoch=3) != single  # a new order every epoch


@pytest.mark.parametrize("impl", ["fused", "foreach", "for-loop"])
def test_adamw_kernels_make_the_same_update(impl):
    from asdlab.training.loop import make_adamw

    updates = {}
    for name in ("auto", impl):
        model = _model()
        optimizer = make_adamw(model.optimizer_groups(weight_decay=0.05), lr=0.01, betas=(0.9, 0.95), impl=name,
                               device=torch.device("cpu"))
        for step in range(3):
            x, y = _data()[step * 8 : step * 8 + 8]
            model((x, y), generator=torch.Generator().manual_seed(step)).loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        updates[name] = torch.cat([p.detach().flatten() for p in model.parameters()])
    torch.testing.assert_close(updates[impl], updates["auto"], rtol=1e-6, atol=1e-7)
    with pytest.raises(ConfigError, match="optimizer_impl"):
        make_adamw([], lr=0.1, betas=(0.9, 0.9), impl="sgd")


def test_workers_feed_the_same_batches_as_the_main_process(tmp_path):
    runs = {}
    for workers in (0, 2):
        result = train(_model(), _data(), _settings(max_steps=8, num_workers=workers), out_dir=tmp_path / str(workers))
        runs[workers] = result.last_logs["loss"]
    assert runs[2] == pytest.approx(runs[0], rel=1e-6)
