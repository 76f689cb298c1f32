# Copyright (c) mmssl contributors. All rights reserved.
"""data2vec 2.0's 1-D conv decoder (text and speech)."""
import pytest
import torch
import torch.nn.functional as F

from mmssl.models.necks import D2V2ConvDecoder1d
from mmssl.models.utils import mask_to_ids


def _reference(dec, x, ids_restore, noise):
    """The decoder written out: fill, blocks, projection."""
    full = torch.cat([x, noise], 1)
    full = torch.gather(full, 1,
                        ids_restore.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
    h = full.transpose(1, 2)
    for blk in dec.blocks:
        out = blk.conv(h)
        if blk.crop:
            out = out[..., :-1]
        out = F.gelu(
            F.layer_norm(out.transpose(1, 2), out.shape[1:2]).transpose(1, 2))
        h = out + h if dec.residual and out.shape == h.shape else out
    return dec.proj(h.transpose(1, 2))


@pytest.mark.parametrize('residual,kernel,proj_layers', [(False, 9, 2),
                                                         (True, 4, 1),
                                                         (True, 3, 3)])
def test_matches_the_written_out_decoder(residual, kernel, proj_layers):
    torch.manual_seed(0)
    dec = D2V2ConvDecoder1d(
        8,
        embed_dims=8,
        num_layers=3,
        kernel_size=kernel,
        groups=2,
        residual=residual,
        projection_layers=proj_layers,
        input_dropout=0.).eval()
    mask = torch.zeros(2, 10, dtype=torch.bool)
    mask[0, [1, 4, 5, 9]] = True
    mask[1, [0, 2, 3, 7]] = True
    ids_keep, ids_restore = mask_to_ids(mask)
    x = torch.randn(2, 6, 8)
    torch.manual_seed(1)
    got = dec(x, ids_restore, (10, ))
    torch.manual_seed(1)
    noise = torch.empty(2, 4, 8).normal_(0, 0.01)
    assert got.shape == (2, 10, 8)
    assert torch.allclose(
        got, _reference(dec, x, ids_restore, noise), atol=1e-6)


def test_projection_shape_and_input_dropout():
    dec = D2V2ConvDecoder1d(
        16,
        embed_dims=32,
        projection_layers=2,
        projection_ratio=2.,
        input_dropout=0.5)
    assert [
        m.out_features for m in dec.proj if isinstance(m, torch.nn.Linear)
    ] == [64, 16]
    _, ids_restore = mask_to_ids(torch.tensor([[False, True, False]]))
    x = torch.ones(1, 2, 16)
    dec.noise_std = 0.
    seen = {}

    def hook(module, inputs, output):
        seen['in'] = inputs[0]

    dec.blocks[0].register_forward_hook(hook)
    dec.train()(x, ids_restore)
    inp = seen['in'][0].T  # (3, 16)
    assert torch.all(inp[1] == 0)  # the filled (noise-free) position
    vis = inp[[0, 2]]
    assert set(vis.unique().tolist()) <= {0., 2.}  # dropout p=.5 scaling
    dec.eval()
    seen.clear()
    dec(x, ids_restore)
    assert torch.equal(seen['in'][0].T[[0, 2]], torch.ones(2, 16))


def test_one_projection_is_a_plain_linear():
    """fairseq's checkpoint layout: ``proj.weight`` for one layer."""
    dec = D2V2ConvDecoder1d(16, embed_dims=32, projection_layers=1)
    assert isinstance(dec.proj, torch.nn.Linear)
    assert 'proj.weight' in dec.state_dict()


def test_bad_settings_name_the_key():
    with pytest.raises(ValueError, match='model.neck.groups'):
        D2V2ConvDecoder1d(10, embed_dims=16, groups=4)
    with pytest.raises(ValueError, match='model.neck.input_dropout'):
        D2V2ConvDecoder1d(16, input_dropout=1.)
    with pytest.raises(ValueError, match='model.neck.projection_ratio'):
        D2V2ConvDecoder1d(16, projection_layers=2, projection_ratio=0.)
    dec = D2V2ConvDecoder1d(4, embed_dims=4, num_layers=1)
    _, ids_restore = mask_to_ids(torch.tensor([[False, True, False]]))
    with pytest.raises(ValueError, match='sequence layout'):
        dec(torch.randn(1, 2, 4), ids_restore, (4, ))


@pytest.mark.parametrize('spatial_dims,kernel', [(1, 7), (1, 4), (2, 3)])
def test_conv_block_by_hand_and_gelu_on_contiguous_memory(
        spatial_dims, kernel):
    """ConvLNGELU = conv ('same' size) -> LayerNorm over channels (no
    affine) -> GELU, and the GELU runs on the contiguous channels-last
    LayerNorm output (its vectorised kernels) forward and backward."""
    from mmssl.models.necks.d2v2_decoder import ConvLNGELU
    from mmssl.testing.ops import OpRecorder
    torch.manual_seed(0)
    blk = ConvLNGELU(8, 16, kernel, 4, spatial_dims=spatial_dims).double()
    x = torch.randn((2, 8) + (5, ) * spatial_dims, dtype=torch.float64)
    if spatial_dims == 1:  # as the 1-D decoder feeds it: (B, L, C) memory
        x = x.transpose(1, 2).contiguous().transpose(1, 2)
    with OpRecorder() as rec:
        out = blk(x)
        (out**2).sum().backward()
    y = blk.conv(x)[(..., ) + (slice(0, 5), ) * spatial_dims]
    y = y.movedim(1, -1)
    mean = y.mean(-1, keepdim=True)
    var = y.var(-1, unbiased=False, keepdim=True)
    ref = F.gelu((y - mean) / torch.sqrt(var + 1e-5)).movedim(-1, 1)
    assert out.shape == (2, 16) + (5, ) * spatial_dims
    torch.testing.assert_close(out, ref)
    ops = ('gelu', 'gelu_backward')
    if spatial_dims == 1 and kernel % 2:  # the 1-D conv keeps (B, L, C)
        ops += ('native_layer_norm', 'native_layer_norm_backward')
    for op in ops:
        ts = [t for t in rec.inputs(op) if t.dim() > 1]
        assert ts and all(t.is_contiguous() for t in ts), op


def test_defaults_are_the_text_recipe():
    """768 wide, 5 blocks of kernel 9, one group, no residual, a 2-layer
    projection widening by 2, input dropout 0.1, noise std 0.01."""
    with torch.device('meta'):
        dec = D2V2ConvDecoder1d(768)
    assert dec.embed_dims == 768 and len(dec.blocks) == 5
    conv = dec.blocks[0].conv
    assert (conv.kernel_size, conv.groups, conv.padding) == ((9, ), 1, (4, ))
    assert dec.residual is False
    assert [m.out_features for m in dec.proj
            if hasattr(m, 'out_features')] == [1536, 768]
    assert dec.input_dropout.p == 0.1 and dec.noise_std == 0.01
    assert D2V2ConvDecoder1d(8, embed_dims=8, projection_ratio=0.5)
    with pytest.raises(ValueError, match='model.neck.projection_ratio'):
        D2V2ConvDecoder1d(8, projection_ratio=0.)
