# Copyright (c) mmssl contributors. All rights reserved.
"""DINO (timm-layout) ViT weights -> mmpretrain ``VisionTransformer``.

The converter behind ``tools/model_converters/dino_vit_to_mmpretrain.py``;
DiffFashion's guidance ViT is DINO's ViT-B/8. It reads the official DINO
release files (plain state dicts), full DINO training checkpoints (a sub-dict
such as ``teacher``, ``module.`` and ``backbone.`` prefixes) and timm
``VisionTransformer`` state dicts:

==============================  ======================================
timm / DINO                     mmpretrain ``VisionTransformer``
==============================  ======================================
``cls_token``, ``pos_embed``    ``cls_token``, ``pos_embed``
``patch_embed.proj.*``          ``patch_embed.projection.*``
``blocks.{i}.norm1.*``          ``layers.{i}.ln1.*``
``blocks.{i}.attn.qkv.*``       ``layers.{i}.attn.qkv.*``
``blocks.{i}.attn.proj.*``      ``layers.{i}.attn.proj.*``
``blocks.{i}.ls1.gamma``        ``layers.{i}.attn.gamma1.weight``
``blocks.{i}.norm2.*``          ``layers.{i}.ln2.*``
``blocks.{i}.mlp.fc1.*``        ``layers.{i}.ffn.layers.0.0.*``
``blocks.{i}.mlp.fc2.*``        ``layers.{i}.ffn.layers.1.*``
``blocks.{i}.ls2.gamma``        ``layers.{i}.ffn.gamma2.weight``
``norm.*`` (final norm)         ``ln1.*``
``norm_pre.*`` (CLIP-style)     ``pre_norm.*``
``head.*``, ``fc_norm.*``       dropped (classifier parts)
==============================  ======================================

Any other key is an error.
"""
import math
from collections import OrderedDict
from typing import Dict, Optional, Tuple

from .vit import TIMM_VIT_BLOCK, TIMM_VIT_TOP, rename_vit_keys

DINO_URLS = {
    'dino_vits16':
    'https://dl.fbaipublicfiles.com/dino/'
    'dino_deitsmall16_pretrain/dino_deitsmall16_pretrain.pth',
    'dino_vits8':
    'https://dl.fbaipublicfiles.com/dino/'
    'dino_deitsmall8_pretrain/dino_deitsmall8_pretrain.pth',
    'dino_vitb16':
    'https://dl.fbaipublicfiles.com/dino/'
    'dino_vitbase16_pretrain/dino_vitbase16_pretrain.pth',
    'dino_vitb8':
    'https://dl.fbaipublicfiles.com/dino/'
    'dino_vitbase8_pretrain/dino_vitbase8_pretrain.pth',
}

# the inverse of the mmpretrain -> timm table (timm's ``fc_norm`` belongs to
# its classifier and is dropped with the head before renaming)
_TOP = {timm: mmpretrain for mmpretrain, timm in TIMM_VIT_TOP.items()}
_BLOCK = [(timm, mmpretrain) for mmpretrain, timm in TIMM_VIT_BLOCK]
_DROP = ('head.', 'fc_norm.', 'head_drop.')


def strip_prefixes(state_dict: Dict) -> Dict:
    """Remove ``module.`` / ``backbone.`` prefixes of DINO training files."""
    out = OrderedDict()
    for k, v in state_dict.items():
        for p in ('module.', 'backbone.'):
            if k.startswith(p):
                k = k[len(p):]
        out[k] = v
    return out


def convert_dino_vit(state_dict: Dict) -> Tuple['OrderedDict', dict]:
    """timm/DINO ViT keys -> mmpretrain ``VisionTransformer`` keys.

    Args:
        state_dict (dict): timm-layout ViT weights (``blocks.{i}.norm1``,
            ``attn.qkv``, ``mlp.fc1`` ...).

    Returns:
        tuple: the converted state dict and the mmpretrain config dict
        (``arch``, ``patch_size``, ``img_size``, ``norm_cfg``, and
        ``qkv_bias`` / ``pre_norm`` / ``layer_scale_init_value`` where the
        weights have no qkv bias / a norm before the blocks / a layer scale)
        it loads into with ``strict=True``.

    Raises:
        ValueError: not a dict, or keys that are not a timm/DINO ViT
            (listed).
    """
    if not isinstance(state_dict, dict):
        raise ValueError('not a timm/DINO ViT state dict but a '
                         f'{type(state_dict).__name__}')
    state_dict = strip_prefixes(state_dict)
    state_dict = OrderedDict(
        (k, v) for k, v in state_dict.items() if not k.startswith(_DROP))
    out, unknown = rename_vit_keys(state_dict, _TOP, _BLOCK,
                                   ('blocks', 'layers'))
    if unknown or 'cls_token' not in out:
        raise ValueError(
            'not a timm/DINO ViT state dict; unknown keys: '
            f'{unknown[:10]}{" ..." if len(unknown) > 10 else ""}')
    dims = out['cls_token'].shape[-1]
    depth = 1 + max(
        int(k.split('.')[1]) for k in out if k.startswith('layers.'))
    ffn = out['layers.0.ffn.layers.0.0.weight'].shape[0]
    patch = out['patch_embed.projection.weight'].shape[-1]
    patches = out['pos_embed'].shape[1] - 1
    grid = math.isqrt(patches)
    if grid * grid != patches:
        raise ValueError(
            f'pos_embed holds {patches + 1} tokens, not a class token and a '
            'square grid of patches (distillation or register tokens are '
            'not converted)')
    # the weights do not hold the number of heads; timm's and DINO's ViTs
    # (tiny / small / base / large: 3 / 6 / 12 / 16 heads) use 64-d heads
    heads = max(1, dims // 64)
    vit_cfg = dict(
        type='mmpretrain.VisionTransformer',
        arch=dict(
            embed_dims=dims,
            num_layers=depth,
            num_heads=heads,
            feedforward_channels=ffn),
        img_size=grid * patch,
        patch_size=patch,
        norm_cfg=dict(type='LN', eps=1e-6),
        out_type='raw')
    if 'layers.0.attn.qkv.bias' not in out:
        vit_cfg['qkv_bias'] = False
    if 'pre_norm.weight' in out:  # timm's ``norm_pre`` (CLIP-style ViTs)
        vit_cfg['pre_norm'] = True
    if 'layers.0.attn.gamma1.weight' in out:
        # timm's layer scale (``init_values``): any non-zero value builds
        # the ``gamma`` parameters the weights are loaded into
        vit_cfg['layer_scale_init_value'] = 1e-5
    return out, vit_cfg


def dino_vit_state(checkpoint, key: Optional[str] = None) -> Dict:
    """The ViT state dict inside a loaded DINO / timm checkpoint.

    Args:
        checkpoint: what ``torch.load`` returned: a state dict, or a dict
            holding it under ``key``, ``'state_dict'`` or ``'model'``.
        key (str, optional): sub-dict of a DINO training checkpoint, e.g.
            ``'teacher'``.

    Returns:
        dict: the (still timm-named) weights.

    Raises:
        KeyError: ``key`` is given and missing (the keys found are named).
    """
    if key:
        if not isinstance(checkpoint, dict) or key not in checkpoint:
            found = sorted(checkpoint)[:8] if isinstance(
                checkpoint, dict) else type(checkpoint).__name__
            raise KeyError(f'no {key!r} entry (has {found})')
        checkpoint = checkpoint[key]
    for name in ('state_dict', 'model'):
        if isinstance(checkpoint, dict) and isinstance(
                checkpoint.get(name), dict):
            checkpoint = checkpoint[name]
    return checkpoint
