import pytest
import torch

from asdlab.features.augment import mixup, random_partners, spec_augment, statex


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def test_spec_augment_masks_exact_band_widths_per_sample():
    spec = torch.ones(4, 1, 50, 20)
    out = spec_augment(spec, time_masks=1, time_width=(7, 7), freq_masks=1, freq_width=(3, 3), generator=_gen(0))
    assert out.shape == spec.shape and spec.eq(1).all()  # input untouched
    masked = out[:, 0] == 0  # (B, T, F)
    time_rows = masked.all(dim=2).sum(dim=1)  # fully masked frames per sample
    freq_cols = masked.all(dim=1).sum(dim=1)  # fully masked bins per sample
    assert time_rows.tolist() == [7] * 4 and freq_cols.tolist() == [3] * 4
    assert masked.sum(dim=(1, 2)).tolist() == [7 * 20 + 3 * 50 - 7 * 3] * 4
    rows = masked.all(dim=2)
    starts = rows.float().argmax(dim=1)
    assert all(rows[b, starts[b] : starts[b] + 7].all() for b in range(4))  # contiguous bands
    assert len(set(starts.tolist())) > 1  # masks drawn per sample


def test_spec_augment_is_deterministic_for_a_seeded_generator_and_respects_max_width():
    spec = torch.randn(3, 40, 16, generator=_gen(1))
    kwargs = dict(time_masks=2, time_width=5, freq_masks=2, freq_width=4)
    a = spec_augment(spec, generator=_gen(7), **kwargs)
    b = spec_augment(spec, generator=_gen(7), **kwargs)
    c = spec_augment(spec, generator=_gen(8), **kwargs)
    assert torch.equal(a, b) and not torch.equal(a, c)
    masked = a == 0
    assert (masked.all(dim=2).sum(dim=1) <= 10).all() and (masked.all(dim=1).sum(dim=1) <= 8).all()
    assert torch.equal(spec_augment(spec, time_masks=0, time_width=5, freq_masks=0, freq_width=4), spec)


def test_random_partners_is_a_permutation_without_fixed_points():
    partner = random_partners(9, generator=_gen(0))
    assert sorted(partner.tolist()) == list(range(9))
    assert (partner != torch.arange(9)).all()


def test_mixup_mixes_inputs_and_targets_with_the_same_weight():
    x = torch.arange(4, dtype=torch.float32)[:, None].repeat(1, 3)  # row i is all i
    t = torch.eye(4)
    xm, tm = mixup(x, t, generator=_gen(3), p=1.0)
    torch.testing.assert_close(tm.sum(dim=1), torch.ones(4))
    # x' = l i + (1 - l) j and t' has l at i, 1 - l at j: x' equals sum_k t'_k k
    torch.testing.assert_close(xm[:, 0], tm @ torch.arange(4, dtype=torch.float32))
    xk, tk = mixup(x, t, generator=_gen(3), p=0.0)
    assert torch.equal(xk, x) and torch.equal(tk, t)


def test_mixup_alpha_other_than_one_is_reproducible():
    x, t = torch.randn(6, 2, generator=_gen(0)), torch.eye(6)
    a = mixup(x, t, generator=_gen(5), alpha=0.4)
    b = mixup(x, t, generator=_gen(5), alpha=0.4)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


@pytest.mark.parametrize("reduce_over, dim", [("frequency", -1), ("time", -2)])
def test_statex_imposes_the_partner_statistics(reduce_over, dim):
    g = _gen(4)
    spec = torch.rand(5, 12, 8, generator=g) * torch.arange(1, 6).view(5, 1, 1)
    out, pairing = statex(spec, generator=_gen(9), p=1.0, reduce_over=reduce_over)
    assert pairing.applied.all()
    torch.testing.assert_close(out.mean(dim=dim), spec[pairing.partner].mean(dim=dim), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(
        out.std(dim=dim, unbiased=False), spec[pairing.partner].std(dim=dim, unbiased=False), atol=1e-5, rtol=1e-4
    )


def test_statex_keeps_unexchanged_samples_and_accepts_channel_axis():
    spec = torch.rand(6, 1, 10, 4, generator=_gen(2))
    out, pairing = statex(spec, generator=_gen(1), p=0.5)
    assert out.shape == spec.shape
    assert torch.equal(out[~pairing.applied], spec[~pairing.applied])
    assert 0 < int(pairing.applied.sum()) < 6
