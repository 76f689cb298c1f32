# Copyright (c) mmssl contributors. All rights reserved.
import pytest
import torch

from mmssl.models.utils import (check_mask_ratio, patch_mean_var, patchify,
                                pixel_targets, random_masking, unpatchify,
                                unshuffle_tokens)


def test_patchify_roundtrip_and_order():
    x = torch.randn(2, 3, 32, 32)
    p = patchify(x, 8)
    assert p.shape == (2, 16, 192)
    assert torch.equal(unpatchify(p, 8, 3), x)
    # patch 1 (row 0, col 1), element (row 2, col 5, channel 1)
    k = (2 * 8 + 5) * 3 + 1
    assert p[0, 1, k] == x[0, 1, 2, 8 + 5]


def test_patchify_is_mmpretrains_and_takes_rectangles():
    from mmpretrain.models.heads import MAEPretrainHead
    x = torch.randn(2, 3, 32, 32)
    head = MAEPretrainHead(
        patch_size=8,
        loss=dict(type='PixelReconstructionLoss', criterion='L2'))
    assert torch.equal(patchify(x, 8), head.patchify(x))
    x = torch.randn(2, 3, 16, 24)  # 2 x 3 patches
    p = patchify(x, 8)
    assert p.shape == (2, 6, 192)
    # patch 5 (row 1, col 2), element (row 3, col 6, channel 2)
    assert p[1, 5, (3 * 8 + 6) * 3 + 2] == x[1, 2, 8 + 3, 16 + 6]
    assert torch.equal(unpatchify(p, 8, 3, (2, 3)), x)
    with pytest.raises(ValueError, match='16x20 is not divisible'):
        patchify(torch.zeros(1, 3, 16, 20), 8)


def test_pixel_targets_by_hand():
    # one image, 2 x 1 patches of 2 x 2 px, one channel
    x = torch.tensor([[[[1., 2.], [3., 4.], [0., 0.], [0., 6.]]]])
    raw = pixel_targets(x, 2, norm_pix=False)
    assert torch.equal(raw, torch.tensor([[[1., 2., 3., 4.], [0., 0., 0.,
                                                              6.]]]))
    # unbiased variance: 5/3 and 9; each patch over sqrt(var + 1e-6)
    t = pixel_targets(x, 2)
    torch.testing.assert_close(
        t,
        torch.tensor([[[-1.5, -0.5, 0.5, 1.5], [-1.5, -1.5, -1.5, 4.5]]]) /
        torch.tensor([5 / 3 + 1e-6, 9 + 1e-6]).sqrt().reshape(1, 2, 1))
    mean, var = patch_mean_var(raw)
    torch.testing.assert_close(mean, torch.tensor([[[2.5], [1.5]]]))
    torch.testing.assert_close(var, torch.tensor([[[5 / 3], [9.]]]))
    # ids pick patches (here the second, then the first)
    torch.testing.assert_close(
        pixel_targets(x, 2, torch.tensor([[1, 0]])), t.flip(1))
    assert torch.equal(
        pixel_targets(x, 2, torch.tensor([[1]]), norm_pix=False), raw[:, 1:])
    # eps = 1e-6 is added to the variance: with a variance of 1e-6 the
    # deviations are divided by sqrt(2e-6); a flat patch gives zeros, not NaN
    small = torch.tensor([[[[0., 0.], [0., 2e-3]]]])  # var (2e-3)^2 / 4
    torch.testing.assert_close(
        pixel_targets(small, 2),
        torch.tensor([[[-5e-4, -5e-4, -5e-4, 1.5e-3]]]) / 2e-6**.5)
    flat = pixel_targets(torch.ones(1, 1, 2, 2), 2)
    assert torch.equal(flat, torch.zeros(1, 1, 4))


@pytest.mark.parametrize('norm_pix', [True, False])
def test_pixel_targets_are_mmpretrains_at_the_ids(norm_pix):
    from mmpretrain.models.heads import MAEPretrainHead
    torch.manual_seed(0)
    x = torch.randn(3, 3, 32, 32) * 2 + 1
    head = MAEPretrainHead(
        norm_pix=norm_pix,
        patch_size=8,
        loss=dict(type='PixelReconstructionLoss', criterion='L2'))
    full = head.construct_target(x)  # (3, 16, 192)
    ids = torch.rand(3, 16).argsort(1)[:, :12]
    ref = torch.gather(full, 1, ids.unsqueeze(-1).expand(-1, -1, 192))
    out = pixel_targets(x, 8, ids, norm_pix)
    if norm_pix:  # two-pass variance against torch's: rounding only
        torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
        mean, var = patch_mean_var(patchify(x, 8))
        torch.testing.assert_close(var, patchify(x, 8).var(-1, keepdim=True))
        torch.testing.assert_close(mean, patchify(x, 8).mean(-1, True))
    else:
        assert torch.equal(out, ref)
    torch.testing.assert_close(
        pixel_targets(x, 8, norm_pix=norm_pix), full, rtol=1e-5, atol=1e-6)


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
