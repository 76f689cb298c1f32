# Copyright (c) mmssl contributors. All rights reserved.
"""The backbone architectures a conversion recognises, by their key layout.

``vit`` -- pre-LN ViT in mmpretrain's layout (MAE's ``MAEViT``,
``mmpretrain.VisionTransformer``)::

    cls_token                      (1, 1, C)
    pos_embed                      (1, 1 + N, C)   CLS position first
    patch_embed.projection.{weight,bias}           (C, 3, p, p), (C, )
    layers.{i}.ln1.*               pre-attention LayerNorm
    layers.{i}.attn.qkv.*          (3C, C), (3C, )
    layers.{i}.attn.proj.*         (C, C), (C, )
    layers.{i}.ln2.*               pre-FFN LayerNorm
    layers.{i}.ffn.layers.0.0.*    (F, C), (F, )
    layers.{i}.ffn.layers.1.*      (C, F), (C, )
    ln1.*                          final LayerNorm (``final_norm=True``)
    [pre_norm.*, ln2.*, layers.{i}.attn.gamma1.weight,
     layers.{i}.ffn.gamma2.weight] optional (CLIP pre-norm, the fc norm of
                                   ``out_type='avg_featmap'``, layer scale)

``d2v2-vit`` -- the post-LN ViT of data2vec 2.0 (``mmssl.D2V2ViT``)::

    cls_token, patch_embed.projection.*, ln_pre.* (LayerNorm on the input),
    layers.{i}.attn.qkv.*, layers.{i}.attn.proj.*, layers.{i}.ln1.* (after
    the attention residual), layers.{i}.ffn.layers.{0.0,1}.*,
    layers.{i}.ln2.* (after the FFN residual), [ln_fc.*]; no pos_embed
    (a fixed sin-cos buffer) and no final norm.

``resnet`` -- ResNet with the key names shared by mmpretrain, mmdet, mmseg
and torchvision (SimCLR, DenseCL, MoCo, ...)::

    conv1.weight, bn1.*            7x7 stem (or stem.{0,1,2}.{conv,bn}.*, the
                                   deep stem of mmpretrain's ResNetV1c/d)
    layer{s}.{j}.conv{1,2[,3]}.weight, layer{s}.{j}.bn{1,2[,3]}.*
    layer{s}.0.downsample.{0,1}.*  1x1 conv + BN of the shortcut
"""
import re
from typing import Any, Dict, Optional

from .checkpoint import ConversionError, describe_keys

__all__ = [
    'ARCHS', 'EXPECTED_LAYOUT', 'VIT_SIZES', 'detect_arch', 'arch_info',
    'arch_error'
]

ARCHS = ('vit', 'd2v2-vit', 'resnet')

EXPECTED_LAYOUT = {
    'vit': ('pre-LN ViT in mmpretrain layout (MAE): cls_token, pos_embed, '
            'patch_embed.projection.*, layers.{i}.ln1/attn.qkv/attn.proj/ln2/'
            'ffn.layers.0.0/ffn.layers.1.*, ln1.*'),
    'd2v2-vit': ('post-LN ViT of data2vec 2.0 (mmssl.D2V2ViT): cls_token, '
                 'patch_embed.projection.*, ln_pre.*, layers.{i}.attn.qkv/'
                 'attn.proj/ln1/ffn.layers.0.0/ffn.layers.1/ln2.*'),
    'resnet': ('ResNet (mmpretrain/mmdet/mmseg names): conv1.* or stem.*, '
               'bn1.*, layer{1-4}.{j}.conv*/bn*/downsample.*'),
}

#: standard ViT widths -> (heads, timm size name)
VIT_SIZES = {
    192: (3, 'tiny'),
    384: (6, 'small'),
    768: (12, 'base'),
    1024: (16, 'large'),
    1280: (16, 'huge'),
}
_RESNET_DEPTHS = {
    ('basic', (2, 2, 2, 2)): 18,
    ('basic', (3, 4, 6, 3)): 34,
    ('bottleneck', (3, 4, 6, 3)): 50,
    ('bottleneck', (3, 4, 23, 3)): 101,
    ('bottleneck', (3, 8, 36, 3)): 152,
}


def detect_arch(state_dict: Dict[str, Any]) -> Optional[str]:
    """The architecture of a backbone state dict (keys without prefix).

    Returns:
        str | None: ``'vit'``, ``'d2v2-vit'``, ``'resnet'`` or None.
    """
    keys = set(state_dict)
    if 'layers.0.attn.qkv.weight' in keys and ('patch_embed.projection.weight'
                                               in keys):
        return 'd2v2-vit' if 'ln_pre.weight' in keys else 'vit'
    if 'layer1.0.conv1.weight' in keys and ('conv1.weight' in keys
                                            or 'stem.0.conv.weight' in keys):
        return 'resnet'
    return None


def _num_indexed(state_dict, pattern: str) -> int:
    found = {
        int(m.group(1))
        for m in (re.match(pattern, k) for k in state_dict) if m
    }
    return max(found) + 1 if found else 0


def arch_info(state_dict: Dict[str, Any], arch: str) -> dict:
    """Hyper-parameters read off a backbone state dict.

    Args:
        state_dict (dict): Backbone weights without prefix.
        arch (str): One of :data:`ARCHS`.

    Returns:
        dict: for ViTs ``embed_dims, num_layers, patch_size, in_channels,
        feedforward_channels, num_patches, img_size, final_norm, num_heads``
        (``num_heads`` is guessed from the width, None if non-standard);
        for ResNets ``depth, block, stage_blocks, stem_channels,
        base_channels, deep_stem, avg_down``.
    """
    if arch in ('vit', 'd2v2-vit'):
        proj = state_dict['patch_embed.projection.weight']
        embed = int(proj.shape[0])
        info = dict(
            embed_dims=embed,
            num_layers=_num_indexed(state_dict, r'^layers\.(\d+)\.'),
            patch_size=int(proj.shape[-1]),
            in_channels=int(proj.shape[1]),
            feedforward_channels=int(
                state_dict['layers.0.ffn.layers.0.0.weight'].shape[0])
            if 'layers.0.ffn.layers.0.0.weight' in state_dict else None,
            num_heads=VIT_SIZES.get(embed, (None, ))[0])
        pos = state_dict.get('pos_embed')
        if pos is not None:
            info['num_patches'] = int(pos.shape[1]) - 1
            side = int(round(info['num_patches']**0.5))
            if side * side == info['num_patches']:
                info['img_size'] = side * info['patch_size']
        if arch == 'vit':
            info['final_norm'] = 'ln1.weight' in state_dict
        return info
    if arch == 'resnet':
        block = 'bottleneck' if 'layer1.0.conv3.weight' in state_dict \
            else 'basic'
        stages = tuple(
            _num_indexed(state_dict, rf'^layer{s}\.(\d+)\.')
            for s in range(1, 5))
        stages = tuple(s for s in stages if s)
        deep = 'stem.0.conv.weight' in state_dict
        stem = state_dict['stem.2.conv.weight' if deep else 'conv1.weight']
        return dict(
            depth=_RESNET_DEPTHS.get((block, stages)),
            block=block,
            stage_blocks=stages,
            stem_channels=int(stem.shape[0]),
            base_channels=int(state_dict['layer1.0.conv1.weight'].shape[0]),
            deep_stem=deep,
            avg_down=any(
                re.match(r'^layer\d\.0\.downsample\.2\.', k)
                for k in state_dict))
    raise ConversionError(f'unknown architecture {arch!r}; choose from '
                          f'{ARCHS}')


def arch_error(state_dict: Dict[str, Any], wanted: Optional[str],
               found: Optional[str], where: str) -> ConversionError:
    """The error for weights of another (or no known) architecture.

    The message lists the keys found and the layout expected, and the
    ``--arch`` to pass when another known architecture was found.
    """
    expected = [wanted] if wanted else list(ARCHS)
    lines = [
        f'{where}: ' +
        (f'found a {found!r} backbone, expected {wanted!r}'
         if found else 'the backbone weights are no known architecture')
    ]
    lines.append(f'  found:    {describe_keys(state_dict)}')
    for name in expected:
        lines.append(f'  expected {name}: {EXPECTED_LAYOUT[name]}')
    if found and wanted:
        lines.append(f'  (pass --arch {found} or --arch auto)')
    return ConversionError('\n'.join(lines))
