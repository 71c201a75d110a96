"""Two-branch CNN task: SC-AdaCos heads with C and 9C classes, SSL switches, gradients, determinism."""

import pytest
import torch

from asdlab.encoders.registry import create_encoder
from asdlab.errors import ConfigError
from asdlab.training.two_branch import TwoBranchTask


def _task(**options):
    torch.manual_seed(0)
    return TwoBranchTask(create_encoder("two-branch-cnn-small"), 3, sub_clusters=2, **options)


def _batch():
    g = torch.Generator().manual_seed(0)
    return {"waveform": torch.randn(4, 4000, generator=g) * 0.1, "target": torch.tensor([0, 1, 2, 0])}


def test_heads_have_c_and_9c_classes_and_every_weight_learns():
    task = _task()
    assert task.head.num_classes == 3 and task.ssl_head.num_classes == 27
    assert not task.head.centres.requires_grad and task.ssl_head.centres.requires_grad  # reference: fixed / trained
    out = task(_batch(), generator=torch.Generator().manual_seed(1))
    assert torch.isfinite(out.loss) and {"loss_attr", "loss_ssl", "acc"} <= set(out.logs)
    assert out.loss.item() == pytest.approx(float(out.logs["loss_attr"] + out.logs["loss_ssl"]), rel=1e-5)
    out.loss.backward()
    missing = [n for n, p in task.named_parameters() if p.requires_grad and p.grad is None]
    assert missing == []
    assert set(task.after_optimizer_step(1)) == {"scale", "ssl_scale"}


def test_same_generator_same_loss_and_switches():
    task = _task().eval()  # batch norm statistics fixed: the loss depends only on the generator
    a = task(_batch(), generator=torch.Generator().manual_seed(3)).loss
    b = task(_batch(), generator=torch.Generator().manual_seed(3)).loss
    assert a.item() == b.item()
    plain = _task(ssl_weight=0.0, mixup_p=0.0)
    assert plain.ssl_head is None
    out = plain(_batch(), generator=torch.Generator().manual_seed(3))
    assert set(out.logs) == {"loss_attr", "acc"}


def test_one_class_still_has_three_centres_and_bad_probabilities_fail():
    task = TwoBranchTask(create_encoder("two-branch-cnn-small"), 1, sub_clusters=1)
    assert task.head.centres.shape[0] == 3
    with pytest.raises(ConfigError, match="featex_p"):
        _task(featex_p=1.5)
