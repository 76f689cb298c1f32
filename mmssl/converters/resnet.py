# Copyright (c) mmssl contributors. All rights reserved.
"""Converters of the ResNet (``resnet``: mmpretrain / mmdet / mmseg names).

mmpretrain, mmdet, mmseg and torchvision share the key names of the 7x7
stem and the stages; only mmpretrain's deep stem (``stem.{0,1,2}.{conv,
bn}``, a ``ConvModule`` each) is laid out differently: mmdet / mmseg keep it
as one ``Sequential`` (``stem.{0,1,3,4,6,7}``), timm as ``conv1.*``.
"""
from collections import OrderedDict
from typing import Any, Dict, Optional, Tuple

from .checkpoint import PRETRAINED, ConversionError, Converted, rename_prefixes
from .vit import timm_load_hint

__all__ = [
    'resnet_to_mmpretrain', 'resnet_to_mmdet', 'resnet_to_mmseg',
    'resnet_to_timm'
]

# mmpretrain deep stem (ConvModules) -> mmdet/mmseg (Sequential) and timm.
_DEEP_STEM_MMDET = {
    'stem.0.conv.': 'stem.0.',
    'stem.0.bn.': 'stem.1.',
    'stem.1.conv.': 'stem.3.',
    'stem.1.bn.': 'stem.4.',
    'stem.2.conv.': 'stem.6.',
    'stem.2.bn.': 'stem.7.',
}
_DEEP_STEM_TIMM = {
    'stem.0.conv.': 'conv1.0.',
    'stem.0.bn.': 'conv1.1.',
    'stem.1.conv.': 'conv1.3.',
    'stem.1.bn.': 'conv1.4.',
    'stem.2.conv.': 'conv1.6.',
    'stem.2.bn.': 'bn1.',
}


def resnet_to_mmpretrain(state_dict: Dict[str, Any], info: dict) -> Converted:
    """mmpretrain: the source layout under ``backbone.`` (``ResNet``, or
    ``ResNetV1c`` / ``ResNetV1d`` for a deep stem / average-pool
    shortcuts)."""
    kind = 'ResNetV1d' if info['avg_down'] else \
        'ResNetV1c' if info['deep_stem'] else 'ResNet'
    return Converted(
        OrderedDict(state_dict), True, [],
        f"backbone=dict(type='mmpretrain.{kind}', ..., {PRETRAINED})")


def _openmmlab_dense(state_dict: Dict[str, Any], info: dict,
                     target: str) -> Converted:
    out = rename_prefixes(state_dict, _DEEP_STEM_MMDET) \
        if info['deep_stem'] else OrderedDict(state_dict)
    extra = f', deep_stem={bool(info["deep_stem"])}' + (
        ', avg_down=True' if info['avg_down'] else '')
    return Converted(
        out, True, [], f"backbone=dict(type='ResNet'{extra}, ..., "
        f'{PRETRAINED}) ({target} ResNet)')


def resnet_to_mmdet(state_dict: Dict[str, Any], info: dict) -> Converted:
    """mmdet's ``ResNet``: mmpretrain's names; a deep stem is renamed to
    ``stem.{0,1,3,4,6,7}`` (mmdet's ``ResNetV1d`` layout)."""
    return _openmmlab_dense(state_dict, info, 'mmdet')


def resnet_to_mmseg(state_dict: Dict[str, Any], info: dict) -> Converted:
    """mmseg's ``ResNet``: as mmdet. A 7x7-stem checkpoint needs
    ``type='ResNet'`` (``deep_stem=False``), not the ``ResNetV1c`` of most
    mmseg configs; a deep-stem one loads into ``ResNetV1c``."""
    return _openmmlab_dense(state_dict, info, 'mmseg')


def resnet_to_timm(state_dict: Dict[str, Any], info: dict) -> Converted:
    """A plain timm ``ResNet`` state dict (``conv1, bn1, layer*``, no fc).

    Plain 7x7 stems and mmpretrain's deep stem (timm ``stem_type='deep'``)
    are supported; the average-pool shortcut of ResNetV1d is not.

    Raises:
        ConversionError: average-pool shortcuts, or a 7x7 stem of other
            than 64 channels.
    """
    if info['avg_down']:
        raise ConversionError(
            'a ResNet with average-pool shortcuts (ResNetV1d, '
            'downsample.{0,1,2}) has a different shortcut layout in timm; '
            'export it for mmpretrain/mmdet/mmseg instead')
    if not info['deep_stem'] and info['stem_channels'] != 64:
        raise ConversionError(
            f'timm ResNets have a 64-channel 7x7 stem, this one has '
            f'{info["stem_channels"]} channels (conv1.weight '
            f'{tuple(state_dict["conv1.weight"].shape)})')
    out = rename_prefixes(state_dict, _DEEP_STEM_TIMM) \
        if info['deep_stem'] else OrderedDict(state_dict)
    name, kwargs = _timm_resnet_model(info)
    return Converted(out, False, [], timm_load_hint(name, kwargs),
                     dict(timm_model=name, timm_kwargs=kwargs))


def _timm_resnet_model(info: dict) -> Tuple[Optional[str], dict]:
    depth = info['depth']
    name = f'resnet{depth}' if depth else None
    if not name:
        name = 'resnet50' if info['block'] == 'bottleneck' else 'resnet18'
    kwargs = {}
    if info['stage_blocks'] != {
            'resnet18': (2, 2, 2, 2),
            'resnet50': (3, 4, 6, 3)
    }.get(name, info['stage_blocks']):
        kwargs['layers'] = list(info['stage_blocks'])
    base = info['base_channels']
    if base != 64:
        kwargs['channels'] = [base * 2**i for i in range(4)]
    if info['deep_stem']:
        kwargs.update(stem_type='deep', stem_width=info['stem_channels'] // 2)
    return name, kwargs
