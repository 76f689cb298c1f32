# Copyright (c) mmssl contributors. All rights reserved.
"""The architecture a conversion reads off a backbone's keys and shapes:
the standard ViT widths and ResNet depths and the timm models they map to
(full-size state dicts stood in for by empty tensors of the right
shapes)."""
import pytest
import torch

from mmssl.converters import detect_arch
from mmssl.converters.arch import arch_info
from mmssl.converters.vit import _timm_vit_model


def _vit(width, patch=16, img=224, layers=2):
    side = img // patch
    sd = {
        'cls_token': torch.empty(1, 1, width),
        'pos_embed': torch.empty(1, 1 + side * side, width),
        'patch_embed.projection.weight': torch.empty(width, 3, patch, patch),
    }
    for i in range(layers):
        sd[f'layers.{i}.attn.qkv.weight'] = torch.empty(3 * width, 0)
        sd[f'layers.{i}.ffn.layers.0.0.weight'] = torch.empty(4 * width, 0)
    sd['ln1.weight'] = torch.empty(width)
    return sd


# the widths and heads of ViT-Ti/S/B/L/H (DeiT, ViT papers) and timm's names
@pytest.mark.parametrize('width,heads,patch,timm_name', [
    (192, 3, 16, 'vit_tiny_patch16_224'),
    (384, 6, 16, 'vit_small_patch16_224'),
    (768, 12, 16, 'vit_base_patch16_224'),
    (1024, 16, 16, 'vit_large_patch16_224'),
    (1280, 16, 14, 'vit_huge_patch14_224'),
])
def test_standard_vit_sizes(width, heads, patch, timm_name):
    info = arch_info(_vit(width, patch), 'vit')
    assert (info['embed_dims'], info['num_heads']) == (width, heads)
    assert info['in_channels'] == 3 and info['final_norm'] is True
    assert (info['patch_size'], info['img_size']) == (patch, 224)
    assert info['feedforward_channels'] == 4 * width
    name, kwargs = _timm_vit_model(info)
    assert name == timm_name and kwargs['num_heads'] == heads


def test_other_vit_width_has_no_guessed_heads():
    info = arch_info(_vit(512), 'vit')
    assert info['num_heads'] is None
    name, kwargs = _timm_vit_model(info)
    assert 'num_heads' not in kwargs and kwargs['embed_dim'] == 512


def _resnet(block, stages):
    convs = 3 if block == 'bottleneck' else 2
    sd = {'conv1.weight': torch.empty(64, 3, 7, 7)}
    for s, num in enumerate(stages, 1):
        for j in range(num):
            for c in range(1, convs + 1):
                sd[f'layer{s}.{j}.conv{c}.weight'] = torch.empty(64, 0)
    return sd


@pytest.mark.parametrize('block,stages,depth', [
    ('basic', (2, 2, 2, 2), 18),
    ('basic', (3, 4, 6, 3), 34),
    ('bottleneck', (3, 4, 6, 3), 50),
    ('bottleneck', (3, 4, 23, 3), 101),
    ('bottleneck', (3, 8, 36, 3), 152),
    ('bottleneck', (2, 2, 2, 2), None),
    ('basic', (3, 4, 23, 3), None),
])
def test_resnet_depths(block, stages, depth):
    info = arch_info(_resnet(block, stages), 'resnet')
    assert info['block'] == block and info['stage_blocks'] == stages
    assert info['depth'] == depth


@pytest.mark.parametrize('keys,arch', [
    (['patch_embed.projection.weight', 'layers.0.attn.qkv.weight'], 'vit'),
    (['patch_embed.projection.weight'], None),
    (['layers.0.attn.qkv.weight'], None),
    (['layer1.0.conv1.weight', 'conv1.weight'], 'resnet'),
    (['layer1.0.conv1.weight', 'stem.0.conv.weight'], 'resnet'),
    (['layer1.0.conv1.weight'], None),
    (['conv1.weight'], None),
    (['stem.0.conv.weight'], None),
])
def test_detect_arch_needs_both_marks(keys, arch):
    assert detect_arch({k: torch.zeros(1) for k in keys}) == arch


@pytest.mark.parametrize('info,name,kwargs', [
    (dict(depth=50, block='bottleneck',
          stage_blocks=(3, 4, 6, 3)), 'resnet50', {}),
    (dict(depth=18, block='basic', stage_blocks=(2, 2, 2, 2)), 'resnet18', {}),
    (dict(depth=None, block='bottleneck',
          stage_blocks=(2, 2, 2, 2)), 'resnet50', dict(layers=[2, 2, 2, 2])),
    (dict(depth=None, block='basic',
          stage_blocks=(1, 1, 1, 1)), 'resnet18', dict(layers=[1, 1, 1, 1])),
    (dict(
        depth=18, block='basic', stage_blocks=(2, 2, 2, 2),
        base_channels=32), 'resnet18', dict(channels=[32, 64, 128, 256])),
    (dict(
        depth=50,
        block='bottleneck',
        stage_blocks=(3, 4, 6, 3),
        deep_stem=True,
        stem_channels=64), 'resnet50', dict(stem_type='deep', stem_width=32)),
])
def test_timm_resnet_model(info, name, kwargs):
    """timm's model of a ResNet: its depth's name, else resnet50 / resnet18
    by block with the stage depths given; other widths and the deep stem
    as keyword arguments."""
    from mmssl.converters.resnet import _timm_resnet_model
    info = dict(dict(base_channels=64, deep_stem=False), **info)
    assert _timm_resnet_model(info) == (name, kwargs)


def test_timm_vit_model_fallbacks(monkeypatch):
    """A size timm has no model for is built from vit_base_patch16_224
    with every size in the keyword arguments; without feed-forward weights
    the MLP ratio is 4; without timm every name is taken as known."""
    sd = _vit(192, patch=8, img=64)
    info = arch_info(sd, 'vit')
    name, kwargs = _timm_vit_model(info)
    assert name == 'vit_base_patch16_224'
    assert kwargs == dict(
        embed_dim=192,
        depth=2,
        patch_size=8,
        mlp_ratio=4.0,
        num_heads=3,
        img_size=64)
    del sd['layers.0.ffn.layers.0.0.weight']
    sd['layers.0.ffn.layers.0.0.weight'] = torch.empty(2 * 192, 0)
    assert _timm_vit_model(arch_info(sd, 'vit'))[1]['mlp_ratio'] == 2.0
    for i in range(2):
        del sd[f'layers.{i}.ffn.layers.0.0.weight']
    info = arch_info(sd, 'vit')
    assert info['feedforward_channels'] is None
    assert _timm_vit_model(info)[1]['mlp_ratio'] == 4.0
    import sys
    monkeypatch.setitem(sys.modules, 'timm', None)  # import timm fails
    assert _timm_vit_model(arch_info(_vit(192, 8, 64), 'vit'))[0] == \
        'vit_tiny_patch8_64'


def test_final_norm_and_missing_stages():
    """``final_norm`` is read for pre-LN ViTs only; a ResNet without its
    last stage has three stage depths."""
    sd = _vit(192)
    del sd['ln1.weight']
    assert arch_info(sd, 'vit')['final_norm'] is False
    assert 'final_norm' not in arch_info(sd, 'd2v2-vit')
    resnet = {
        k: v
        for k, v in _resnet('basic', (2, 2, 2, 2)).items()
        if not k.startswith('layer4.')
    }
    info = arch_info(resnet, 'resnet')
    assert info['stage_blocks'] == (2, 2, 2) and info['depth'] is None
