# Copyright (c) mmssl contributors. All rights reserved.
"""Turn a pretraining checkpoint into a backbone checkpoint for transfer.

    python tools/model_converters/convert_backbone.py SRC_CKPT OUT_CKPT \
        [--to mmpretrain|mmdet|mmseg|timm] [--arch auto|vit|d2v2-vit|resnet] \
        [--prefix backbone.]

Reads any mmssl / mmpretrain pretraining checkpoint (MAE, data2vec 2.0,
SimCLR, DenseCL, ...) with mmssl's weights-only loader, keeps the backbone
(the student: teachers, momentum encoders, necks, heads, the optimizer and
the rest of the training state are dropped), detects its architecture and
writes ``{'meta': {...}, 'state_dict': {...}}`` atomically. It prints what
it found (architecture, number of tensors, dropped groups) and how to load
the result.

For ``--to mmpretrain|mmdet|mmseg`` load the output with::

    backbone=dict(type=..., init_cfg=dict(
        type='Pretrained', prefix='backbone.', checkpoint=OUT_CKPT))

Exceptions and details (see :mod:`mmssl.converters` for the key layouts
and ``tools/model_converters/README.md`` for a table):

* data2vec 2.0 (post-LN ViT) loads only into ``type='mmssl.D2V2ViT'``, in
  every library; ``--to timm`` is refused for it.
* ``--to mmseg`` of a ViT writes mmseg's ``VisionTransformer`` layout
  without the ``backbone.`` prefix (mmseg's ViT ignores ``prefix=``).
* mmseg ResNet: use ``type='ResNet'`` (``deep_stem=False``) for a 7x7-stem
  checkpoint such as SimCLR's / DenseCL's, not ``ResNetV1c``.
* ``--to timm`` writes a plain timm state dict (no prefix) for
  ``timm.create_model(meta['timm_model'], pretrained=False, num_classes=0,
  **meta['timm_kwargs'])``.

Exit status 0 on success, 2 on bad input: a missing, unsafe or broken
checkpoint, or one without a known backbone (``error: ...`` on stderr).
"""
import argparse
import sys

import mmssl  # noqa: F401  (safe weights-only checkpoint loader)
from mmssl.apis import convert_checkpoint
from mmssl.converters import ARCHS, TARGETS, ConversionError
from mmssl.engine.tool_errors import ToolError, tool_main


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Convert a pretraining checkpoint into a backbone '
        'checkpoint for mmpretrain, mmdet, mmseg or timm.')
    parser.add_argument('src', help='pretraining checkpoint')
    parser.add_argument('dst', help='output checkpoint path')
    parser.add_argument(
        '--to',
        choices=TARGETS,
        default='mmpretrain',
        help='target library (default: mmpretrain)')
    parser.add_argument(
        '--arch',
        choices=('auto', ) + ARCHS,
        default='auto',
        help='expected backbone architecture (default: auto-detect)')
    parser.add_argument(
        '--prefix',
        default='backbone.',
        help='where the backbone sits in the source (default: backbone.)')
    return parser.parse_args(argv)


def report(info: dict, dst: str) -> str:
    """The lines printed after a successful conversion."""
    meta = info['meta']
    dropped = ', '.join(f'{k}.* ({n})'
                        for k, n in info['dropped'].items()) or 'none'
    entries = ', '.join(info['dropped_entries']) or 'none'
    details = ', '.join(f'{k}={v}' for k, v in info['arch_info'].items())
    lines = [
        f'found: {info["arch"]} backbone ({details})',
        f'kept {info["num_tensors"]} tensors for {info["target"]}' +
        (" under 'backbone.'" if info['prefixed'] else ' (no prefix)'),
        f'dropped weights: {dropped}; dropped training state: {entries}',
    ]
    lines += [f'note: {n}' for n in info['notes']]
    lines += [f'saved to {dst}', f'load with: {meta["load"]}']
    return '\n'.join(lines)


@tool_main
def main(argv=None):
    args = parse_args(argv)
    try:
        info = convert_checkpoint(
            args.src,
            args.dst,
            target=args.to,
            arch=args.arch,
            prefix=args.prefix,
            converted_by='tools/model_converters/convert_backbone.py')
    except ConversionError as err:
        raise ToolError(f'{args.src}: {err}') from err
    print(report(info, args.dst))
    return 0


if __name__ == '__main__':
    sys.exit(main())
