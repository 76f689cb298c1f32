# Copyright (c) mmssl contributors. All rights reserved.
"""Official facebookresearch/mae checkpoints -> mmpretrain's ``MAE`` keys.

The converter behind ``tools/model_converters/mae_official_to_mmssl.py``.

The official checkpoints hold ``{'model': state_dict, ...}`` with timm names
(``mae_pretrain_vit_*.pth``: encoder only; ``*_full.pth`` and the
visualisation checkpoints: encoder and decoder; ``mae_finetuned_vit_*.pth``:
encoder, ``fc_norm`` and ``head``). The result ``{'meta': ..., 'state_dict':
...}`` uses the key layout of ``mmpretrain.MAE`` (``MAEViT`` backbone,
``MAEPretrainDecoder`` neck) and loads with ``strict=True`` when both encoder
and decoder are present:

==================================  =========================================
official                            mmpretrain ``MAE``
==================================  =========================================
``cls_token``, ``pos_embed``        ``backbone.cls_token``, ``.pos_embed``
``patch_embed.proj.*``              ``backbone.patch_embed.projection.*``
``blocks.{i}.norm1.*``              ``backbone.layers.{i}.ln1.*``
``blocks.{i}.attn.qkv.*``           ``backbone.layers.{i}.attn.qkv.*``
``blocks.{i}.attn.proj.*``          ``backbone.layers.{i}.attn.proj.*``
``blocks.{i}.norm2.*``              ``backbone.layers.{i}.ln2.*``
``blocks.{i}.mlp.fc1.*``            ``backbone.layers.{i}.ffn.layers.0.0.*``
``blocks.{i}.mlp.fc2.*``            ``backbone.layers.{i}.ffn.layers.1.*``
``norm.*`` (final norm)             ``backbone.ln1.*``
``mask_token``                      ``neck.mask_token``
``decoder_embed.*``                 ``neck.decoder_embed.*``
``decoder_pos_embed``               ``neck.decoder_pos_embed``
``decoder_blocks.{i}.*``            ``neck.decoder_blocks.{i}.*`` (as blocks)
``decoder_norm.*``                  ``neck.ln1.*``
``decoder_pred.*``                  ``neck.decoder_pred.*``
``fc_norm.*`` (fine-tuned)          ``backbone.ln2.*`` (``out_type=
                                    'avg_featmap'``)
``head.*`` (fine-tuned)             ``head.layers.head.*``
                                    (``VisionTransformerClsHead``)
==================================  =========================================

Any other key is an error (nothing is dropped silently).

Position embeddings: both codebases use a fixed 2-D sin-cos table, but the
official table puts the column (x) coordinate in the first half of the
channels and mmpretrain's ``build_2d_sincos_position_embedding`` the row (y)
coordinate. ``pos_embed`` and ``decoder_pos_embed`` are copied from the
checkpoint unchanged (they are parameters in both models), so the converted
model keeps using the official table, which is what its weights were trained
with. Do not re-initialise them (mmpretrain's ``MAEViT.init_weights`` does so
unless the checkpoint is loaded after it, as ``load_from``/``init_cfg`` do).

Official checkpoints saved by ``main_pretrain.py`` also contain the training
``args`` (an ``argparse.Namespace``); it is allowed for this load only, on
top of mmssl's weights-only allow-list.
"""
import argparse
import re
from collections import OrderedDict
from typing import Dict

import torch

from mmssl.utils.checkpoint import safe_torch_load
from mmssl.utils.validation import name_list

__all__ = ['convert_key', 'convert_official_mae', 'load_official_mae']

_BLOCK_RULES = [
    ('norm1.', 'ln1.'),
    ('attn.qkv.', 'attn.qkv.'),
    ('attn.proj.', 'attn.proj.'),
    ('norm2.', 'ln2.'),
    ('mlp.fc1.', 'ffn.layers.0.0.'),
    ('mlp.fc2.', 'ffn.layers.1.'),
]

_PLAIN_RULES = [
    (r'^cls_token$', 'backbone.cls_token'),
    (r'^pos_embed$', 'backbone.pos_embed'),
    (r'^patch_embed\.proj\.(weight|bias)$',
     r'backbone.patch_embed.projection.\1'),
    (r'^norm\.(weight|bias)$', r'backbone.ln1.\1'),
    (r'^fc_norm\.(weight|bias)$', r'backbone.ln2.\1'),
    (r'^head\.(weight|bias)$', r'head.layers.head.\1'),
    (r'^mask_token$', 'neck.mask_token'),
    (r'^decoder_embed\.(weight|bias)$', r'neck.decoder_embed.\1'),
    (r'^decoder_pos_embed$', 'neck.decoder_pos_embed'),
    (r'^decoder_norm\.(weight|bias)$', r'neck.ln1.\1'),
    (r'^decoder_pred\.(weight|bias)$', r'neck.decoder_pred.\1'),
]

_BLOCKS = re.compile(r'^(blocks|decoder_blocks)\.(\d+)\.(.+)$')


def convert_key(key: str) -> str:
    """The mmpretrain ``MAE`` name of one official MAE key.

    Raises:
        KeyError: the key is not part of the official MAE layout.
    """
    match = _BLOCKS.match(key)
    if match:
        group, index, rest = match.groups()
        new_group = ('backbone.layers'
                     if group == 'blocks' else 'neck.decoder_blocks')
        for old, new in _BLOCK_RULES:
            if rest.startswith(old) and rest[len(old):] in ('weight', 'bias'):
                return f'{new_group}.{index}.{new}{rest[len(old):]}'
        raise KeyError(key)
    for pattern, repl in _PLAIN_RULES:
        if re.match(pattern, key):
            return re.sub(pattern, repl, key)
    raise KeyError(key)


def convert_official_mae(state_dict: Dict) -> 'OrderedDict':
    """Map an official MAE state dict to mmpretrain's ``MAE`` key layout.

    Tensors are passed through unchanged (the same objects).

    Raises:
        ValueError: some keys are not in the official MAE layout (listed).
    """
    out: 'OrderedDict' = OrderedDict()
    unknown = []
    for key, value in state_dict.items():
        try:
            out[convert_key(key)] = value
        except KeyError:
            unknown.append(key)
    if unknown:
        raise ValueError(
            f'{len(unknown)} keys are not in the official MAE layout: '
            f'{name_list(unknown)}')
    return out


def load_official_mae(path: str) -> Dict:
    """Load an official checkpoint with mmssl's weights-only loader.

    ``argparse.Namespace`` (the training args stored by the official
    ``main_pretrain.py``) is allowed for this call only.
    """
    with torch.serialization.safe_globals([argparse.Namespace]):
        checkpoint = safe_torch_load(path, map_location='cpu')
    for key in ('model', 'state_dict'):
        if isinstance(checkpoint, dict) and key in checkpoint:
            return checkpoint[key]
    return checkpoint
