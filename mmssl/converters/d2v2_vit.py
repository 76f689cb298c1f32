# Copyright (c) mmssl contributors. All rights reserved.
"""Converters of data2vec 2.0's post-LN ViT (``d2v2-vit``).

The encoder puts each LayerNorm after its residual add, has a LayerNorm on
the input (``ln_pre``) and no final norm, so no pre-LN ViT class
(mmpretrain's, mmseg's, timm's) computes the same features: in every
OpenMMLab library it loads only into ``type='mmssl.D2V2ViT'``, and the
timm export is refused.
"""
from collections import OrderedDict
from typing import Any, Dict

from .checkpoint import PRETRAINED, ConversionError, Converted

__all__ = [
    'd2v2_vit_to_mmpretrain', 'd2v2_vit_to_mmdet', 'd2v2_vit_to_mmseg',
    'd2v2_vit_to_timm'
]

_LOAD = (f"backbone=dict(type='mmssl.D2V2ViT', ..., {PRETRAINED}) "
         '(custom_imports mmssl.models; post-LN, no other class)')


def d2v2_vit_to_mmpretrain(state_dict: Dict[str, Any],
                           info: dict) -> Converted:
    """mmpretrain: the source layout under ``backbone.``."""
    return Converted(
        OrderedDict(state_dict), True, [
            'data2vec 2.0 is a post-LN ViT: it loads only into '
            "type='mmssl.D2V2ViT'"
        ], _LOAD)


def _dense(state_dict: Dict[str, Any], target: str) -> Converted:
    return Converted(
        OrderedDict(state_dict), True, [
            'data2vec 2.0 is a post-LN ViT: it loads only into '
            f"type='mmssl.D2V2ViT' (out_type='featmap' in {target} "
            "configs), not into mmseg's / mmpretrain's pre-LN "
            'VisionTransformer'
        ], _LOAD)


def d2v2_vit_to_mmdet(state_dict: Dict[str, Any], info: dict) -> Converted:
    """mmdet: the mmpretrain file, for ``type='mmssl.D2V2ViT'``."""
    return _dense(state_dict, 'mmdet')


def d2v2_vit_to_mmseg(state_dict: Dict[str, Any], info: dict) -> Converted:
    """mmseg: the mmpretrain file (with prefix), for ``mmssl.D2V2ViT``
    (``out_type='featmap'``); mmseg's ``VisionTransformer`` is pre-LN."""
    return _dense(state_dict, 'mmseg')


def d2v2_vit_to_timm(state_dict: Dict[str, Any], info: dict) -> Converted:
    """Refused: timm has no post-LN ViT.

    Raises:
        ConversionError: always, naming the export that works instead.
    """
    raise ConversionError(
        'data2vec 2.0 (d2v2-vit) cannot be exported to timm: its '
        'blocks are post-LN (LayerNorm after each residual add, a '
        'LayerNorm on the input, no final norm) while timm\'s '
        'VisionTransformer is pre-LN, so no timm ViT computes the '
        'same features. Export with --to mmpretrain and load it '
        "with type='mmssl.D2V2ViT'")
