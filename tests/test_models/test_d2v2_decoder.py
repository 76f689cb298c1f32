# Copyright (c) mmssl contributors. All rights reserved.
"""The 2-D conv decoder of data2vec 2.0 (spec data2vec2.md 2.5-2.6): noise at
the removed positions, fairseq's blocks, residual adds, defaults."""
import pytest
import torch
import torch.nn.functional as F

from mmssl.models.necks import D2V2ConvDecoder2d


def test_fill_masked_puts_fresh_noise_at_removed_positions():
    """Spec 2.5: the V visible tokens back in place, N - V tokens drawn
    from N(0, noise_std^2) (nothing learned) at the removed positions."""
    from mmssl.models.necks.d2v2_decoder import fill_masked
    B, N, V, C = 2, 6, 2, 3
    x = torch.randn(B, V, C)
    ids_shuffle = torch.stack([torch.randperm(N) for _ in range(B)])
    ids_restore = ids_shuffle.argsort(dim=1)
    torch.manual_seed(3)
    out = fill_masked(x, ids_restore, 0.5)
    torch.manual_seed(3)
    noise = torch.empty(B, N - V, C).normal_() * 0.5
    for b in range(B):
        for k in range(N):
            want = x[b, k] if k < V else noise[b, k - V]
            torch.testing.assert_close(out[b, ids_shuffle[b, k]], want)


@pytest.mark.parametrize('spatial_dims', [1, 2])
@pytest.mark.parametrize('kernel_size', [2, 3, 4, 6])
def test_conv_block_keeps_the_size_for_any_kernel(spatial_dims, kernel_size):
    """fairseq's SamePad: an even kernel's extra output is cropped."""
    from mmssl.models.necks.d2v2_decoder import ConvLNGELU
    block = ConvLNGELU(4, 8, kernel_size, 2, spatial_dims=spatial_dims)
    assert block.conv.kernel_size == (kernel_size, ) * spatial_dims
    size = (5, 7)[:spatial_dims]
    out = block(torch.randn(2, 4, *size))
    assert out.shape == (2, 8, *size)


def test_defaults_are_fairseqs_vit_b_decoder():
    """6 blocks of grouped 3x3 convs (groups 16, width 768), residual,
    noise std 0.01, NCHW unless asked."""
    dec = D2V2ConvDecoder2d(in_channels=32)
    assert len(dec.blocks) == 6 and dec.embed_dims == 768
    conv = dec.blocks[0].conv
    assert (conv.in_channels, conv.out_channels, conv.kernel_size, conv.groups,
            conv.padding) == (32, 768, (3, 3), 16, (1, 1))
    assert dec.residual and dec.noise_std == 0.01 and not dec.channels_last
    assert (dec.proj.in_features, dec.proj.out_features) == (768, 32)


def test_forward_by_hand_with_residual_adds():
    """x_{i+1} = block_i(x_i) + x_i where the widths match (not on the
    first block when in_channels differs), then the per-position Linear;
    a square grid is the default layout."""
    torch.manual_seed(0)
    for in_channels, residual in ((8, True), (4, True), (8, False)):
        dec = D2V2ConvDecoder2d(
            in_channels=in_channels,
            embed_dims=8,
            num_layers=2,
            groups=2,
            residual=residual)
        x = torch.randn(2, 3, in_channels)
        ids_restore = torch.stack([torch.randperm(9) for _ in range(2)])
        torch.manual_seed(1)
        out = dec(x, ids_restore)  # grid None: 3 x 3
        torch.manual_seed(1)
        h = dec.fill(x, ids_restore).transpose(1, 2).reshape(2, -1, 3, 3)
        for block in dec.blocks:
            conv = block.conv(h)
            y = F.gelu(F.layer_norm(conv.movedim(1, -1), (8, ))).movedim(-1, 1)
            h = y + h if residual and y.shape == h.shape else y
        want = dec.proj(h.flatten(2).transpose(1, 2))
        torch.testing.assert_close(out, want, atol=1e-6, rtol=1e-6)


def test_groups_must_divide_both_widths():
    for kw in (dict(in_channels=6,
                    embed_dims=8), dict(in_channels=8, embed_dims=6)):
        with pytest.raises(ValueError, match='groups=4 must divide'):
            D2V2ConvDecoder2d(groups=4, **kw)
    with pytest.raises(ValueError, match='do not form a 2x4 grid'):
        D2V2ConvDecoder2d(
            8, 8, 1, groups=2)(torch.randn(1, 2, 8), torch.arange(9)[None],
                               (2, 4))
