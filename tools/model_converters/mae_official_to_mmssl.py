# Copyright (c) mmssl contributors. All rights reserved.
"""Convert an official facebookresearch/mae checkpoint to mmpretrain's MAE.

    python tools/model_converters/mae_official_to_mmssl.py IN OUT

The official checkpoints (``mae_pretrain_vit_*.pth``, ``*_full.pth``, the
visualisation and the fine-tuned ones) hold timm key names; the output
``{'meta': ..., 'state_dict': ...}`` uses the key layout of
``mmpretrain.MAE`` (``MAEViT`` backbone, ``MAEPretrainDecoder`` neck) and
loads with ``strict=True`` when both encoder and decoder are present. The
key table, and why ``pos_embed`` is copied unchanged, are in
:mod:`mmssl.converters.mae_official`. Any other key is an error (nothing is
dropped silently). Exit status 0 on success, 2 on bad input (``error: ...``
on stderr).
"""
import argparse
import os.path as osp
import sys

import mmssl  # noqa: F401  (safe weights-only checkpoint loader)
# convert_key is re-exported for scripts that import this tool
from mmssl.converters.mae_official import convert_key  # noqa: F401
from mmssl.converters.mae_official import (convert_official_mae,
                                           load_official_mae)
from mmssl.engine.tool_errors import ToolError, tool_main


@tool_main
def main(argv=None):
    parser = argparse.ArgumentParser(
        description='Convert an official facebookresearch/mae checkpoint '
        "to mmpretrain's MAE key layout.")
    parser.add_argument('src', help='official checkpoint (.pth)')
    parser.add_argument('dst', help='output checkpoint path')
    args = parser.parse_args(argv)

    from mmssl.utils import atomic_save_checkpoint
    from mmssl.version import __version__

    if not osp.isfile(args.src):
        raise ToolError(f'checkpoint file {args.src!r} does not exist')
    checkpoint = load_official_mae(args.src)  # unsafe / broken: user errors
    try:
        state_dict = convert_official_mae(checkpoint)
    except ValueError as err:
        raise ToolError(f'{args.src}: {err}') from err
    parts = sorted({k.split('.', 1)[0] for k in state_dict})
    meta = dict(
        source=osp.abspath(args.src),
        source_layout='facebookresearch/mae',
        converted_by='tools/model_converters/mae_official_to_mmssl.py',
        mmssl_version=__version__,
        note='pos_embed / decoder_pos_embed are the official sin-cos tables '
        '(column coordinate first), copied unchanged')
    atomic_save_checkpoint(dict(meta=meta, state_dict=state_dict), args.dst)
    print(f'converted {len(state_dict)} weights ({", ".join(parts)}); '
          f'saved to {args.dst}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
