# Copyright (c) mmssl contributors. All rights reserved.
"""DINO (timm-layout) ViT checkpoint -> mmpretrain ``VisionTransformer``.

    python tools/model_converters/dino_vit_to_mmpretrain.py \
        dino_vitbase8_pretrain.pth dino_vitb8_mmpretrain.pth \
        [--prefix backbone.]

Reads the official DINO release files (plain state dicts, e.g.
``dino_vitbase8_pretrain.pth`` of https://dl.fbaipublicfiles.com/dino/)
and full DINO training checkpoints (``--key teacher``, ``module.`` and
``backbone.`` prefixes stripped), as well as timm ``VisionTransformer`` state
dicts. Writes ``{'meta': ..., 'state_dict': ...}`` atomically;
``meta['vit_cfg']`` is the mmpretrain config that loads it (DiffFashion's
default ViT is ``arch='b', patch_size=8, img_size=224``). Exits with 2 and a
one-line ``error:`` on a missing, unsafe or broken file or an unknown layout.
"""
import argparse
import math
import os.path as osp
import re
import sys
from collections import OrderedDict
from typing import Dict, Tuple

import mmssl  # noqa: F401  (safe weights-only checkpoint loader)
from mmssl.engine.tool_errors import ToolError, tool_main

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

_TOP = {
    'cls_token': 'cls_token',
    'pos_embed': 'pos_embed',
    'patch_embed.proj.weight': 'patch_embed.projection.weight',
    'patch_embed.proj.bias': 'patch_embed.projection.bias',
    'norm.weight': 'ln1.weight',
    'norm.bias': 'ln1.bias',
}
_BLOCK = [
    ('norm1.', 'ln1.'),
    ('attn.qkv.', 'attn.qkv.'),
    ('attn.proj.', 'attn.proj.'),
    ('ls1.gamma', 'attn.gamma1.weight'),
    ('norm2.', 'ln2.'),
    ('mlp.fc1.', 'ffn.layers.0.0.'),
    ('mlp.fc2.', 'ffn.layers.1.'),
    ('ls2.gamma', 'ffn.gamma2.weight'),
]
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
        (``arch``, ``patch_size``, ``img_size``, ``norm_cfg``) it fits.

    Raises:
        ValueError: keys that are not a timm/DINO ViT (listed).
    """
    state_dict = strip_prefixes(state_dict)
    out, unknown = OrderedDict(), []
    for key, value in state_dict.items():
        if key.startswith(_DROP):
            continue
        new = _TOP.get(key)
        m = re.match(r'^blocks\.(\d+)\.(.+)$', key)
        if new is None and m:
            idx, rest = m.groups()
            for old, repl in _BLOCK:
                if rest.startswith(old):
                    new = f'layers.{idx}.{repl}{rest[len(old):]}'
                    break
        if new is None:
            unknown.append(key)
        else:
            out[new] = value
    if unknown or 'cls_token' not in out:
        raise ValueError(
            'not a timm/DINO ViT state dict; unknown keys: '
            f'{unknown[:10]}{" ..." if len(unknown) > 10 else ""}')
    dims = out['cls_token'].shape[-1]
    depth = 1 + max(
        int(k.split('.')[1]) for k in out if k.startswith('layers.'))
    ffn = out['layers.0.ffn.layers.0.0.weight'].shape[0]
    patch = out['patch_embed.projection.weight'].shape[-1]
    grid = int(math.isqrt(out['pos_embed'].shape[1] - 1))
    heads = {192: 3, 384: 6, 768: 12, 1024: 16}.get(dims, max(1, dims // 64))
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
    return out, vit_cfg


@tool_main
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description='Convert a DINO / timm ViT checkpoint to mmpretrain.')
    parser.add_argument('src', help='DINO or timm ViT checkpoint (.pth)')
    parser.add_argument('dst', help='output checkpoint')
    parser.add_argument(
        '--key',
        default=None,
        help='sub-dict of a training checkpoint, e.g. '
        "'teacher'")
    parser.add_argument(
        '--prefix',
        default='',
        help="prefix of the written keys, e.g. 'backbone.'")
    args = parser.parse_args(argv)
    if not osp.isfile(args.src):
        raise ToolError(
            f'checkpoint file {args.src!r} does not exist. Download a DINO '
            'ViT from https://github.com/facebookresearch/dino (DiffFashion '
            f'uses ViT-B/8: {DINO_URLS["dino_vitb8"]}).')
    from mmssl.utils import atomic_save_checkpoint, safe_torch_load
    ckpt = safe_torch_load(args.src, map_location='cpu')
    if args.key:
        if not isinstance(ckpt, dict) or args.key not in ckpt:
            raise ToolError(
                f'{args.src} has no {args.key!r} entry (has '
                f'{sorted(ckpt)[:8] if isinstance(ckpt, dict) else ckpt}')
        ckpt = ckpt[args.key]
    for k in ('state_dict', 'model'):
        if isinstance(ckpt, dict) and k in ckpt and isinstance(ckpt[k], dict):
            ckpt = ckpt[k]
    try:
        state, vit_cfg = convert_dino_vit(ckpt)
    except ValueError as err:
        raise ToolError(f'{args.src}: {err}') from err
    state = OrderedDict((args.prefix + k, v) for k, v in state.items())
    meta = dict(
        source=osp.basename(args.src),
        source_layout='DINO / timm VisionTransformer',
        converted_by='tools/model_converters/dino_vit_to_mmpretrain.py',
        vit_cfg=vit_cfg)
    atomic_save_checkpoint(dict(meta=meta, state_dict=state), args.dst)
    print(f'converted {len(state)} tensors -> {args.dst}\n'
          f'load with: {vit_cfg}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
