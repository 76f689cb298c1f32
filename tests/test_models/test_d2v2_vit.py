# Copyright (c) mmssl contributors. All rights reserved.
"""The post-LN ViT of data2vec 2.0 (``mmssl.D2V2ViT`` / ``D2V2Block``):
the reference's layout, defaults, arch table and argument checks."""
import math

import pytest
import torch
from mmcv.cnn.bricks import DropPath

from mmssl.models.backbones import D2V2Block, D2V2ViT
from mmssl.models.backbones.d2v2_vit import sincos_pos_embed_2d

C = 16


def vit(**kwargs):
    """A 4-block ViT on 32 px images with 8 px patches (a 4 x 4 grid)."""
    cfg = dict(
        arch=dict(
            embed_dims=C, num_layers=4, num_heads=2, feedforward_channels=32),
        img_size=32,
        patch_size=8)
    cfg.update(kwargs)
    return D2V2ViT(**cfg)


def test_sincos_is_maes_layout_by_hand():
    """Token k = row * w + col gets [sin(col f), cos(col f), sin(row f),
    cos(row f)] with f_i = 10000^(-i / (C / 4)) (MAE's
    ``get_2d_sincos_pos_embed``), on a non-square 2 x 3 grid."""
    pe = sincos_pos_embed_2d(2, 3, 8)
    assert pe.shape == (1, 6, 8) and pe.dtype == torch.float32
    freqs = [10000**(-i / 2) for i in range(2)]
    for row in range(2):
        for col in range(3):
            want = [math.sin(col * f) for f in freqs]
            want += [math.cos(col * f) for f in freqs]
            want += [math.sin(row * f) for f in freqs]
            want += [math.cos(row * f) for f in freqs]
            torch.testing.assert_close(pe[0, row * 3 + col],
                                       torch.tensor(want))


def test_block_defaults_are_the_references():
    """fairseq's AltBlock as data2vec 2.0 builds it: qkv bias, LayerNorm eps
    1e-6, no dropout and no stochastic depth unless asked for."""
    block = D2V2Block(C, 2, 32)
    assert block.attn.qkv.bias is not None
    assert block.ln1.eps == block.ln2.eps == 1e-6
    assert block.attn.attn_drop == 0 and block.attn.proj_drop.p == 0
    assert block.post_ffn_drop.p == 0
    assert block.attn.out_drop.drop_prob == 0
    assert isinstance(block.drop_path, torch.nn.Identity)
    dropouts = [
        m.p for m in block.ffn.modules() if isinstance(m, torch.nn.Dropout)
    ]
    assert dropouts and set(dropouts) == {0}


def test_ffn_branch_has_per_sample_stochastic_depth():
    """With drop_path_rate p the FFN branch t of a training block is, per
    sample, either dropped or scaled by 1 / (1 - p): out = LN2(x1) or
    LN2(x1 + t / (1 - p)), with x1 the LN1 output."""
    torch.manual_seed(0)
    block = D2V2Block(C, 2, 32, drop_path_rate=0.5)
    assert isinstance(block.drop_path, DropPath)
    block.attn.out_drop = torch.nn.Identity()  # keep the attention branch
    block.train()
    seen = {}
    block.ln1.register_forward_hook(lambda m, i, o: seen.update(x1=o))
    out, t = block(torch.randn(16, 5, C))
    x1 = seen['x1']
    dropped = block.ln2(x1)
    kept = block.ln2(x1 + t / 0.5)
    is_dropped = [torch.allclose(out[i], dropped[i]) for i in range(16)]
    is_kept = [torch.allclose(out[i], kept[i]) for i in range(16)]
    assert all(d != k for d, k in zip(is_dropped, is_kept))
    assert any(is_dropped) and any(is_kept)


@pytest.mark.parametrize('names,row', [
    (('t', 'tiny'), (192, 12, 3, 768)),
    (('s', 'small'), (384, 12, 6, 1536)),
    (('b', 'base', 'Base'), (768, 12, 12, 3072)),
    (('l', 'large'), (1024, 24, 16, 4096)),
    (('h', 'huge'), (1280, 32, 16, 5120)),
])
def test_arch_table_row_by_row(names, row):
    """(embed_dims, num_layers, num_heads, feedforward_channels) of the
    ViT-T/S/B/L/H rows; names are case-insensitive."""
    for name in names:
        with torch.device('meta'):
            bb = D2V2ViT(arch=name)
        block = bb.layers[0]
        assert (bb.embed_dims, len(bb.layers), block.attn.num_heads,
                block.ffn.layers[0][0].out_features) == row, name


def test_defaults_are_the_image_base():
    """ViT-B/16 at 224 px, the last block's raw tokens, qkv and patch
    biases, LayerNorm eps 1e-6, no fc norm; the fixed position embedding is
    not saved in checkpoints."""
    with torch.device('meta'):
        bb = D2V2ViT()
    assert bb.embed_dims == 768 and bb.num_layers == 12
    assert bb.img_size == (224, 224) and bb.patch_size == 16
    assert bb.patch_resolution == (14, 14)
    assert bb.out_indices == [11] and bb.out_type == 'raw'
    assert bb.ln_fc is None
    assert bb.patch_embed.projection.bias is not None
    assert all(layer.attn.qkv.bias is not None for layer in bb.layers)
    norms = [bb.ln_pre] + [m for b in bb.layers for m in (b.ln1, b.ln2)]
    assert {m.eps for m in norms} == {1e-6}
    assert 'pos_embed' not in bb.state_dict()
    assert bb.pos_embed.shape == (1, 196, 768)


def test_fc_norm_only_with_average_pooling():
    assert vit(out_type='avg_featmap', with_fc_norm=True).ln_fc is not None
    assert vit(out_type='cls_token', with_fc_norm=True).ln_fc is None
    assert vit(out_type='avg_featmap').ln_fc is None


def test_out_indices_bounds():
    """0 .. L - 1 and -L .. -1 name the L blocks; index 0 (or -L) is the
    first block's output."""
    x = torch.randn(1, 3, 32, 32)
    for first_index in (0, -4):
        bb = vit(out_indices=[first_index, 3]).eval()
        assert bb.out_indices == [0, 3]
        outs = bb(x)
        first, _ = bb.layers[0](bb.context(bb.embed(x)[0]))
        assert len(outs) == 2
        torch.testing.assert_close(outs[0], first)
    for bad in (4, -5):
        with pytest.raises(ValueError, match=f'out_indices: {bad} is out'):
            vit(out_indices=bad)


def test_width_must_suit_heads_and_the_sincos_embedding():
    """embed_dims must be divisible by num_heads and by 4 (not by more)."""
    bb = vit(
        arch=dict(
            embed_dims=12, num_layers=1, num_heads=3, feedforward_channels=8))
    assert bb(torch.randn(1, 3, 32, 32))[0].shape == (1, 17, 12)
    for dims, heads in ((10, 2), (12, 5)):
        with pytest.raises(ValueError, match='divisible by num_heads'):
            vit(
                arch=dict(
                    embed_dims=dims,
                    num_layers=1,
                    num_heads=heads,
                    feedforward_channels=8))


def test_bad_archs_are_named():
    with pytest.raises(ValueError, match="arch='giant' is unknown"):
        D2V2ViT(arch='giant')
    with pytest.raises(ValueError, match='needs the keys'):
        vit(arch=dict(embed_dims=C, num_layers=2, num_heads=2))
    with pytest.raises(ValueError, match='needs the keys'):
        vit(arch=[C, 2, 2, 32])


def test_patch_embedding_is_xavier_uniform_over_the_flat_kernel():
    """fairseq initialises the conv as a (C, in * p * p) Linear: Xavier
    bound sqrt(6 / (C + 3 p^2)); the CLS token is N(0, 1)."""
    torch.manual_seed(0)
    w = vit().patch_embed.projection.weight
    bound = math.sqrt(6 / (C + 3 * 8 * 8))
    assert w.abs().max().item() <= bound
    assert w.abs().max().item() > 0.95 * bound


def test_embedding_and_output_types_by_hand():
    """embed = conv patches + sin-cos; context = LN([CLS, tokens]); the
    cls_token / avg_featmap / featmap outputs are the raw tokens' CLS, the
    mean of the patch tokens (then ln_fc) and the patch grid."""
    torch.manual_seed(0)
    x = torch.randn(2, 3, 32, 32)
    bb = vit().eval()
    tokens, grid = bb.embed(x)
    conv = bb.patch_embed.projection(x).flatten(2).transpose(1, 2)
    assert grid == (4, 4)
    torch.testing.assert_close(tokens, conv + sincos_pos_embed_2d(4, 4, C))
    ctx = bb.context(tokens)
    torch.testing.assert_close(
        ctx, bb.ln_pre(torch.cat([bb.cls_token.expand(2, -1, -1), tokens], 1)))
    raw = bb(x)[0]
    state = bb.state_dict()
    for out_type in ('cls_token', 'avg_featmap', 'featmap'):
        other = vit(out_type=out_type).eval()
        other.load_state_dict(state)
        got = other(x)[0]
        if out_type == 'cls_token':
            torch.testing.assert_close(got, raw[:, 0])
        elif out_type == 'avg_featmap':
            torch.testing.assert_close(got, raw[:, 1:].mean(1))
        else:
            torch.testing.assert_close(
                got, raw[:, 1:].transpose(1, 2).reshape(2, C, 4, 4))
    pooled = vit(out_type='avg_featmap', with_fc_norm=True).eval()
    pooled.load_state_dict(state, strict=False)
    with torch.no_grad():
        pooled.ln_fc.weight.fill_(2.)
    torch.testing.assert_close(pooled(x)[0], pooled.ln_fc(raw[:, 1:].mean(1)))


@pytest.mark.parametrize('size', [(32, 36), (36, 32)])
def test_inputs_the_patch_size_does_not_divide_are_refused(size):
    with pytest.raises(ValueError, match='not divisible by the patch size'):
        vit()(torch.randn(1, 3, *size))


def frozen(bb):
    """Owners of the frozen parameters: a top-level name or layers.i."""
    return {
        n.split('.')[0] +
        ('.' + n.split('.')[1] if n.startswith('layers') else '')
        for n, p in bb.named_parameters() if not p.requires_grad
    }


def test_frozen_stages():
    """-1 freezes nothing; k >= 0 freezes the embedding (patch embedding,
    CLS token, ln_pre) and the first k blocks, kept in eval mode by
    ``train()``; ln_fc only once every block is frozen."""
    assert frozen(vit()) == set()
    assert frozen(
        vit(frozen_stages=0)) == {'patch_embed', 'cls_token', 'ln_pre'}
    bb = vit(frozen_stages=2, drop_rate=0.5)
    assert frozen(bb) == {
        'patch_embed', 'cls_token', 'ln_pre', 'layers.0', 'layers.1'
    }
    bb.train()
    assert bb.training and bb.layers[2].training
    assert not bb.layers[1].training and not bb.ln_pre.training
    assert not bb.layers[1].post_ffn_drop.training
    assert bb.layers[2].post_ffn_drop.training
    head = dict(out_type='avg_featmap', with_fc_norm=True)
    assert 'ln_fc' in frozen(vit(frozen_stages=4, **head))
    assert 'ln_fc' not in frozen(vit(frozen_stages=3, **head))
    assert len(frozen(vit(frozen_stages=4))) == 7


def test_mask_none_or_false_gives_the_plain_path():
    bb = vit().eval()
    x = torch.randn(2, 3, 32, 32)
    plain = bb(x)
    assert isinstance(plain, tuple) and len(plain) == 1
    for mask in (None, False):
        torch.testing.assert_close(bb(x, mask=mask), plain)
