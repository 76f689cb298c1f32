# Copyright (c) mmssl contributors. All rights reserved.
import pytest
import torch

from mmssl.models.utils import (check_mask_ratio, patchify, random_masking,
                                unpatchify, unshuffle_tokens)


def test_patchify_roundtrip_and_order():
    x = torch.randn(2, 3, 32, 32)
    p = patchify(x, 8)
    assert p.shape == (2, 16, 192)
    assert torch.equal(unpatchify(p, 8, 3), x)
    # patch 1 (row 0, col 1), element (row 2, col 5, channel 1)
    k = (2 * 8 + 5) * 3 + 1
    assert p[0, 1, k] == x[0, 1, 2, 8 + 5]


def test_random_masking_counts_and_restore():
    torch.manual_seed(0)
    x = torch.arange(2 * 16, dtype=torch.float).reshape(2, 16, 1)
    vis, mask, ids_restore, ids_keep = random_masking(x, 0.75)
    assert vis.shape == (2, 4, 1)
    assert torch.equal(mask.sum(1), torch.tensor([12., 12.]))
    # the kept tokens are exactly the unmasked positions
    for b in range(2):
        kept = set(ids_keep[b].tolist())
        assert kept == set((mask[b] == 0).nonzero().flatten().tolist())
    # un-shuffling visible tokens + zero fillers restores them in place
    out = unshuffle_tokens(vis, torch.zeros(2, 12, 1), ids_restore)
    assert torch.equal(out[..., 0] * (1 - mask), x[..., 0] * (1 - mask))
    assert torch.all(out[..., 0][mask.bool()] == 0)


def test_fixed_noise_gives_fixed_mask():
    x = torch.randn(3, 16, 4)
    noise = torch.rand(3, 16)
    m1 = random_masking(x, 0.5, noise)[1]
    m2 = random_masking(x, 0.5, noise)[1]
    assert torch.equal(m1, m2)


def test_noise_is_a_sort_key_smallest_kept():
    """As in MAE, the tokens with the smallest noise are kept, in order of
    increasing noise."""
    x = torch.arange(8.).view(1, 8, 1)
    noise = torch.tensor([[.7, .1, .9, .3, .5, .0, .8, .6]])
    vis, mask, _, ids_keep = random_masking(x, 0.5, noise)
    assert ids_keep.tolist() == [[5, 1, 3, 4]]
    assert vis.flatten().tolist() == [5., 1., 3., 4.]
    assert mask.tolist() == [[1., 0., 1., 0., 0., 0., 1., 1.]]


@pytest.mark.parametrize('bad', [-0.1, 1.0, 1.5, 'x'])
def test_bad_mask_ratio(bad):
    with pytest.raises(ValueError, match='mask_ratio'):
        check_mask_ratio(bad)
