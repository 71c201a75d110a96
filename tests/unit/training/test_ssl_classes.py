import torch
import torch.nn.functional as F

from asdlab.features.augment import Pairing
from asdlab.heads import SubClusterAdaCosHead, soft_cross_entropy
from asdlab.training.ssl_classes import (
    apply_featex,
    apply_mixup,
    apply_statex,
    exchange_targets,
    featex_num_classes,
    statex_num_classes,
)

C = 3


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def test_exchange_targets_layout():
    t = F.one_hot(torch.tensor([0, 1, 2]), C).float()
    pairing = Pairing(partner=torch.tensor([1, 2, 0]), applied=torch.tensor([True, False, True]))
    out = exchange_targets(t, pairing)
    assert out.shape == (3, 3 * C)
    assert out[1].nonzero().flatten().tolist() == [1]  # not exchanged: block 0, own class
    assert out[0, C + 0] == 0.5 and out[0, 2 * C + 1] == 0.5  # kept part class 0, partner class 1
    assert out[2, C + 2] == 0.5 and out[2, 2 * C + 0] == 0.5
    torch.testing.assert_close(out.sum(dim=1), torch.ones(3))


def test_featex_swaps_the_stft_embedding_and_labels_accordingly():
    B = 8
    e_fft = torch.arange(B, dtype=torch.float32)[:, None].repeat(1, 2)  # row value = clip index
    e_stft = 100 + torch.arange(B, dtype=torch.float32)[:, None].repeat(1, 3)
    labels = torch.arange(B) % C
    t = F.one_hot(labels, C).float()
    emb, targets = apply_featex(e_fft, e_stft, t, generator=_gen(0), p=0.5)
    assert emb.shape == (B, 5) and targets.shape == (B, featex_num_classes(C))
    torch.testing.assert_close(targets.sum(dim=1), torch.ones(B))
    assert torch.equal(emb[:, :2], e_fft)
    stft_clip = (emb[:, 2] - 100).long()
    exchanged = stft_clip != torch.arange(B)
    assert 0 < int(exchanged.sum()) < B
    for i in range(B):
        if exchanged[i]:
            expected = torch.zeros(3 * C)
            expected[C + labels[i]] += 0.5
            expected[2 * C + labels[stft_clip[i]]] += 0.5
        else:
            expected = torch.cat([t[i], torch.zeros(2 * C)])
        torch.testing.assert_close(targets[i], expected)


def test_featex_per_batch_decision_and_probabilities():
    e = torch.randn(6, 2, generator=_gen(1))
    t = torch.full((6, C), 1.0 / C)
    _, always = apply_featex(e, e, t, generator=_gen(2), p=1.0)
    assert always[:, :C].sum() == 0
    _, never = apply_featex(e, e, t, generator=_gen(2), p=0.0)
    assert never[:, C:].sum() == 0
    blocks = [apply_featex(e, e, t, generator=_gen(s), p=0.5, per_sample=False)[1] for s in range(6)]
    for b in blocks:  # the whole batch is exchanged or not
        assert b[:, :C].sum().item() in (0.0, 6.0)


def test_recipe_chain_mixup_statex_featex_into_a_9c_head():
    B, g = 6, _gen(3)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    wave = torch.randn(B, 32, generator=g)
    wave, t_mix = apply_mixup(wave, F.one_hot(labels, C).float(), generator=g)
    assert t_mix.shape == (B, C)
    spec, t_stat = apply_statex(torch.rand(B, 10, 6, generator=g), t_mix, generator=g)
    assert spec.shape == (B, 10, 6) and t_stat.shape == (B, statex_num_classes(C))
    emb, t_feat = apply_featex(torch.randn(B, 4, generator=g), torch.randn(B, 4, generator=g), t_stat, generator=g)
    n = featex_num_classes(statex_num_classes(C))
    assert n == 9 * C and t_feat.shape == (B, n)
    torch.testing.assert_close(t_feat.sum(dim=1), torch.ones(B))
    head = SubClusterAdaCosHead(8, n, sub_clusters=2, trainable_centres=True, generator=g)
    loss = soft_cross_entropy(head(emb, t_feat), t_feat)
    assert torch.isfinite(loss)
