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
default ViT is ``arch='b', patch_size=8, img_size=224``). The key table is in
:mod:`mmssl.converters.dino_vit`. Exits with 2 and a
one-line ``error:`` on a missing, unsafe or broken file or an unknown layout.
"""
import argparse
import os.path as osp
import sys
from collections import OrderedDict

import mmssl  # noqa: F401  (safe weights-only checkpoint loader)
from mmssl.converters.dino_vit import (DINO_URLS, convert_dino_vit,
                                       dino_vit_state)
from mmssl.engine.tool_errors import ToolError, tool_main


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
    try:
        ckpt = dino_vit_state(ckpt, args.key)
    except KeyError as err:
        raise ToolError(f'{args.src}: {err.args[0]}') from err
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
