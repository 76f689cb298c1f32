# Copyright (c) mmssl contributors. All rights reserved.
"""mmssl.converters (through :func:`mmssl.apis.convert_checkpoint`): every
source x target, reloaded in its library.

Each export is loaded through the target library's own path
(``init_cfg=dict(type='Pretrained', prefix='backbone.', checkpoint=...)``
and ``init_weights()`` for OpenMMLab, ``timm.create_model`` +
``load_state_dict`` for timm) and its features are compared with mmssl's
backbone on the same input.
"""
import copy

import pytest
import torch
from mmengine.registry import init_default_scope

from mmssl.apis import convert_checkpoint
from mmssl.converters import (ARCHS, CONVERTERS, TARGETS, ConversionError,
                              check_backbone_state, convert_state_dict,
                              describe_keys, detect_arch)
from mmssl.registry import MODELS
from mmssl.testing import tiny_data2vec2_cfg, tiny_mae_cfg, tiny_simclr_cfg
from mmssl.utils import safe_torch_load

IMG = 32
TOL = dict(rtol=1e-4, atol=1e-5)
# tiny SimCLR with timm's fixed 64-channel stem, so one source serves all
RESNET_STEM = 64


def _randomize(model, seed=0):
    """Random weights of a moderate scale (and valid BN statistics)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, value in model.state_dict().items():
            if not value.is_floating_point():
                continue
            noise = torch.randn(value.shape, generator=gen)
            if name.endswith('running_var'):
                value.copy_(noise.abs() + 0.5)
            elif value.dim() == 1 and ('ln' in name or 'bn' in name
                                       or 'norm' in name):
                value.copy_(1 +
                            0.1 * noise if name.endswith('weight') else 0.1 *
                            noise)
            else:
                value.copy_(0.2 * noise)
    return model.eval()


def _build(cfg):
    init_default_scope('mmpretrain')
    return MODELS.build(copy.deepcopy(cfg))


def _runner_checkpoint(path, model, extra=None):
    """A checkpoint as the runner writes it."""
    state_dict = model.state_dict()
    state_dict.update(extra or {})
    torch.save(
        dict(
            meta=dict(epoch=3, iter=30, mmengine_version='0.10.7'),
            state_dict=state_dict,
            message_hub=dict(log_scalars={}),
            optimizer=dict(state={}, param_groups=[dict(lr=0.1)])), path)
    return str(path)


@pytest.fixture(scope='module')
def sources(tmp_path_factory):
    """Tiny MAE, data2vec 2.0 and SimCLR (+ a DenseCL-like) checkpoints."""
    root = tmp_path_factory.mktemp('convert_sources')
    out = {}
    mae = _randomize(_build(tiny_mae_cfg()), 0)
    out['mae'] = (_runner_checkpoint(root / 'mae.pth', mae), mae)
    d2v2 = _randomize(_build(tiny_data2vec2_cfg()), 1)
    out['d2v2'] = (_runner_checkpoint(root / 'd2v2.pth', d2v2), d2v2)
    cfg = tiny_simclr_cfg()
    cfg['backbone']['stem_channels'] = RESNET_STEM
    simclr = _randomize(_build(cfg), 2)
    out['simclr'] = (_runner_checkpoint(root / 'simclr.pth', simclr), simclr)
    # DenseCL-like: the same backbone keys plus a momentum copy and queues
    momentum = {
        'momentum_encoder.0.' + k[len('backbone.'):]: v + 1
        for k, v in simclr.state_dict().items() if k.startswith('backbone.')
    }
    momentum['queue'] = torch.randn(16, 8)
    momentum['queue2'] = torch.randn(16, 8)
    out['densecl'] = (_runner_checkpoint(root / 'densecl.pth', simclr,
                                         momentum), simclr)
    return out


@pytest.fixture(scope='module')
def images():
    return torch.randn(
        2, 3, IMG, IMG, generator=torch.Generator().manual_seed(5))


def _export(sources, tmp_path, name, target):
    src, model = sources[name]
    dst = str(tmp_path / f'{name}_{target}.pth')
    info = convert_checkpoint(src, dst, target=target)
    return dst, info, model


def _pretrained(dst):
    return dict(type='Pretrained', prefix='backbone.', checkpoint=dst)


@torch.no_grad()
def _vit_tokens(model, images):
    return model.backbone(images, mask=None)[-1]


# --------------------------------------------------------------------------
# layout, meta and dropping
# --------------------------------------------------------------------------
def test_meta_and_dropped_groups(sources, tmp_path):
    dst, info, model = _export(sources, tmp_path, 'd2v2', 'mmpretrain')
    out = safe_torch_load(dst)
    assert set(out) == {'meta', 'state_dict'}
    meta = out['meta']
    assert meta['arch'] == 'd2v2-vit' and meta['target'] == 'mmpretrain'
    assert meta['source_epoch'] == 3 and meta['source_iter'] == 30
    assert meta['source'].endswith('d2v2.pth')
    assert meta['dropped'] == {'neck': 6, 'teacher': 54}
    assert set(meta['dropped_entries']) == {'optimizer', 'message_hub'}
    assert any('mmssl.D2V2ViT' in n for n in meta['notes'])
    assert 'mmssl.D2V2ViT' in meta['load'] and "prefix='backbone.'" in \
        meta['load']
    expected = {
        k: v
        for k, v in model.state_dict().items() if k.startswith('backbone.')
    }
    assert set(out['state_dict']) == set(expected)
    assert meta['num_tensors'] == len(expected)
    for key, value in expected.items():  # the student, not the teacher
        assert torch.equal(out['state_dict'][key], value), key

    _, info, model = _export(sources, tmp_path, 'densecl', 'mmdet')
    assert info['arch'] == 'resnet'
    num = sum(k.startswith('backbone.') for k in model.state_dict())
    assert info['num_tensors'] == num
    assert info['dropped'] == {
        'neck': 12,
        'momentum_encoder': num,
        'queue': 1,
        'queue2': 1
    }
    assert info['arch_info']['depth'] == 18


def test_table_covers_every_pair():
    for arch in ARCHS:
        for target in TARGETS:
            assert callable(CONVERTERS[(arch, target)]), (arch, target)
    # weights of no known architecture go only where a prefix loads them
    assert {t
            for a, t in CONVERTERS
            if a == 'unknown'} == {'mmpretrain', 'mmdet'}


def test_detect_arch_and_describe(sources):
    for name, arch in [('mae', 'vit'), ('d2v2', 'd2v2-vit'),
                       ('simclr', 'resnet')]:
        sd = {
            k[len('backbone.'):]: v
            for k, v in sources[name][1].state_dict().items()
            if k.startswith('backbone.')
        }
        assert detect_arch(sd) == arch
    assert detect_arch({'fc.weight': torch.zeros(1)}) is None
    text = describe_keys(['cls_token', 'layers.0.a', 'layers.11.b', 'ln1.w'])
    assert text == 'cls_token, layers.0-11.* (2), ln1.* (1)'


# --------------------------------------------------------------------------
# MAE (pre-LN ViT)
# --------------------------------------------------------------------------
VIT_ARCH = dict(
    embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)


def test_mae_to_mmpretrain_and_mmdet(sources, tmp_path, images):
    from mmdet.registry import MODELS as DET_MODELS
    _, mae = sources['mae']
    ref = _vit_tokens(mae, images)
    for target in ('mmpretrain', 'mmdet'):
        dst, info, _ = _export(sources, tmp_path, 'mae', target)
        cfg = dict(
            type='mmpretrain.VisionTransformer',
            arch=VIT_ARCH,
            img_size=IMG,
            patch_size=8,
            out_type='raw',
            init_cfg=_pretrained(dst))
        if target == 'mmdet':
            init_default_scope('mmdet')
            vit = DET_MODELS.build(cfg)
        else:
            vit = _build(cfg)
        check_backbone_state(safe_torch_load(dst), vit)  # no key off
        vit.init_weights()
        vit.eval()
        with torch.no_grad():
            torch.testing.assert_close(vit(images)[-1], ref, **TOL)


def test_mae_to_mmseg(sources, tmp_path, images):
    from mmseg.models.backbones import VisionTransformer
    _, mae = sources['mae']
    ref = _vit_tokens(mae, images)[:, 1:]
    dst, info, _ = _export(sources, tmp_path, 'mae', 'mmseg')
    sd = safe_torch_load(dst)['state_dict']
    assert 'layers.0.attn.attn.in_proj_weight' in sd
    assert not any(k.startswith('backbone.') for k in sd)
    vit = VisionTransformer(
        img_size=IMG,
        patch_size=8,
        embed_dims=32,
        num_layers=2,
        num_heads=2,
        mlp_ratio=2,
        patch_bias=True,
        final_norm=True,
        norm_cfg=dict(type='LN', eps=1e-6),
        out_indices=-1,
        init_cfg=_pretrained(dst))  # prefix ignored by mmseg's ViT
    check_backbone_state(sd, vit)
    vit.init_weights()
    vit.eval()
    with torch.no_grad():
        feat = vit(images)[-1]  # (B, C, h, w) of the patch tokens
    torch.testing.assert_close(feat.flatten(2).transpose(1, 2), ref, **TOL)


def test_mae_to_timm(sources, tmp_path, images):
    import timm
    _, mae = sources['mae']
    ref = _vit_tokens(mae, images)
    dst, info, _ = _export(sources, tmp_path, 'mae', 'timm')
    out = safe_torch_load(dst)
    sd = out['state_dict']
    assert 'blocks.1.mlp.fc2.weight' in sd and 'norm.weight' in sd
    assert not any(k.startswith('backbone.') for k in sd)
    kwargs = dict(out['meta']['timm_kwargs'], num_heads=2)
    model = timm.create_model(
        out['meta']['timm_model'], pretrained=False, num_classes=0, **kwargs)
    model.load_state_dict(sd, strict=True)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model.forward_features(images), ref, **TOL)


# --------------------------------------------------------------------------
# data2vec 2.0 (post-LN ViT)
# --------------------------------------------------------------------------
D2V2_BACKBONE = dict(
    type='mmssl.D2V2ViT',
    arch=dict(
        embed_dims=16, num_layers=4, num_heads=2, feedforward_channels=32),
    img_size=IMG,
    patch_size=8)


def test_d2v2_to_mmpretrain_and_mmdet(sources, tmp_path, images):
    from mmdet.registry import MODELS as DET_MODELS
    _, d2v2 = sources['d2v2']
    ref = _vit_tokens(d2v2, images)
    for target in ('mmpretrain', 'mmdet'):
        dst, info, _ = _export(sources, tmp_path, 'd2v2', target)
        cfg = dict(D2V2_BACKBONE, init_cfg=_pretrained(dst))
        if target == 'mmdet':
            init_default_scope('mmdet')
            vit = DET_MODELS.build(cfg)
        else:
            vit = _build(cfg)
        check_backbone_state(safe_torch_load(dst), vit)
        vit.init_weights()
        vit.eval()
        with torch.no_grad():
            torch.testing.assert_close(vit(images)[-1], ref, **TOL)


def test_d2v2_in_mmseg_encoder_decoder(sources, tmp_path, images):
    from mmseg.registry import MODELS as SEG_MODELS
    _, d2v2 = sources['d2v2']
    ref = _vit_tokens(d2v2, images)[:, 1:]
    dst, info, _ = _export(sources, tmp_path, 'd2v2', 'mmseg')
    assert any("type='mmssl.D2V2ViT'" in n for n in info['notes'])
    init_default_scope('mmseg')
    seg = SEG_MODELS.build(
        dict(
            type='EncoderDecoder',
            data_preprocessor=dict(
                type='SegDataPreProcessor', mean=[0.] * 3, std=[1.] * 3),
            backbone=dict(
                D2V2_BACKBONE,
                out_indices=(1, 3),
                out_type='featmap',
                init_cfg=_pretrained(dst)),
            decode_head=dict(
                type='FCNHead',
                in_channels=16,
                in_index=-1,
                channels=8,
                num_convs=1,
                num_classes=3,
                norm_cfg=dict(type='BN'),
                loss_decode=dict(type='CrossEntropyLoss')),
            train_cfg=dict(),
            test_cfg=dict(mode='whole')))
    seg.init_weights()
    seg.eval()
    with torch.no_grad():
        feats = seg.extract_feat(images)
        logits = seg(images, mode='tensor')
    assert logits.shape == (2, 3, IMG // 8, IMG // 8)
    torch.testing.assert_close(feats[-1].flatten(2).transpose(1, 2), ref,
                               **TOL)


def test_d2v2_to_timm_is_refused(sources, tmp_path):
    with pytest.raises(ConversionError, match='post-LN'):
        _export(sources, tmp_path, 'd2v2', 'timm')


# --------------------------------------------------------------------------
# SimCLR / DenseCL (ResNet)
# --------------------------------------------------------------------------
RESNET = dict(depth=18, stem_channels=RESNET_STEM, base_channels=8)


@torch.no_grad()
def _c5(model, images):
    return model.backbone(images)[-1]


@pytest.mark.parametrize('source', ['simclr', 'densecl'])
def test_resnet_to_openmmlab(sources, tmp_path, images, source):
    from mmdet.registry import MODELS as DET_MODELS
    from mmseg.registry import MODELS as SEG_MODELS
    _, simclr = sources[source]
    ref = _c5(simclr, images)
    builders = dict(
        mmpretrain=('mmpretrain', MODELS, dict(type='mmpretrain.ResNet')),
        mmdet=('mmdet', DET_MODELS, dict(type='ResNet')),
        mmseg=('mmseg', SEG_MODELS, dict(type='ResNet', deep_stem=False)))
    for target, (scope, registry, base) in builders.items():
        dst, info, _ = _export(sources, tmp_path, source, target)
        assert info['prefixed']
        init_default_scope(scope)
        net = registry.build(
            dict(base, **RESNET, out_indices=(3, ), init_cfg=_pretrained(dst)))
        check_backbone_state(safe_torch_load(dst), net)
        net.init_weights()
        net.eval()
        with torch.no_grad():
            torch.testing.assert_close(net(images)[-1], ref, **TOL)


def test_resnet_to_timm(sources, tmp_path, images):
    import timm
    _, simclr = sources['simclr']
    ref = _c5(simclr, images)
    dst, info, _ = _export(sources, tmp_path, 'simclr', 'timm')
    out = safe_torch_load(dst)
    assert out['meta']['timm_model'] == 'resnet18'
    assert out['meta']['timm_kwargs'] == dict(channels=[8, 16, 32, 64])
    model = timm.create_model(
        'resnet18',
        pretrained=False,
        num_classes=0,
        **out['meta']['timm_kwargs'])
    model.load_state_dict(out['state_dict'], strict=True)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model.forward_features(images), ref, **TOL)


def test_resnet_deep_stem_renames():
    from mmdet.models.backbones import ResNet as DetResNet
    net = _build(
        dict(
            type='mmpretrain.ResNetV1c',
            depth=18,
            base_channels=8,
            stem_channels=16))
    ckpt = {
        'state_dict': {
            'backbone.' + k: v
            for k, v in net.state_dict().items()
        }
    }
    sd, info = convert_state_dict(ckpt, 'mmdet')
    assert info['arch_info']['deep_stem']
    det = DetResNet(
        depth=18, base_channels=8, stem_channels=16, deep_stem=True)
    check_backbone_state(sd, det)
    sd, info = convert_state_dict(ckpt, 'timm')
    assert info['timm_model'] == 'resnet18'
    assert info['timm_kwargs'] == dict(
        channels=[8, 16, 32, 64], stem_type='deep', stem_width=8)
    assert 'conv1.6.weight' in sd and 'bn1.weight' in sd
    import timm
    model = timm.create_model(
        'resnet18', pretrained=False, num_classes=0, **info['timm_kwargs'])
    model.load_state_dict(sd, strict=True)
    images = torch.randn(2, 3, IMG, IMG)
    net.eval()
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(
            model.forward_features(images),
            net(images)[-1], **TOL)


# --------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------
def test_no_backbone_keys():
    ckpt = dict(state_dict={
        'encoder.w': torch.zeros(2),
        'head.b': torch.zeros(1)
    })
    with pytest.raises(ConversionError) as exc:
        convert_state_dict(ckpt)
    msg = str(exc.value)
    assert "no key starts with 'backbone.'" in msg
    assert 'found:    encoder.* (1), head.* (1)' in msg
    assert 'cls_token, pos_embed' in msg and 'conv1.*' in msg
    assert "'encoder.'" in msg  # suggests --prefix


def test_unknown_architecture_needs_allow_unknown():
    ckpt = dict(state_dict={'backbone.blocks.0.w': torch.zeros(2)})
    with pytest.raises(ConversionError, match='no known architecture'):
        convert_state_dict(ckpt)
    sd, info = convert_state_dict(ckpt, allow_unknown=True)
    assert list(sd) == ['backbone.blocks.0.w'] and info['arch'] == 'unknown'
    # timm needs a known architecture to name its model
    with pytest.raises(ConversionError, match='no known architecture'):
        convert_state_dict(ckpt, 'timm', allow_unknown=True)
    # a named architecture is required
    with pytest.raises(
            ConversionError, match='expected vit: pre-LN ViT') as err:
        convert_state_dict(ckpt, arch='vit', allow_unknown=True)
    assert '--arch' not in str(err.value)  # no other known arch to pass


def test_other_architecture(sources):
    src, _ = sources['simclr']
    ckpt = safe_torch_load(src)
    with pytest.raises(ConversionError) as exc:
        convert_state_dict(ckpt, 'mmpretrain', arch='vit')
    msg = str(exc.value)
    assert "found a 'resnet' backbone, expected 'vit'" in msg
    assert 'found:    conv1.* (1), bn1.* (5), layer1.0-1.*' in msg
    assert 'expected vit: pre-LN ViT' in msg
    assert '--arch resnet' in msg
    with pytest.raises(ConversionError, match="expected 'd2v2-vit'"):
        convert_state_dict(safe_torch_load(sources['mae'][0]), arch='d2v2-vit')


def test_timm_resnet_stem_must_be_64():
    net = _build(tiny_simclr_cfg())  # 8-channel stem
    with pytest.raises(ConversionError, match='64-channel 7x7 stem'):
        convert_state_dict({'state_dict': net.state_dict()}, 'timm')


def test_wrong_embed_dims_is_reported(sources, tmp_path):
    dst, _, _ = _export(sources, tmp_path, 'mae', 'mmpretrain')
    vit = _build(
        dict(
            type='mmpretrain.VisionTransformer',
            arch=dict(
                embed_dims=48,
                num_layers=2,
                num_heads=2,
                feedforward_channels=64),
            img_size=IMG,
            patch_size=8))
    with pytest.raises(ConversionError) as exc:
        check_backbone_state(safe_torch_load(dst), vit)
    msg = str(exc.value)
    assert 'found in the checkpoint: vit (embed_dims=32' in msg
    assert 'expected by the model:   vit (embed_dims=48' in msg
    assert "'cls_token' checkpoint (1, 1, 32) vs model (1, 1, 48)" in msg
    # a ResNet export against a ViT
    dst, _, _ = _export(sources, tmp_path, 'simclr', 'mmpretrain')
    with pytest.raises(ConversionError) as exc:
        check_backbone_state(safe_torch_load(dst), vit)
    msg = str(exc.value)
    assert 'found in the checkpoint: resnet (depth=18' in msg
    assert 'expected by the model:   vit' in msg


def test_real_densecl_checkpoint(tmp_path, images):
    """mmssl's DenseCL: only the query backbone is kept."""
    densecl_testing = pytest.importorskip('mmssl.testing.densecl')
    from mmdet.registry import MODELS as DET_MODELS
    model = _randomize(_build(densecl_testing.tiny_densecl_cfg()), 3)
    src = _runner_checkpoint(tmp_path / 'densecl.pth', model)
    dst = str(tmp_path / 'densecl_det.pth')
    info = convert_checkpoint(src, dst, target='mmdet')
    expected = {
        k: v
        for k, v in model.state_dict().items() if k.startswith('backbone.')
    }
    sd = safe_torch_load(dst)['state_dict']
    assert set(sd) == set(expected)
    assert all(torch.equal(sd[k], v) for k, v in expected.items())
    assert info['dropped']['neck'] > 0
    assert sum(info['dropped'].values()) == \
        len(model.state_dict()) - len(expected)
    init_default_scope('mmdet')
    det = DET_MODELS.build(
        dict(
            type='ResNet',
            depth=18,
            stem_channels=8,
            base_channels=8,
            out_indices=(3, ),
            init_cfg=_pretrained(dst)))
    det.init_weights()
    det.eval()
    with torch.no_grad():
        torch.testing.assert_close(det(images)[-1], _c5(model, images), **TOL)
