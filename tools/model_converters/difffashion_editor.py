# Copyright (c) mmssl contributors. All rights reserved.
"""Pack a diffusion checkpoint and a ViT checkpoint into one checkpoint of
an ``mmssl.DiffFashionEditor`` config, for ``tools/test.py``.

    python tools/model_converters/difffashion_editor.py CONFIG \
        --diffusion work_dirs/ddpm_tiny/epoch_10.pth \
        --vit work_dirs/mae30/epoch_30.pth \
        --out work_dirs/difffashion_tiny/editor.pth

The diffusion weights must fit the config's ``model.diffusion`` exactly; the
ViT weights may carry ``backbone.`` (a whole MAE / data2vec checkpoint).
A missing file or a mismatch ends with exit status 2 and a message.
"""
import argparse
import os.path as osp
import sys

import mmssl  # noqa: F401  (safe weights-only checkpoint loader)
from mmssl.engine.tool_errors import ToolError, tool_main


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description='make a DiffFashionEditor checkpoint')
    p.add_argument('config', help='a DiffFashionEditor config')
    p.add_argument(
        '--diffusion',
        required=True,
        help='ClassCondDDPM checkpoint (tools/train.py or the '
        'guided-diffusion converter)')
    p.add_argument('--vit', required=True, help='guidance ViT checkpoint')
    p.add_argument('--out', required=True, help='checkpoint to write')
    return p.parse_args(argv)


@tool_main
def main(argv=None) -> int:
    args = parse_args(argv)
    from mmengine.registry import init_default_scope

    import mmssl.models  # noqa: F401
    from mmssl.models.diffusion import pack_editor_checkpoint
    init_default_scope('mmssl')
    if not osp.isfile(args.config):
        raise ToolError(f'config not found: {args.config}')
    try:
        info = pack_editor_checkpoint(args.config, args.diffusion, args.vit,
                                      args.out)
    except (KeyError, ValueError, RuntimeError) as err:
        raise ToolError(str(err)) from err
    print(f'wrote {args.out} ({info["num_keys"]} tensors)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
