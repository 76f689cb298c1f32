# Copyright (c) mmssl contributors. All rights reserved.
"""Positional labels in models: the backbones' position switches, the
supervised classifier and MAE + APL (spec poslabel.md sections 2, 6, 7)."""
import copy

import pytest
import torch
from mmengine.registry import init_default_scope
from mmpretrain.models.utils.attention import WindowMSA
from mmpretrain.structures import DataSample

from mmssl.registry import MODELS
from mmssl.testing import tiny_mae_cfg, tiny_poslabel_vit_cfg

init_default_scope('mmpretrain')


def _vit(**kw):
    return tiny_poslabel_vit_cfg(**kw)


def _swin(**kw):
    cfg = dict(
        type='mmssl.PosLabelSwin',
        arch=dict(embed_dims=16, depths=[2, 2, 2], num_heads=[2, 2, 4]),
        img_size=32,
        patch_size=2,
        window_size=4,
        drop_path_rate=0.,
        out_indices=(2, ))
    cfg.update(kw)
    return cfg


def _classifier(backbone, pos_head, channels=32):
    return dict(
        type='mmssl.PosLabelClassifier',
        backbone=backbone,
        neck=dict(type='GlobalAveragePooling'),
        head=dict(
            type='LinearClsHead',
            num_classes=3,
            in_channels=channels,
            loss=dict(type='CrossEntropyLoss')),
        pos_head=pos_head)


def _samples(n):
    return [DataSample().set_gt_label(i % 3) for i in range(n)]


def _grads(model):
    return {
        k: p.grad.clone()
        for k, p in model.named_parameters() if p.grad is not None
    }


def _total(losses):
    return sum(v for k, v in losses.items() if k.startswith('loss'))


def _patch_permute(img, perm, p):
    """Move patch perm[k] of a (B, 3, H, W) image to cell k."""
    B, C, H, W = img.shape
    h, w = H // p, W // p
    x = img.reshape(B, C, h, p, w, p).permute(0, 2, 4, 1, 3, 5)
    x = x.reshape(B, h * w, C, p, p)[:, perm]
    return x.reshape(B, h, w, C, p, p).permute(0, 3, 1, 4, 2,
                                               5).reshape(B, C, H, W)


# --- the position-embedding handling of the spec ---------------------------


def test_vit_without_pos_embed_is_patch_permutation_equivariant():
    """APL "no PE" setting: nothing but the label can tell where a patch
    is; with the embedding (the reference's ViT-B + APL) it can."""
    torch.manual_seed(0)
    perm = torch.randperm(16)
    img = torch.randn(2, 3, 32, 32)
    for use_pe, equivariant in ((False, True), (True, False)):
        vit = MODELS.build(_vit(use_pos_embed=use_pe, out_type='raw'))
        vit.init_weights()
        vit.eval()
        out = vit(img)[0]  # (B, 16, C)
        out_perm = vit(_patch_permute(img, perm, 8))[0]
        assert torch.allclose(out_perm, out[:, perm], atol=1e-5) == equivariant
    vit = MODELS.build(_vit(use_pos_embed=False))
    names = [k for k, _ in vit.named_parameters()]
    assert 'pos_embed' not in names and 'pos_embed' not in vit.state_dict()


def test_swin_without_bias_window_attention_is_permutation_equivariant():
    """RPL setting of the reference: no relative position bias, so a
    window's attention cannot tell its tokens' places apart."""
    torch.manual_seed(0)
    perm = torch.randperm(16)
    x = torch.randn(3, 16, 16)  # (windows * B, M * M, C)
    for use_bias, equivariant in ((False, True), (True, False)):
        swin = MODELS.build(_swin(use_rel_pos_bias=use_bias))
        swin.init_weights()
        attn = next(m for m in swin.modules() if isinstance(m, WindowMSA))
        if use_bias:
            torch.nn.init.normal_(attn.relative_position_bias_table)
        else:
            assert attn.relative_position_bias_table.abs().sum() == 0
            assert 'relative_position_bias_table' not in dict(
                attn.named_parameters())
        attn.eval()
        assert torch.allclose(
            attn(x[:, perm]), attn(x)[:, perm], atol=1e-5) == equivariant


def test_mae_encoder_without_pos_embed_has_zero_embedding():
    cfg = tiny_mae_cfg()
    cfg['backbone']['use_pos_embed'] = False
    mae = MODELS.build(cfg)
    mae.init_weights()
    assert mae.backbone.pos_embed.abs().sum() == 0
    assert mae.neck.decoder_pos_embed.abs().sum() > 0  # decoder keeps its
    on = MODELS.build(tiny_mae_cfg())
    on.init_weights()
    assert on.backbone.pos_embed.abs().sum() > 0


# --- grids of the backbone outputs -----------------------------------------


def test_swin_token_grid_of_every_stage_matches_its_output():
    swin = MODELS.build(_swin(out_indices=(0, 1, 2)))
    outs = swin(torch.randn(1, 3, 32, 32))
    assert [tuple(o.shape[-2:]) for o in outs] == [(16, 16), (8, 8), (4, 4)]
    assert [swin.token_grid(i) for i in range(3)] == [(16, 16), (8, 8), (4, 4)]
    assert MODELS.build(_swin(out_indices=(-1, ))).out_indices == (2, )


def test_vit_token_grid_matches_its_feature_map():
    vit = MODELS.build(_vit(img_size=40, patch_size=8))
    assert vit(torch.randn(1, 3, 40, 40))[0].shape[-2:] == (5, 5)
    assert vit.token_grid() == (5, 5)


# --- (a) supervised classifier ---------------------------------------------


@pytest.mark.parametrize('backbone,pos_head,channels', [
    (_vit(),
     dict(
         type='mmssl.AbsPosLabelHead',
         in_channels=32,
         grid_size=4,
         mlp_dims=(16, 8)), 32),
    (_swin(),
     dict(
         type='mmssl.RelPosLabelHead',
         in_channels=64,
         grid_size=4,
         window_size=4,
         mlp_dims=(16, 16)), 64),
])
def test_weight_zero_equals_plain_classifier(backbone, pos_head, channels):
    torch.manual_seed(0)
    plain = _classifier(backbone, None, channels)
    plain.pop('pos_head')
    plain = MODELS.build(dict(plain, type='ImageClassifier'))  # mmpretrain's
    plain.init_weights()
    zero = MODELS.build(
        _classifier(backbone, dict(pos_head, loss_weight=0.), channels))
    missing, _ = zero.load_state_dict(plain.state_dict(), strict=False)
    assert all(k.startswith('pos_head.') for k in missing)
    half = copy.deepcopy(zero)
    half.pos_head.loss_weight = 0.5
    x, ds = torch.randn(4, 3, 32, 32), _samples(4)
    grads = {}
    for name, model in (('plain', plain), ('zero', zero), ('half', half)):
        model.train()
        losses = model.loss(x, ds)
        _total(losses).backward()
        grads[name] = _grads(model)
        if name == 'plain':
            want = losses['loss']
        else:
            assert losses['loss_cls'].item() == want.item()
            assert 'acc_pos' in losses
    assert _total(zero.loss(x, ds)).item() == pytest.approx(want.item())
    for k, g in grads['plain'].items():
        torch.testing.assert_close(grads['zero'][k], g, atol=0, rtol=0)
    moved = max((grads['half'][k] - g).abs().max().item()
                for k, g in grads['plain'].items())
    assert moved > 1e-6  # weight 0.5 does change the backbone's gradients


def test_classifier_predicts_like_an_image_classifier():
    model = MODELS.build(
        _classifier(
            _vit(),
            dict(type='mmssl.AbsPosLabelHead', in_channels=32, grid_size=4)))
    model.eval()
    out = model.predict(torch.randn(2, 3, 32, 32))
    assert len(out) == 2 and out[0].pred_score.shape == (3, )


def test_classifier_build_errors_name_the_key():
    apl = dict(type='mmssl.AbsPosLabelHead', in_channels=32, grid_size=4)
    with pytest.raises(ValueError, match=r'pos_head.grid_size=\(3, 3\)'):
        MODELS.build(_classifier(_vit(), dict(apl, grid_size=3)))
    with pytest.raises(ValueError, match='pos_head.in_channels=64'):
        MODELS.build(_classifier(_vit(), dict(apl, in_channels=64)))
    with pytest.raises(ValueError, match='pos_input'):
        MODELS.build(dict(_classifier(_vit(), apl), pos_input=2))
    with pytest.raises(ValueError, match='img_size'):
        MODELS.build(_vit(img_size=36))
    with pytest.raises(ValueError, match='out_indices'):
        MODELS.build(_swin(out_indices=(3, )))
    with pytest.raises(ValueError, match='img_size'):
        MODELS.build(_swin(img_size=33))
    # Swin stage 1 is an 8x8 grid; the head says 4x4
    rpl = dict(type='mmssl.RelPosLabelHead', in_channels=32, grid_size=4)
    with pytest.raises(ValueError, match=r'set model.pos_head.grid_size=\(8'):
        MODELS.build(_classifier(_swin(out_indices=(1, )), rpl, 32))


# --- (b) MAE + positional label --------------------------------------------


def _mae_pos(pos_head, **backbone):
    cfg = tiny_mae_cfg()
    cfg['type'] = 'mmssl.MAEPosLabel'
    cfg['backbone'].update(backbone)
    cfg['pos_head'] = pos_head
    return cfg


APL_MAE = dict(
    type='mmssl.AbsPosLabelHead',
    in_channels=32,
    grid_size=4,
    mlp_dims=(16, 8))


def test_mae_poslabel_head_sees_visible_tokens_with_their_cells():
    torch.manual_seed(0)
    model = MODELS.build(_mae_pos(APL_MAE))
    model.init_weights()
    seen = {}
    orig = model.pos_head.loss

    def spy(tokens, ids=None):
        seen.update(tokens=tokens, ids=ids)
        return orig(tokens, ids)

    model.pos_head.loss = spy
    x = torch.randn(3, 3, 32, 32)
    torch.manual_seed(1)
    losses = model.loss(x, [DataSample() for _ in range(3)])
    assert set(losses) == {'loss_rec', 'loss_pos', 'acc_pos'}
    torch.manual_seed(1)
    latent, mask, ids_restore = model.backbone(x)
    assert seen['tokens'].shape == (3, 4, 32)  # V = 4 of 16, no CLS
    torch.testing.assert_close(seen['tokens'], latent[:, 1:])
    for b in range(3):
        assert sorted(seen['ids'][b].tolist()) == torch.nonzero(
            mask[b] == 0).flatten().tolist()


def test_mae_poslabel_label_is_the_patch_content_cell():
    """Without position embedding and with a patch-wise encoder stand-in,
    the token of cell k carries k: its label must be k."""
    model = MODELS.build(_mae_pos(APL_MAE))
    img = torch.zeros(2, 3, 32, 32)
    for k in range(16):  # patch k filled with the value k
        img[:, :, (k // 4) * 8:(k // 4 + 1) * 8,
            (k % 4) * 8:(k % 4 + 1) * 8] = k
    from mmssl.models.utils import kept_ids, patchify, random_masking
    patches = patchify(img, 8)  # (B, 16, 192)
    torch.manual_seed(3)
    visible, mask, ids_restore, _ = random_masking(patches, 0.75)
    ids = kept_ids(ids_restore, visible.shape[1])
    assert torch.equal(ids, visible[..., 0].long())
    assert model.num_visible == 4


@pytest.mark.parametrize('pos_head', [
    APL_MAE,
    dict(
        type='mmssl.RelPosLabelHead',
        in_channels=32,
        grid_size=4,
        mlp_dims=(16, 16),
        max_pairs=10)
])
def test_mae_poslabel_weight_zero_equals_mae(pos_head):
    torch.manual_seed(0)
    mae = MODELS.build(tiny_mae_cfg())
    mae.init_weights()
    zero = MODELS.build(_mae_pos(dict(pos_head, loss_weight=0.)))
    zero.load_state_dict(mae.state_dict(), strict=False)
    x = torch.randn(2, 3, 32, 32)
    ds = [DataSample() for _ in range(2)]
    torch.manual_seed(5)
    want = mae.loss(x, ds)
    _total(want).backward()
    torch.manual_seed(5)
    got = zero.loss(x, ds)
    _total(got).backward()
    assert got['loss_rec'].item() == want['loss'].item()
    assert got['loss_pos'].item() == 0
    for k, g in _grads(mae).items():
        torch.testing.assert_close(_grads(zero)[k], g, atol=0, rtol=0)


def test_mae_poslabel_build_errors_name_the_key():
    with pytest.raises(ValueError, match=r'pos_head.grid_size=\(4, 4\)'):
        MODELS.build(_mae_pos(dict(APL_MAE, grid_size=8)))
    with pytest.raises(ValueError, match='pos_head.in_channels=32'):
        MODELS.build(_mae_pos(dict(APL_MAE, in_channels=64)))
    # 4 visible tokens have 16 ordered pairs
    with pytest.raises(ValueError, match='max_pairs=17'):
        MODELS.build(
            _mae_pos(
                dict(
                    type='mmssl.RelPosLabelHead',
                    in_channels=32,
                    grid_size=4,
                    max_pairs=17)))
    # all 16 are allowed
    rpl = MODELS.build(
        _mae_pos(
            dict(
                type='mmssl.RelPosLabelHead',
                in_channels=32,
                grid_size=4,
                max_pairs=16)))
    assert rpl.num_visible == 4 and rpl.pos_head.max_pairs == 16
    with pytest.raises(ValueError, match='img_size'):
        MODELS.build(_mae_pos(APL_MAE, img_size=36))


def test_mae_poslabel_backbone_converts_without_the_head():
    """The positional head is training-only: the converter drops it."""
    from mmssl.converters.convert import convert_state_dict
    model = MODELS.build(_mae_pos(APL_MAE))
    state, info = convert_state_dict({'state_dict': model.state_dict()},
                                     'mmpretrain')
    assert info['arch'] == 'vit' and info['dropped']['pos_head'] == 6
    assert not any('pos_head' in k for k in state)


# --- defaults and grids the sweep found untested ----------------------------


def test_backbones_check_the_hosts_default_sizes():
    """Without img_size / patch_size the grid check uses the values the host
    builds with (ViT 224 / 16, Swin 224 / 4), not others."""
    vit = _vit()
    for key in ('img_size', 'patch_size'):
        vit.pop(key)
    with pytest.raises(
            ValueError, match='img_size=224 is not .*patch_size=64'):
        MODELS.build(dict(vit, patch_size=64))  # 224 / 64 is no grid
    built = MODELS.build(dict(vit, img_size=48))
    assert built.token_grid() == (3, 3)
    # the reference's ViT-B + APL keeps its learned position embedding
    assert 'pos_embed' in dict(built.named_parameters())
    swin = _swin()
    for key in ('img_size', 'patch_size'):
        swin.pop(key)
    with pytest.raises(
            ValueError, match='img_size=224 is not .*patch_size=64'):
        MODELS.build(dict(swin, patch_size=64))
    assert MODELS.build(dict(swin, img_size=28)).patch_resolution == (7, 7)


def test_swin_defaults_keep_the_bias_and_return_the_last_stage():
    cfg = _swin(
        arch=dict(embed_dims=8, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1]))
    cfg.pop('out_indices')
    cfg.pop('window_size')
    cfg.pop('img_size')
    swin = MODELS.build(cfg)  # 224 / 2: a 112 x 112 grid, window 7
    assert swin.out_indices == (3, ) and swin.token_grid() == (14, 14)
    attn = next(m for m in swin.modules() if isinstance(m, WindowMSA))
    assert 'relative_position_bias_table' in dict(attn.named_parameters())


def test_swin_out_indices_are_checked_for_named_and_positional_archs():
    from mmssl.models.backbones.poslabel_backbones import PosLabelSwin
    with pytest.raises(ValueError, match='stage 4, but this Swin has 4'):
        MODELS.build(
            dict(type='mmssl.PosLabelSwin', arch='tiny', out_indices=(4, )))
    arch = _swin()['arch']
    with pytest.raises(ValueError, match='stage 3, but this Swin has 3'):
        PosLabelSwin(arch, img_size=32, patch_size=2, out_indices=(3, ))
    swin = PosLabelSwin(
        arch, img_size=32, patch_size=2, window_size=4,
        out_indices=(-3, 1))  # -n is the first stage
    assert swin.out_indices == (0, 1)


@pytest.mark.parametrize(
    'img_size,after,grids',
    [
        (32, False, [(16, 16), (8, 8), (4, 4)]),
        (32, True, [(8, 8), (4, 4), (4, 4)]),  # the last stage has no merging
        (28, False, [(14, 14), (7, 7), (4, 4)]),  # odd grids are padded
        (28, True, [(7, 7), (4, 4), (4, 4)]),
    ])
def test_swin_token_grid_follows_merging_and_padding(img_size, after, grids):
    swin = MODELS.build(
        _swin(
            img_size=img_size,
            out_indices=(0, 1, 2),
            out_after_downsample=after))
    outs = swin(torch.randn(1, 3, img_size, img_size))
    assert [tuple(o.shape[-2:]) for o in outs] == grids
    assert [swin.token_grid(i) for i in range(3)] == grids
    assert swin.token_grid() == grids[-1]  # the default is the last output


def test_classifier_pos_input_defaults_to_the_last_output():
    rpl = dict(
        type='mmssl.RelPosLabelHead',
        in_channels=64,
        grid_size=4,
        mlp_dims=(8, 8))
    model = MODELS.build(_classifier(_swin(out_indices=(1, 2)), rpl, 64))
    assert model.pos_input == -1
    x, ds = torch.randn(2, 3, 32, 32), _samples(2)
    assert model.loss(x, ds)['loss_pos'] > 0  # the 4x4 last stage
    for bad in (True, 2, -3):  # a bool is no index; n = 2 outputs
        with pytest.raises(ValueError, match=f'pos_input={bad}'):
            MODELS.build(
                dict(
                    _classifier(_swin(out_indices=(1, 2)), rpl, 64),
                    pos_input=bad))
    apl = dict(type='mmssl.AbsPosLabelHead', in_channels=32, grid_size=4)
    with pytest.raises(ValueError, match='pos_input=1 '):
        MODELS.build(dict(_classifier(_vit(), apl), pos_input=1))
