# Copyright (c) mmssl contributors. All rights reserved.
"""Embedding the visible patches only: the same tokens and gradients as
embedding every patch and gathering, and MAEViT's masked path equal to
mmpretrain's."""
import pytest
import torch
import torch.nn as nn
from mmcv.cnn.bricks.transformer import PatchEmbed
from mmpretrain.models.selfsup.mae import MAEViT as MMPretrainMAEViT

from mmssl.models.selfsup.mae import MAEViT
from mmssl.models.utils import gather_tokens, masking_ids, random_masking
from mmssl.models.utils.patch_embed import embed_patches_at, patch_columns


def _embed(**kwargs):
    torch.manual_seed(0)
    kwargs = dict(
        dict(
            in_channels=3,
            embed_dims=16,
            kernel_size=4,
            stride=4,
            input_size=(12, 8)), **kwargs)
    return PatchEmbed(**kwargs)


def test_patch_columns_match_the_conv_weight_order():
    """A patch dotted with the flattened conv weight is the conv output."""
    torch.manual_seed(0)
    imgs = torch.randn(2, 3, 8, 12)
    conv = nn.Conv2d(3, 5, (4, 3), stride=(4, 3))
    cols = patch_columns(imgs, 4, 3)
    assert cols.shape == (2, 2 * 4, 3 * 4 * 3)
    ref = conv(imgs).flatten(2).transpose(1, 2)
    torch.testing.assert_close(cols @ conv.weight.flatten(1).T + conv.bias,
                               ref)


@pytest.mark.parametrize(
    'kwargs',
    [
        dict(),
        dict(bias=False),
        dict(norm_cfg=dict(type='LN')),
        dict(kernel_size=4, stride=2),  # overlapping windows: every patch
    ])
def test_embed_at_equals_embed_all_then_gather(kwargs):
    embed = _embed(**kwargs)
    imgs = torch.randn(2, 3, 12, 8)
    L = embed(imgs)[0].shape[1]
    ids = torch.stack([torch.randperm(L)[:3] for _ in range(2)])
    g = torch.randn(2, 3, 16)
    results = []
    for fn in (lambda: gather_tokens(embed(imgs)[0], ids),
               lambda: embed_patches_at(embed, imgs, ids)):
        embed.zero_grad()
        y = fn()
        y.backward(g)
        results.append(
            (y.detach(), [p.grad.clone() for p in embed.parameters()]))
    torch.testing.assert_close(results[1][0], results[0][0])
    for a, b in zip(results[0][1], results[1][1]):
        torch.testing.assert_close(b, a)


class _LinearEmbed(nn.Module):
    """A patch embedding whose projection is no convolution."""

    def __init__(self):
        super().__init__()
        self.projection = nn.Linear(3, 16)

    def forward(self, imgs):
        return self.projection(imgs.flatten(2).transpose(1, 2)), None


@pytest.mark.parametrize('proj', [
    nn.Conv2d(3, 6, 4, 4, groups=3),
    nn.Conv2d(3, 16, 4, 4, padding=1),
    nn.Conv2d(3, 16, 2, 2, dilation=2),
])
def test_embed_at_falls_back_for_other_convolutions(proj):
    """Grouped, padded or dilated convolutions (and no convolution at all)
    embed every patch and gather: the same as the module's own output."""
    embed = _embed()
    embed.projection = proj
    imgs = torch.randn(2, 3, 12, 8)
    tokens = embed(imgs)[0]
    ids = torch.stack([torch.randperm(tokens.shape[1])[:3] for _ in range(2)])
    assert torch.equal(
        embed_patches_at(embed, imgs, ids), gather_tokens(tokens, ids))
    other = _LinearEmbed()
    ids = torch.tensor([[0, 7, 3]])
    imgs = torch.randn(1, 3, 4, 4)
    assert torch.equal(
        embed_patches_at(other, imgs, ids), gather_tokens(other(imgs)[0], ids))


def test_embed_at_runs_no_convolution_on_plain_patches():
    """Plain patches go through one product of the chosen patches; a size
    the patch does not divide falls back to the padded convolution."""
    embed = _embed()
    calls = []
    embed.projection.register_forward_hook(lambda *a: calls.append(1))
    ids = torch.tensor([[0, 5]])
    embed_patches_at(embed, torch.randn(1, 3, 12, 8), ids)
    assert calls == []
    out = embed_patches_at(embed, torch.randn(1, 3, 10, 8), ids)
    assert calls == [1] and out.shape == (1, 2, 16)


def test_masking_ids_same_masks_as_random_masking():
    """masking_ids draws what random_masking draws: one seed, one mask."""
    x = torch.randn(3, 12, 4)
    torch.manual_seed(7)
    ref = random_masking(x, 0.75)
    torch.manual_seed(7)
    mask, ids_restore, ids_keep = masking_ids(3, 12, 0.75)
    assert torch.equal(mask, ref[1]) and torch.equal(ids_restore, ref[2])
    assert torch.equal(ids_keep, ref[3])
    assert torch.equal(gather_tokens(x, ids_keep), ref[0])
    assert mask.dtype == torch.float32 and mask.sum() == 3 * 9
    assert masking_ids(1, 4, 0.5, dtype=torch.bfloat16)[0].dtype == \
        torch.bfloat16


def test_mae_vit_masked_path_equals_mmpretrain():
    """The same visible tokens (and so the same masks, for one seed) as
    mmpretrain's MAEViT, which embeds every patch first."""
    kwargs = dict(
        arch=dict(
            embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64),
        img_size=32,
        patch_size=8)
    torch.manual_seed(0)
    ours = MAEViT(**kwargs)
    ours.init_weights()
    with torch.no_grad():  # a CLS position of its own
        ours.pos_embed.add_(0.1 * torch.randn_like(ours.pos_embed))
    ref = MMPretrainMAEViT(**kwargs)
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(2, 3, 32, 32)
    torch.manual_seed(3)
    a = ours(x)
    torch.manual_seed(3)
    b = ref(x)
    assert torch.equal(a[1], b[1]) and torch.equal(a[2], b[2])
    torch.testing.assert_close(a[0], b[0])
    with pytest.raises(ValueError, match='img_size'):
        ours(torch.randn(1, 3, 40, 40))
