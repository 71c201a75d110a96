"""Inverse block masking: exact kept count, block structure, per-view independence, seeded determinism."""

import pytest
import torch

from asdlab.errors import ConfigError
from asdlab.training.masking import (
    block_keep_map,
    fix_kept_count,
    inverse_block_mask,
    kept_count,
    sample_centres,
)


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def test_kept_count_matches_eat_and_rounds():
    assert kept_count(512, 0.8) == 102  # EAT.md: 102 of 512
    assert kept_count(104, 0.8) == 21  # 13 x 8 grid of 2-s clips: round(20.8)
    assert kept_count(8, 0.8) == 2
    assert kept_count(4, 0.99) == 1  # never zero
    with pytest.raises(ConfigError, match="mask_ratio"):
        kept_count(512, 1.0)


@pytest.mark.parametrize("time_patches", [1, 2, 7, 13, 64, 75])
def test_every_view_keeps_exactly_the_count(time_patches):
    masks = inverse_block_mask(64, time_patches, 8, generator=_gen(time_patches))
    assert masks.shape == (64, time_patches * 8) and masks.dtype == torch.bool
    assert (masks.sum(dim=1) == kept_count(time_patches * 8, 0.8)).all()


def test_block_map_is_the_union_of_edge_clipped_blocks():
    centres = sample_centres(5, 9, 8, mask_ratio=0.5, generator=_gen(1))
    blocks = block_keep_map(centres, 5).view(5, 9, 8)
    expected = torch.zeros(5, 9, 8, dtype=torch.bool)
    for m, t, f in centres.nonzero().tolist():  # data2vec: indices t-2..t+2, f-2..f+2 clamped into the grid
        for dt in range(-2, 3):
            for df in range(-2, 3):
                expected[m, min(max(t + dt, 0), 8), min(max(f + df, 0), 7)] = True
    assert torch.equal(blocks, expected)


def test_centre_count_follows_data2vec():
    centres = sample_centres(200, 64, 8, generator=_gen(2))
    per_mask = centres.view(200, -1).sum(dim=1)
    assert per_mask.max() == 5  # int(512 * (0.2 + 0.07) / 25) draws (duplicates allowed)
    assert per_mask.min() >= 1


def test_count_fix_only_removes_from_big_and_only_adds_to_small_blocks():
    g = _gen(3)
    keep = torch.rand(50, 40, generator=g) < torch.linspace(0.05, 0.95, 50)[:, None]
    fixed = fix_kept_count(keep, 12, generator=g)
    assert (fixed.sum(dim=1) == 12).all()
    for before, after in zip(keep, fixed):
        if before.sum() >= 12:
            assert not (after & ~before).any()  # a subset: only removals
        else:
            assert not (before & ~after).any()  # a superset: only additions


def test_final_masks_are_mostly_blocks():
    masks = inverse_block_mask(100, 64, 8, generator=_gen(4)).view(100, 64, 8)
    # A kept patch inside a block has kept neighbours; uniform random masks at 20 % rarely do.
    padded = torch.nn.functional.pad(masks.float(), (1, 1, 1, 1))
    neighbours = padded[:, :-2, 1:-1] + padded[:, 2:, 1:-1] + padded[:, 1:-1, :-2] + padded[:, 1:-1, 2:]
    with_neighbour = ((neighbours > 0) & masks).sum() / masks.sum()
    assert with_neighbour > 0.8
    random = torch.rand(100, 64, 8, generator=_gen(5)) < 0.2
    padded = torch.nn.functional.pad(random.float(), (1, 1, 1, 1))
    neighbours = padded[:, :-2, 1:-1] + padded[:, 2:, 1:-1] + padded[:, 1:-1, :-2] + padded[:, 1:-1, 2:]
    assert ((neighbours > 0) & random).sum() / random.sum() < 0.7


def test_views_get_independent_masks_and_seeds_reproduce():
    masks = inverse_block_mask(16, 64, 8, generator=_gen(6))
    assert len({tuple(row.tolist()) for row in masks}) == 16  # every clone differs
    overlap = (masks[:, None] & masks[None]).sum(-1).float()  # (16, 16) shared kept patches
    off_diagonal = overlap[~torch.eye(16, dtype=torch.bool)]
    assert off_diagonal.mean() < 0.4 * 102  # independent 20 % masks share ~20 %, not all
    assert torch.equal(masks, inverse_block_mask(16, 64, 8, generator=_gen(6)))
    assert not torch.equal(masks, inverse_block_mask(16, 64, 8, generator=_gen(7)))


def test_bad_block_size_is_an_error():
    with pytest.raises(ConfigError, match="block_size"):
        inverse_block_mask(2, 4, 8, block_size=4, generator=_gen(0))
