# Copyright (c) mmssl contributors. All rights reserved.
"""Backbones: encoders that algorithms and downstream tasks share.

mmssl's MAE encoder (``MAEViT``) sits with its algorithm in
:mod:`mmssl.models.selfsup`, as in mmpretrain; the detection backbone
``TorchvisionRegNet`` in :mod:`mmssl.models.unidet`.
"""
from .albert import AlbertEncoder
from .d2v2_encoder import D2V2EncoderBase
from .d2v2_vit import D2V2Block, D2V2ViT, sincos_pos_embed_2d
from .poslabel_backbones import PosLabelSwin, PosLabelViT

__all__ = [
    'D2V2ViT', 'D2V2Block', 'sincos_pos_embed_2d', 'PosLabelViT',
    'PosLabelSwin', 'AlbertEncoder', 'D2V2EncoderBase'
]

from .d2v2_text import D2V2TextEncoder  # noqa: E402

__all__ += ['D2V2TextEncoder']

from .d2v2_audio import D2V2AudioEncoder  # noqa: E402

__all__ += ['D2V2AudioEncoder']
