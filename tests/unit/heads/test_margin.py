import math

import pytest
import torch
import torch.nn.functional as F

from asdlab.heads import AdaCosHead, ArcFaceHead, SubClusterAdaCosHead, soft_cross_entropy


def _unit(angle: float) -> list[float]:
    return [math.cos(angle), math.sin(angle)]


def _arcface_2d(scale=10.0, margin=0.5):
    head = ArcFaceHead(2, 3, scale=scale, margin=margin)
    with torch.no_grad():  # class centres at 0, 90 and 180 degrees
        head.centres.copy_(torch.tensor([_unit(0.0), _unit(math.pi / 2), _unit(math.pi)]) * 3.0)
    return head


def test_arcface_logits_follow_the_formula_with_margin_on_target_only():
    head = _arcface_2d()
    x = torch.tensor([_unit(math.pi / 6)]) * 5.0  # 30 degrees from class 0, 60 from class 1
    logits = head(x, torch.tensor([0]))
    expected = 10.0 * torch.tensor([[math.cos(math.pi / 6 + 0.5), math.cos(math.pi / 3), math.cos(5 * math.pi / 6)]])
    torch.testing.assert_close(logits, expected)
    logits = head(x, torch.tensor([1]))
    expected = 10.0 * torch.tensor([[math.cos(math.pi / 6), math.cos(math.pi / 3 + 0.5), math.cos(5 * math.pi / 6)]])
    torch.testing.assert_close(logits, expected)


def test_arcface_without_targets_gives_scaled_cosine_and_soft_targets_scale_margin():
    head = _arcface_2d()
    x = torch.tensor([_unit(math.pi / 6)])
    torch.testing.assert_close(head(x), 10.0 * head.cosine_similarity_to_centres(x))
    soft = head(x, torch.tensor([[0.25, 0.75, 0.0]]))
    expected = 10.0 * torch.tensor(
        [[math.cos(math.pi / 6 + 0.125), math.cos(math.pi / 3 + 0.375), math.cos(5 * math.pi / 6)]]
    )
    torch.testing.assert_close(soft, expected)
    torch.testing.assert_close(head(x, torch.tensor([[1.0, 0.0, 0.0]])), head(x, torch.tensor([0])))


def test_arcface_target_logit_keeps_decreasing_past_pi_minus_margin():
    head = _arcface_2d()
    near_pi = torch.tensor([_unit(math.pi - 0.2)])  # 0.2 rad from class 2, pi - 0.2 from class 0
    target0 = head(near_pi, torch.tensor([0]))[0, 0]
    cos = math.cos(math.pi - 0.2)
    assert target0.item() == pytest.approx(10.0 * (cos - 0.5 * math.sin(0.5)), abs=1e-5)
    assert target0.item() < 10.0 * cos


def test_soft_cross_entropy_with_one_hot_equals_cross_entropy():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 5, generator=g)
    labels = torch.tensor([0, 4, 2, 2, 1, 3])
    expected = F.cross_entropy(logits, labels)
    torch.testing.assert_close(soft_cross_entropy(logits, labels), expected)
    torch.testing.assert_close(soft_cross_entropy(logits, F.one_hot(labels, 5).float()), expected)
    torch.testing.assert_close(
        soft_cross_entropy(logits, labels, reduction="none"), F.cross_entropy(logits, labels, reduction="none")
    )


def test_soft_cross_entropy_rejects_wrong_targets():
    with pytest.raises(ValueError, match=r"\(B, 5\)"):
        soft_cross_entropy(torch.zeros(2, 5), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="class indices"):
        soft_cross_entropy(torch.zeros(2, 5), torch.tensor([0, 5]))


def _adacos_reference_scale(scale, cos, labels):
    """AdaCos Eq. 16 written out per sample."""
    b_avg = 0.0
    angles = []
    for i, y in enumerate(labels):
        b_avg += sum(math.exp(scale * cos[i][k]) for k in range(len(cos[i])) if k != y)
        angles.append(math.acos(cos[i][y]))
    b_avg /= len(labels)
    med = float(torch.tensor(angles).median())  # torch's median: the lower middle value
    return math.log(b_avg) / math.cos(min(math.pi / 4, med))


def test_adacos_scale_update_equals_the_formula_and_only_in_training():
    g = torch.Generator().manual_seed(1)
    head = AdaCosHead(8, 5, generator=g)
    assert head.scale.item() == pytest.approx(math.sqrt(2) * math.log(4))
    x = torch.randn(7, 8, generator=g)
    labels = torch.tensor([0, 1, 2, 3, 4, 0, 1])
    cos = head.cosine_similarity_to_centres(x).tolist()
    expected = _adacos_reference_scale(head.scale.item(), cos, labels.tolist())
    logits = head.train()(x, labels)
    assert head.scale.item() == pytest.approx(expected, rel=1e-5)
    torch.testing.assert_close(logits, expected * torch.tensor(cos), rtol=1e-5, atol=1e-5)
    assert not head.scale.requires_grad and "scale" in head.state_dict()
    before = head.scale.clone()
    head.eval()(x, labels)
    head.train()(x)  # no targets: no update either
    assert torch.equal(head.scale, before)


def test_adacos_soft_targets_with_one_hot_match_integer_targets():
    g = torch.Generator().manual_seed(2)
    a, b = AdaCosHead(4, 3, generator=g), None
    b = AdaCosHead(4, 3)
    b.load_state_dict(a.state_dict())
    x = torch.randn(5, 4, generator=g)
    y = torch.tensor([0, 2, 1, 1, 0])
    torch.testing.assert_close(a(x, y), b(x, F.one_hot(y, 3).float()))
    torch.testing.assert_close(a.scale, b.scale)


def _subcluster_head(trainable=True):
    head = SubClusterAdaCosHead(3, 2, sub_clusters=2, trainable_centres=trainable)
    centres = torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [-1.0, 0, 0]])  # rows c * K + j
    with torch.no_grad():
        head.centres.copy_(centres)
    return head


def test_subcluster_assignment_and_log_probabilities():
    head = _subcluster_head().eval()
    # near centre 1 of class 0 (row 1) and near centre 1 of class 1 (row 3)
    x = torch.tensor([[0.05, 1.0, 0.02], [-1.0, 0.03, 0.04]])
    log_p = head(x)
    assert log_p.argmax(dim=1).tolist() == [0, 1]
    torch.testing.assert_close(log_p.exp().sum(dim=1), torch.ones(2))
    assert head.class_cosine(x).argmax(dim=1).tolist() == [0, 1]
    s_cos = head.scale * head.cosine_similarity_to_centres(x).flatten(1)
    p = torch.softmax(s_cos, dim=1).view(2, 2, 2).sum(dim=2)  # sum of each class's sub-cluster probabilities
    torch.testing.assert_close(log_p, p.log())
    # soft cross-entropy on log-probabilities is the categorical cross-entropy of the class probabilities
    torch.testing.assert_close(soft_cross_entropy(log_p, torch.tensor([0, 1])), -(p[0, 0].log() + p[1, 1].log()) / 2)


def test_subcluster_fixed_centres_are_a_buffer_and_trainable_ones_a_parameter():
    fixed = _subcluster_head(trainable=False)
    assert "centres" in dict(fixed.named_buffers()) and not list(fixed.parameters())
    trainable = _subcluster_head(trainable=True)
    assert "centres" in dict(trainable.named_parameters())
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(3), requires_grad=True)
    soft_cross_entropy(trainable.train()(x, torch.tensor([0, 1, 0, 1])), torch.tensor([0, 1, 0, 1])).backward()
    assert trainable.centres.grad is not None and x.grad is not None


def test_subcluster_scale_update_uses_non_target_centres_and_nearest_target_angle():
    head = _subcluster_head().train()
    x = torch.tensor([[0.05, 1.0, 0.02], [-1.0, 0.03, 0.04], [0.7, 0.7, 0.1]])
    y = torch.tensor([0, 1, 0])
    cos = head.cosine_similarity_to_centres(x)  # (B, C, K)
    s = head.scale.item()
    b_avg = sum(torch.exp(s * cos[i, 1 - y[i]]).sum().item() for i in range(3)) / 3
    med = torch.stack([torch.acos(cos[i, y[i]].max()) for i in range(3)]).median().item()
    head(x, y)
    assert head.scale.item() == pytest.approx(math.log(b_avg) / math.cos(min(math.pi / 4, med)), rel=1e-5)


def test_adacos_needs_three_centres():
    with pytest.raises(ValueError, match="at least 3 centres"):
        AdaCosHead(4, 2)


def test_subcluster_scale_is_kept_when_no_centre_is_non_target():
    head = SubClusterAdaCosHead(4, 1, sub_clusters=4).train()
    before = head.scale.clone()
    out = head(torch.randn(3, 4, generator=torch.Generator().manual_seed(0)), torch.tensor([0, 0, 0]))
    assert torch.equal(head.scale, before) and torch.isfinite(out).all()
