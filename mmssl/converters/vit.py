# Copyright (c) mmssl contributors. All rights reserved.
"""Converters of the pre-LN ViT (``vit``, mmpretrain's key layout).

Every function takes the backbone weights without prefix and the
:func:`~mmssl.converters.arch.arch_info` of them, and returns a
:class:`~mmssl.converters.checkpoint.Converted`.
"""
import re
from collections import OrderedDict
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .arch import VIT_SIZES
from .checkpoint import PRETRAINED, ConversionError, Converted, describe_keys

__all__ = ['vit_to_mmpretrain', 'vit_to_mmdet', 'vit_to_mmseg', 'vit_to_timm']

TIMM_VIT_BLOCK = [
    ('ln1.', 'norm1.'),
    ('attn.qkv.', 'attn.qkv.'),
    ('attn.proj.', 'attn.proj.'),
    ('attn.gamma1.weight', 'ls1.gamma'),
    ('ln2.', 'norm2.'),
    ('ffn.layers.0.0.', 'mlp.fc1.'),
    ('ffn.layers.1.', 'mlp.fc2.'),
    ('ffn.gamma2.weight', 'ls2.gamma'),
]
TIMM_VIT_TOP = {
    'cls_token': 'cls_token',
    'pos_embed': 'pos_embed',
    'patch_embed.projection.weight': 'patch_embed.proj.weight',
    'patch_embed.projection.bias': 'patch_embed.proj.bias',
    'pre_norm.weight': 'norm_pre.weight',
    'pre_norm.bias': 'norm_pre.bias',
    'ln1.weight': 'norm.weight',
    'ln1.bias': 'norm.bias',
    'ln2.weight': 'fc_norm.weight',
    'ln2.bias': 'fc_norm.bias',
}


def rename_vit_keys(
        state_dict: Dict[str, Any], top: Dict[str, str],
        block: Sequence[Tuple[str, str]],
        blocks: Tuple[str, str]) -> Tuple['OrderedDict', List[str]]:
    """Rename ViT weights with a key table.

    Args:
        state_dict (dict): the weights, without prefix.
        top (dict): whole names outside the blocks, old -> new.
        block (list[tuple]): (old, new) name starts inside a block; the
            first that fits is used.
        blocks (tuple[str, str]): the old and new name of the block list,
            e.g. ``('layers', 'blocks')`` for mmpretrain -> timm.

    Returns:
        tuple: the renamed weights (in the source order) and the keys the
        table has no name for.
    """
    out: 'OrderedDict' = OrderedDict()
    unknown = []
    pattern = re.compile(rf'^{re.escape(blocks[0])}\.(\d+)\.(.+)$')
    for key, value in state_dict.items():
        new = top.get(key)
        match = pattern.match(key)
        if new is None and match:
            idx, rest = match.groups()
            for old, repl in block:
                if rest.startswith(old):
                    new = f'{blocks[1]}.{idx}.{repl}{rest[len(old):]}'
                    break
        if new is None:
            unknown.append(key)
        else:
            out[new] = value
    return out, unknown


def vit_to_mmpretrain(state_dict: Dict[str, Any], info: dict) -> Converted:
    """mmpretrain: the source layout under ``backbone.``."""
    return Converted(
        OrderedDict(state_dict), True, [],
        "backbone=dict(type='mmpretrain.VisionTransformer', ..., "
        f'{PRETRAINED})')


def vit_to_mmdet(state_dict: Dict[str, Any], info: dict) -> Converted:
    """mmdet: the mmpretrain file; mmdet uses ``mmpretrain.VisionTransformer``
    (no ViT of its own)."""
    return vit_to_mmpretrain(state_dict, info)


def vit_to_mmseg(state_dict: Dict[str, Any], info: dict) -> Converted:
    """mmseg's ``VisionTransformer`` layout, keys without ``backbone.``.

    ``attn.qkv`` -> ``attn.attn.in_proj_*``, ``attn.proj`` ->
    ``attn.attn.out_proj.*``. mmseg's ``VisionTransformer.init_weights``
    reads the file itself and ignores ``prefix=``, so the keys carry none (a
    ``prefix='backbone.'`` in the config is harmless).
    """
    out: 'OrderedDict' = OrderedDict()
    for key, value in state_dict.items():
        key = re.sub(r'^(layers\.\d+\.attn)\.qkv\.(weight|bias)$',
                     r'\1.attn.in_proj_\2', key)
        key = re.sub(r'^(layers\.\d+\.attn)\.proj\.', r'\1.attn.out_proj.',
                     key)
        out[key] = value
    note = ("mmseg's VisionTransformer layout, keys without 'backbone.': "
            "mmseg's VisionTransformer.init_weights ignores prefix= and "
            'reads the keys as they are; set patch_bias=True, '
            "final_norm=True and norm_cfg=dict(type='LN', eps=1e-6) (mmseg's "
            'default eps is 1e-5)')
    load = ("backbone=dict(type='VisionTransformer', patch_bias=True, "
            "final_norm=True, norm_cfg=dict(type='LN', eps=1e-6), ..., "
            f'{PRETRAINED}) (mmseg ignores prefix=; the keys carry none)')
    return Converted(out, False, [note], load)


def vit_to_timm(state_dict: Dict[str, Any], info: dict) -> Converted:
    """A plain timm ``VisionTransformer`` state dict (no prefix).

    Keys: ``cls_token, pos_embed, patch_embed.proj.*,
    blocks.{i}.norm1/attn.qkv/attn.proj/norm2/mlp.fc1/mlp.fc2.*, norm.*``;
    ``extra`` holds ``timm_model`` and ``timm_kwargs`` for
    ``timm.create_model(name, pretrained=False, num_classes=0, **kwargs)``.

    Raises:
        ConversionError: some keys have no timm name (listed).
    """
    out, unknown = rename_vit_keys(state_dict, TIMM_VIT_TOP, TIMM_VIT_BLOCK,
                                   ('layers', 'blocks'))
    if unknown:
        raise ConversionError(f'{len(unknown)} ViT weights have no timm name: '
                              f'{describe_keys(unknown)}')
    name, kwargs = _timm_vit_model(info)
    return Converted(out, False, [], timm_load_hint(name, kwargs),
                     dict(timm_model=name, timm_kwargs=kwargs))


def timm_load_hint(name: str, kwargs: dict) -> str:
    """How to load a timm export (``{checkpoint}``: its path)."""
    args = ''.join(f', {k}={v!r}' for k, v in kwargs.items())
    return (f"timm.create_model('{name}', pretrained=False, num_classes=0"
            f"{args}).load_state_dict(torch.load('{{checkpoint}}')"
            "['state_dict'])")


def timm_has(name: str) -> bool:
    """Whether timm knows the model ``name`` (True without timm)."""
    try:
        import timm
    except ImportError:
        return True
    return timm.is_model(name)


def _timm_vit_model(info: dict) -> Tuple[Optional[str], dict]:
    heads, size = VIT_SIZES.get(info['embed_dims'], (None, None))
    kwargs = dict(
        embed_dim=info['embed_dims'],
        depth=info['num_layers'],
        patch_size=info['patch_size'],
        mlp_ratio=(info['feedforward_channels'] or 4 * info['embed_dims']) /
        info['embed_dims'])
    if heads:
        kwargs['num_heads'] = heads
    if 'img_size' in info:
        kwargs['img_size'] = info['img_size']
    name = None
    if size:
        name = f'vit_{size}_patch{info["patch_size"]}_' \
            f'{info.get("img_size", 224)}'
    if name is None or not timm_has(name):
        name = 'vit_base_patch16_224'  # the kwargs set every size
    return name, kwargs
