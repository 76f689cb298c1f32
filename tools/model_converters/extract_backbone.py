# Copyright (c) mmssl contributors. All rights reserved.
"""Extract the backbone weights of a pretraining checkpoint.

    python tools/model_converters/extract_backbone.py IN_CKPT OUT_CKPT \
        [--prefix backbone.] [--target mmpretrain|mmdet|mmseg]

Reads an mmssl / mmpretrain checkpoint (through mmssl's weights-only safe
loader), keeps the weights under ``--prefix`` (default ``backbone.``) with the
prefix stripped, and drops everything else: the optimizer, the message hub,
parameter schedulers, EMA copies, necks, heads and teacher / momentum copies
of the backbone (``teacher.backbone.*``, ``target_generator.*``, ...). The
output is ``{'meta': {...}, 'state_dict': {...}}`` written atomically
(:func:`mmssl.utils.atomic_save_checkpoint`); ``meta`` records the source
file, the prefix, the target and the source's epoch / iteration.

How each target loads the result (keys never carry the ``backbone.`` prefix,
so use the ``checkpoint=`` form, *without* ``prefix=``):

* ``mmpretrain`` (default): mmpretrain key names, e.g. for a ViT
  ``cls_token, pos_embed, patch_embed.projection.*, layers.{i}.attn.qkv.*,
  ..., ln1.*``. Load with
  ``backbone=dict(type='VisionTransformer', ..., init_cfg=dict(
  type='Pretrained', checkpoint=OUT_CKPT))``; it loads into
  ``mmpretrain.VisionTransformer`` and ``MAEViT`` of the same arch with no
  missing key (a ViT with ``out_type='avg_featmap'`` adds a new ``ln2``;
  mmpretrain's ViT resizes ``pos_embed`` itself for another image size).
* ``mmdet``: the same file as ``mmpretrain``: mmdet backbones take
  ``init_cfg=dict(type='Pretrained', checkpoint=OUT_CKPT)``, and mmpretrain
  backbones used in mmdet (``type='mmpretrain.VisionTransformer'``) load it
  as above.
* ``mmseg``: as ``mmpretrain``, except that ViT attention weights are renamed
  to mmseg's ``VisionTransformer`` layout (``layers.{i}.attn.qkv.*`` ->
  ``layers.{i}.attn.attn.in_proj_*``, ``layers.{i}.attn.proj.*`` ->
  ``layers.{i}.attn.attn.out_proj.*``). Load with ``model.pretrained=
  OUT_CKPT`` or ``backbone.init_cfg=dict(type='Pretrained',
  checkpoint=OUT_CKPT)``; mmseg's ViT resizes ``pos_embed`` itself. Set
  ``patch_bias=True`` on mmseg's ``VisionTransformer`` (its default is False,
  MAE's patch embedding has a bias). For an
  ``mmpretrain.*`` backbone inside an mmseg config use ``--target
  mmpretrain``.

The original checkpoint can also be used directly with
``init_cfg=dict(type='Pretrained', checkpoint=IN_CKPT, prefix='backbone.')``
(mmengine strips the prefix while loading); extracting makes the file small
and free of training state.
"""
import argparse
import os.path as osp
import re
import sys
from collections import OrderedDict
from typing import Dict, Tuple

try:
    import mmssl  # noqa: F401  (safe weights-only checkpoint loader)
except ModuleNotFoundError as _err:  # a checkout that is not pip-installed
    if _err.name != 'mmssl':
        raise
    sys.path.insert(
        0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
    import mmssl  # noqa: F401

TARGETS = ('mmpretrain', 'mmdet', 'mmseg')
_DROPPED_TOP_LEVEL = ('optimizer', 'message_hub', 'param_schedulers',
                      'ema_state_dict', 'scaler', 'amp')


def _to_mmseg(state_dict: Dict) -> 'OrderedDict':
    """Rename mmpretrain ViT attention weights to mmseg's layout."""
    out = OrderedDict()
    for key, value in state_dict.items():
        key = re.sub(r'^(layers\.\d+\.attn)\.qkv\.(weight|bias)$',
                     r'\1.attn.in_proj_\2', key)
        key = re.sub(r'^(layers\.\d+\.attn)\.proj\.', r'\1.attn.out_proj.',
                     key)
        out[key] = value
    return out


def extract_backbone(checkpoint: Dict,
                     prefix: str = 'backbone.',
                     target: str = 'mmpretrain'
                     ) -> Tuple['OrderedDict', Dict[str, int]]:
    """Return ``(backbone_state_dict, dropped)`` from a loaded checkpoint.

    Args:
        checkpoint (dict): a loaded checkpoint (``{'state_dict': ...}`` or a
            bare state dict).
        prefix (str): the prefix of the weights to keep; a missing trailing
            dot is added.
        target (str): one of ``mmpretrain``, ``mmdet``, ``mmseg``.

    Returns:
        tuple: the kept weights with the prefix stripped, and the number of
        dropped weights per top-level module name.

    Raises:
        ValueError: no weight starts with ``prefix``, or an unknown target.
    """
    if target not in TARGETS:
        raise ValueError(f'target must be one of {TARGETS}, got {target!r}')
    if not prefix.endswith('.'):
        prefix += '.'
    state_dict = checkpoint.get('state_dict', checkpoint)
    kept: 'OrderedDict' = OrderedDict()
    dropped: Dict[str, int] = {}
    for key, value in state_dict.items():
        key = re.sub(r'^module\.', '', key)
        if key.startswith(prefix):
            kept[key[len(prefix):]] = value
        else:
            top = key.split('.', 1)[0]
            dropped[top] = dropped.get(top, 0) + 1
    if not kept:
        tops = sorted(dropped)
        raise ValueError(
            f'no weight starts with {prefix!r}; the checkpoint holds '
            f'{", ".join(repr(t + ".") for t in tops) or "no weights"}: '
            'pass one of them as --prefix')
    if target == 'mmseg':
        kept = _to_mmseg(kept)
    return kept, dropped


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Extract the backbone weights of a pretraining '
        'checkpoint for downstream use (prefix stripped).')
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
        help='key layout of the output (see the module docstring)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from mmengine.runner.checkpoint import _load_checkpoint

    from mmssl.utils import atomic_save_checkpoint
    from mmssl.version import __version__

    if not osp.isfile(args.src) and '://' not in args.src:
        print(
            f'error: checkpoint file {args.src!r} does not exist',
            file=sys.stderr)
        return 2
    checkpoint = _load_checkpoint(args.src, map_location='cpu')
    try:
        state_dict, dropped = extract_backbone(checkpoint, args.prefix,
                                               args.target)
    except ValueError as err:
        print(f'error: {args.src}: {err}', file=sys.stderr)
        return 2

    src_meta = checkpoint.get('meta') or {}
    meta = dict(
        source=osp.abspath(args.src) if '://' not in args.src else args.src,
        prefix=args.prefix if args.prefix.endswith('.') else args.prefix + '.',
        target=args.target,
        converted_by='tools/model_converters/extract_backbone.py',
        mmssl_version=__version__)
    for key in ('epoch', 'iter', 'mmengine_version', 'dataset_meta',
                'experiment_name', 'seed'):
        if isinstance(src_meta, dict) and key in src_meta:
            meta[f'source_{key}'] = src_meta[key]
    atomic_save_checkpoint(dict(meta=meta, state_dict=state_dict), args.dst)

    skipped = [k for k in _DROPPED_TOP_LEVEL if k in checkpoint]
    print(f'kept {len(state_dict)} weights under {meta["prefix"]!r} '
          f'(target {args.target}); dropped ' + (', '.join(
              f'{n} {k}.*'
              for k, n in sorted(dropped.items())) or 'no other weights') +
          (f' and {", ".join(skipped)}' if skipped else '') +
          f'; saved to {args.dst}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
