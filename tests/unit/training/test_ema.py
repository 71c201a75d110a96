"""EMA teacher: the decay schedule, the update rule, frozen parameters, copied buffers."""

import pytest
import torch
from torch import nn

from asdlab.errors import ConfigError
from asdlab.training.ema import EMASchedule, make_teacher, update_teacher


def test_schedule_rises_linearly_then_stays():
    schedule = EMASchedule()
    assert schedule(0) == pytest.approx(0.9998)
    assert schedule(50_000) == pytest.approx((0.9998 + 0.99999) / 2)
    assert schedule(25_000) == pytest.approx(0.9998 + 0.25 * (0.99999 - 0.9998))
    assert schedule(100_000) == 0.99999 and schedule(400_000) == 0.99999
    assert EMASchedule(0.5, 0.9, anneal_steps=0)(0) == 0.9
    with pytest.raises(ConfigError):
        EMASchedule(start=1.5)


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(3, 2)
        self.register_buffer("table", torch.zeros(2))


def test_teacher_is_a_frozen_eval_copy():
    student = _Net().train()
    teacher = make_teacher(student)
    assert not teacher.training
    assert all(not p.requires_grad for p in teacher.parameters())
    assert all(p.requires_grad for p in student.parameters())
    for a, b in zip(student.parameters(), teacher.parameters()):
        assert torch.equal(a, b) and a.data_ptr() != b.data_ptr()


def test_update_is_the_exponential_moving_average():
    torch.manual_seed(0)
    student, teacher = _Net(), _Net()
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    student.table.fill_(7.0)
    update_teacher(teacher, student, 0.9)
    for name, value in teacher.named_parameters():
        expected = 0.9 * before[name] + 0.1 * dict(student.named_parameters())[name]
        torch.testing.assert_close(value, expected, rtol=0, atol=1e-7)
    assert torch.equal(teacher.table, torch.full((2,), 7.0))
    update_teacher(teacher, student, 0.0)  # decay 0 copies the student
    for a, b in zip(student.parameters(), teacher.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_update_averages_in_fp32_for_a_low_precision_student():
    student = _Net().to(torch.bfloat16)
    teacher = make_teacher(student)
    assert teacher.linear.weight.dtype == torch.float32
    update_teacher(teacher, student, 0.5)
    torch.testing.assert_close(teacher.linear.weight, student.linear.weight.float())


def test_mismatched_modules_are_refused():
    with pytest.raises(ValueError, match="different parameters"):
        update_teacher(_Net(), nn.Linear(3, 2), 0.9)


def test_foreach_update_equals_the_per_parameter_update_bit_for_bit():
    torch.manual_seed(0)
    student = nn.Sequential(nn.Linear(5, 7), nn.LayerNorm(7), nn.Linear(7, 3))
    teacher = make_teacher(student)
    with torch.no_grad():
        for p in student.parameters():
            p.add_(torch.randn_like(p))
    expected = {n: t.detach().clone().lerp_(s.detach(), 1.0 - 0.93)
                for (n, t), (_, s) in zip(teacher.named_parameters(), student.named_parameters())}
    update_teacher(teacher, student, 0.93)
    for name, value in teacher.named_parameters():
        assert torch.equal(value, expected[name]), name
