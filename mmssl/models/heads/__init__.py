# Copyright (c) mmssl contributors. All rights reserved.
"""Heads: targets and losses of the pretraining algorithms."""
from .albert_heads import AlbertMLMHead, SentenceOrderHead, TextClsHead
from .d2v2_head import D2V2Head, d2v2_targets, feature_std
from .poslabel_head import AbsPosLabelHead, RelPosLabelHead, pos_label_loss

__all__ = [
    'D2V2Head', 'd2v2_targets', 'feature_std', 'AbsPosLabelHead',
    'RelPosLabelHead', 'pos_label_loss', 'AlbertMLMHead', 'SentenceOrderHead',
    'TextClsHead'
]
