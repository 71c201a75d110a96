"""The UFO objective on eat-tiny: targets against a direct computation, masking of the student,
no gradient into the teacher, the EMA step, and the utterance-loss reduction."""

import math

import pytest
import torch

from asdlab.encoders.eat import create_eat_decoder, eat_tiny
from asdlab.errors import ConfigError
from asdlab.features.normalize import EATFrontEnd
from asdlab.training.ema import EMASchedule
from asdlab.training.masking import kept_count
from asdlab.training.ufo import DAPTask, teacher_targets

T = 48  # 3 x 8 = 24 patches: fast, and enough for blocks and masks


def _task(**kwargs):
    torch.manual_seed(0)
    return DAPTask(eat_tiny(), create_eat_decoder("eat-tiny"), **{"clones": 3, **kwargs})


def _x(batch=2, seed=1):
    return torch.randn(batch, 1, T, 128, generator=torch.Generator().manual_seed(seed))


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_targets_match_a_direct_computation():
    encoder = eat_tiny().eval()
    x = _x()
    with torch.no_grad():
        outputs = encoder.forward_features(x, return_layer_outputs=True).layer_mlp_outputs
        # The same MLP outputs, by running the blocks by hand (post-LN: LN1(x + attn), h = mlp).
        tokens = encoder.patch_embed(x).flatten(2).transpose(1, 2) + encoder.pos_table[: 3 * 8]
        h_all = encoder.pre_norm(torch.cat([encoder.cls_token.expand(2, -1, -1), tokens], dim=1))
        direct = []
        for block in encoder.blocks:
            mid = block.norm1(h_all + block.attn(h_all))
            h = block.mlp(mid)
            direct.append(h)
            h_all = block.norm2(mid + h)
    for a, b in zip(outputs, direct):
        torch.testing.assert_close(a, b)
    expected = 0
    for h in direct:
        p = h[:, 1:].double()  # drop CLS
        mean, var = p.mean(dim=1, keepdim=True), p.var(dim=1, unbiased=False, keepdim=True)
        expected = expected + (p - mean) / torch.sqrt(var + 1e-5)  # per clip and channel over patches
    expected = expected / len(direct)
    expected = (expected - expected.mean(-1, keepdim=True)) / torch.sqrt(expected.var(-1, unbiased=False,
                                                                                     keepdim=True) + 1e-5)
    y = teacher_targets(outputs)
    assert y.shape == (2, 24, 192) and y.dtype == torch.float32
    torch.testing.assert_close(y.double(), expected, rtol=1e-4, atol=1e-4)


def test_loss_parts_match_the_definition():
    task = _task()
    x = _x()
    g = _gen()
    keep = task.sample_masks(2, 3, generator=g)
    noise_state = g.get_state()
    out = task(x, generator=_gen())
    with torch.no_grad():
        y = teacher_targets(task.teacher.forward_features(x, return_layer_outputs=True).layer_mlp_outputs)
        views = x.repeat_interleave(3, 0)
        student = task.encoder.forward_features(views, patch_mask=keep)
        g.set_state(noise_state)
        pred = task.decoder(student.patches, keep, generator=g)
        y3 = y.repeat_interleave(3, 0)
        frame = ((pred - y3) ** 2).sum(-1)[~keep].mean() / math.sqrt(192)
        utt = ((student.cls - y3.mean(1)) ** 2).sum(-1).mean() / math.sqrt(192)
    torch.testing.assert_close(out.logs["loss_frame"], frame)
    torch.testing.assert_close(out.logs["loss_utterance"], utt)
    torch.testing.assert_close(out.loss, frame + utt)


def test_sum_reduction_is_views_times_mean():
    mean = _task()(_x(), generator=_gen()).logs["loss_utterance"]
    total = _task(utterance_reduction="sum")(_x(), generator=_gen()).logs["loss_utterance"]
    torch.testing.assert_close(total, mean * 6)
    with pytest.raises(ConfigError, match="utterance_reduction"):
        _task(utterance_reduction="max")


def test_student_sees_only_kept_patches():
    task = _task()
    shapes = []
    task.encoder.blocks[0].register_forward_pre_hook(lambda module, args: shapes.append(tuple(args[0].shape)))
    x = _x()
    keep = task.sample_masks(2, 3, generator=_gen())  # the first draw of forward(generator=_gen())
    finals = []
    task.encoder.blocks[-1].register_forward_hook(lambda module, args, out: finals.append(out[0].detach()))
    teacher_shapes, teacher_finals = [], []
    task.teacher.blocks[0].register_forward_pre_hook(lambda module, args: teacher_shapes.append(tuple(args[0].shape)))
    task.teacher.blocks[-1].register_forward_hook(lambda module, args, out: teacher_finals.append(out[0]))
    task(x, generator=_gen())
    # Change the spectrogram only under patches that clone 0 of clip 0 masks.
    hidden = (~keep[0]).view(3, 1, 8, 1).expand(3, 16, 8, 16).reshape(T, 128)  # (T/16, 16, 8, 16) -> (T, F)
    x2 = x.clone()
    x2[0, 0][hidden] += 5.0
    task(x2, generator=_gen())
    K = kept_count(24, 0.8)
    assert shapes == [(6, K + 1, 192)] * 2  # 2 clips x 3 clones, kept patches + CLS only
    assert teacher_shapes == [(2, 25, 192)] * 2  # the teacher gets all 24 patches + CLS
    torch.testing.assert_close(finals[0][0], finals[1][0])  # that view never saw the change
    assert not torch.allclose(finals[0][1], finals[1][1])  # clone 1 keeps other patches
    assert not torch.allclose(teacher_finals[0], teacher_finals[1])  # the teacher sees everything


def test_teacher_gets_no_gradient_and_every_student_parameter_does():
    task = _task()
    out = task(_x(), generator=_gen())
    out.loss.backward()
    assert all(p.grad is None and not p.requires_grad for p in task.teacher.parameters())
    missing = [n for n, p in task.named_parameters() if p.requires_grad and p.grad is None]
    assert missing == []
    names = {n for g in task.optimizer_groups(weight_decay=0.05) for n in g["names"]}
    assert not any(n.startswith("teacher.") for n in names) and "encoder.cls_token" in names
    assert all(p.requires_grad for p in task.decoder.parameters())


def test_ema_step_moves_the_teacher_towards_the_student():
    task = _task(ema=EMASchedule(0.9, 0.99, anneal_steps=10))
    before = task.teacher.blocks[0].mlp.fc1.weight.clone()
    with torch.no_grad():
        task.encoder.blocks[0].mlp.fc1.weight.add_(1.0)
    logs = task.after_optimizer_step(5)
    assert logs["ema_decay"] == pytest.approx(0.945)
    torch.testing.assert_close(task.teacher.blocks[0].mlp.fc1.weight,
                               0.945 * before + 0.055 * task.encoder.blocks[0].mlp.fc1.weight)
    task.train()
    assert task.encoder.training and not task.teacher.training


def test_waveform_batches_go_through_the_front_end():
    task = _task(front_end=EATFrontEnd(target_frames=T))
    wave = torch.randn(2, 16000, generator=_gen(2)) * 0.1
    out = task({"waveform": wave}, generator=_gen())
    assert torch.isfinite(out.loss)
    with pytest.raises(ConfigError, match="front_end"):
        _task()({"waveform": wave}, generator=_gen())


def _objective_inputs(task, batch=2, seed=0):
    g = _gen(seed)
    keep = task.sample_masks(batch, 3, generator=g)
    noise = task.decoder.mask_noise(keep.shape[0], keep.shape[1], generator=g)
    return _x(batch), keep, noise


def test_objective_compiles_as_one_graph_and_equals_eager():
    # fullgraph=True fails on any graph break (a host sync such as int(tensor) or a boolean index).
    task = _task()
    x, keep, noise = _objective_inputs(task)
    eager = task.objective(x, keep, noise)
    eager_grads = torch.autograd.grad(eager[0], list(task.encoder.parameters()) + list(task.decoder.parameters()))
    compiled = torch.compile(task.objective, backend="aot_eager", fullgraph=True)(x, keep, noise)
    grads = torch.autograd.grad(compiled[0], list(task.encoder.parameters()) + list(task.decoder.parameters()))
    for a, b in zip(compiled, eager, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    for a, b in zip(grads, eager_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_a_failing_compiler_falls_back_to_eager(caplog):
    def broken_backend(graph_module, example_inputs):
        raise RuntimeError("no compiler here")

    reference = _task()(_x(), generator=_gen())
    task = _task(compile_backend=broken_backend)
    with caplog.at_level("WARNING"):
        out = task(_x(), generator=_gen())
    assert "running eagerly" in caplog.text and task._objective.failed
    torch.testing.assert_close(out.loss, reference.loss)


def test_prediction_spread_over_masked_tokens_equals_indexing_them():
    task = _task()
    x, keep, noise = _objective_inputs(task)
    *_, pred_var = task.objective(x, keep, noise)
    with torch.no_grad():
        student = task.encoder.forward_features(x.repeat_interleave(3, 0), patch_mask=keep)
        prediction = task.decoder(student.patches, keep, noise=noise)
        selected = prediction[~keep]  # (masked tokens, D)
        expected = torch.sqrt(selected.var(dim=0) + 1e-6).mean()
    torch.testing.assert_close(pred_var, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("conv", ["conv-nhwc", "matmul"])
def test_a_fast_decoder_gives_the_same_loss_and_gradients(conv):
    reference, fast = _task(), _task()
    fast.decoder.conv = conv
    x, keep, noise = _objective_inputs(reference)
    out_ref, out = reference.objective(x, keep, noise), fast.objective(x, keep, noise)
    out_ref[0].backward()
    out[0].backward()
    torch.testing.assert_close(out[0], out_ref[0], rtol=1e-5, atol=1e-6)
    for (name, a), (_, b) in zip(fast.named_parameters(), reference.named_parameters(), strict=True):
        if b.grad is not None:
            torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-6, msg=name)
