# Copyright (c) mmssl contributors. All rights reserved.
"""Extract the backbone weights of a pretraining checkpoint.

    python tools/model_converters/extract_backbone.py IN_CKPT OUT_CKPT \
        [--prefix backbone.] [--target mmpretrain|mmdet|mmseg]

Kept for existing scripts: it is ``convert_backbone.py IN OUT --to TARGET
--prefix PREFIX`` (see that script and ``tools/model_converters/README.md``),
except that weights under ``--prefix`` which form no known backbone (e.g.
``--prefix neck.``) are copied as they are instead of being refused
(``mmpretrain`` / ``mmdet`` targets only).

The weights under ``--prefix`` (default ``backbone.``) are kept; the
optimizer, the message hub, necks, heads and teacher / momentum copies are
dropped. The output ``{'meta': {...}, 'state_dict': {...}}`` stores them
under ``backbone.`` whatever ``--prefix`` was, so every target loads it the
same way::

    backbone=dict(type=..., init_cfg=dict(
        type='Pretrained', prefix='backbone.', checkpoint=OUT_CKPT))

The one exception is ``--target mmseg`` of a ViT, which writes mmseg's
``VisionTransformer`` key layout without the prefix (mmseg's ViT reads the
file itself and ignores ``prefix=``, so the same ``init_cfg`` works).
"""
import argparse
import sys

import mmssl  # noqa: F401  (safe weights-only checkpoint loader)
from mmssl.apis import convert_checkpoint
from mmssl.converters import ConversionError
from mmssl.engine.tool_errors import ToolError, tool_main

TARGETS = ('mmpretrain', 'mmdet', 'mmseg')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Extract the backbone weights of a pretraining '
        "checkpoint for downstream use (stored under 'backbone.').")
    parser.add_argument('src', help='input checkpoint (mmssl / mmpretrain)')
    parser.add_argument('dst', help='output checkpoint path')
    parser.add_argument(
        '--prefix',
        default='backbone.',
        help='prefix of the weights to keep (default: backbone.)')
    parser.add_argument(
        '--target',
        choices=TARGETS,
        default='mmpretrain',
        help='key layout of the output (see convert_backbone.py)')
    return parser.parse_args(argv)


@tool_main
def main(argv=None):
    args = parse_args(argv)
    try:
        info = convert_checkpoint(
            args.src,
            args.dst,
            target=args.target,
            prefix=args.prefix,
            allow_unknown=True,
            converted_by='tools/model_converters/extract_backbone.py')
    except ConversionError as err:
        raise ToolError(f'{args.src}: {err}') from err
    dropped = ', '.join(f'{n} {k}.*' for k, n in info['dropped'].items())
    entries = ', '.join(info['dropped_entries'])
    print(f'kept {info["num_tensors"]} weights ({info["arch"]}) from '
          f'{info["source_prefix"]!r} (target {args.target}); dropped '
          f'{dropped or "no other weights"}'
          f'{" and " + entries if entries else ""}; saved to {args.dst}\n'
          f'load with: {info["meta"]["load"]}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
