# Copyright (c) mmssl contributors. All rights reserved.
"""Turn a pretraining checkpoint into a backbone checkpoint for transfer.

Only the backbone (the student) is kept; the architecture is recognised
from its keys (:mod:`mmssl.converters.arch`), and the key layout of the
target library is written by the converter of that (architecture, target)
pair, looked up in :data:`CONVERTERS`:

=============  ===============================================================
``mmpretrain``  ``backbone.`` + the source layout. Load with ``init_cfg=dict(
                type='Pretrained', prefix='backbone.', checkpoint=OUT)`` into
                ``mmpretrain.VisionTransformer`` / ``MAEViT`` (``vit``),
                ``mmssl.D2V2ViT`` (``d2v2-vit``: post-LN, it loads into no
                other class) or ``mmpretrain.ResNet`` (``resnet``).
``mmdet``       the same file. mmdet's ``ResNet`` has mmpretrain's key names
                (a deep stem is renamed to ``stem.{0,1,3,4,6,7}``, mmdet's
                ``ResNetV1d`` layout); ViTs are used in mmdet as
                ``mmpretrain.VisionTransformer`` or ``mmssl.D2V2ViT``.
``mmseg``       ResNet: as ``mmdet``. ``vit``: mmseg's ``VisionTransformer``
                layout *without* the ``backbone.`` prefix (mmseg's ViT reads
                the file itself and ignores ``prefix=``); set
                ``patch_bias=True``, ``final_norm=True`` and
                ``norm_cfg=dict(type='LN', eps=1e-6)``. ``d2v2-vit``: kept as
                is (with prefix) for ``type='mmssl.D2V2ViT'``.
``timm``        a plain timm state dict (no prefix) for
                ``timm.create_model(meta['timm_model'], pretrained=False,
                num_classes=0, **meta['timm_kwargs'])``. ``d2v2-vit`` has no
                timm equivalent and is refused.
=============  ===============================================================

A new architecture or target is one function per pair in its own module
and one line per pair in :data:`CONVERTERS`.
"""
from collections import OrderedDict
from typing import Any, Callable, Dict, List, Tuple

from .arch import ARCHS, EXPECTED_LAYOUT, arch_error, arch_info, detect_arch
from .checkpoint import (BACKBONE_PREFIX, PRETRAINED, ConversionError,
                         Converted, describe_keys, extract_prefixed,
                         split_checkpoint)
from .d2v2_vit import (d2v2_vit_to_mmdet, d2v2_vit_to_mmpretrain,
                       d2v2_vit_to_mmseg, d2v2_vit_to_timm)
from .resnet import (resnet_to_mmdet, resnet_to_mmpretrain, resnet_to_mmseg,
                     resnet_to_timm)
from .vit import vit_to_mmdet, vit_to_mmpretrain, vit_to_mmseg, vit_to_timm

__all__ = ['TARGETS', 'CONVERTERS', 'convert_state_dict', 'load_hint']

TARGETS = ('mmpretrain', 'mmdet', 'mmseg', 'timm')

ConverterFn = Callable[[Dict[str, Any], dict], Converted]


def copy_unknown(state_dict: Dict[str, Any], info: dict) -> Converted:
    """Weights of no known architecture, copied under ``backbone.`` as they
    are (``allow_unknown``; the OpenMMLab targets that load by prefix)."""
    return Converted(
        OrderedDict(state_dict), True, [], f'backbone=dict(..., {PRETRAINED})')


#: (architecture, target) -> converter. ``'unknown'`` rows serve
#: ``allow_unknown=True``; a pair that is not here cannot be converted.
CONVERTERS: Dict[Tuple[str, str], ConverterFn] = {
    ('vit', 'mmpretrain'): vit_to_mmpretrain,
    ('vit', 'mmdet'): vit_to_mmdet,
    ('vit', 'mmseg'): vit_to_mmseg,
    ('vit', 'timm'): vit_to_timm,
    ('d2v2-vit', 'mmpretrain'): d2v2_vit_to_mmpretrain,
    ('d2v2-vit', 'mmdet'): d2v2_vit_to_mmdet,
    ('d2v2-vit', 'mmseg'): d2v2_vit_to_mmseg,
    ('d2v2-vit', 'timm'): d2v2_vit_to_timm,
    ('resnet', 'mmpretrain'): resnet_to_mmpretrain,
    ('resnet', 'mmdet'): resnet_to_mmdet,
    ('resnet', 'mmseg'): resnet_to_mmseg,
    ('resnet', 'timm'): resnet_to_timm,
    ('unknown', 'mmpretrain'): copy_unknown,
    ('unknown', 'mmdet'): copy_unknown,
}


def _no_backbone_error(state_dict, dropped, prefix: str) -> ConversionError:
    lines = [
        f'no backbone weights: no key starts with {prefix!r}',
        f'  found:    {describe_keys(state_dict)}',
        f'  expected: {prefix}<backbone key> with one of'
    ]
    lines += [f'    {k}: {v}' for k, v in EXPECTED_LAYOUT.items()]
    others = [t + '.' for t in dropped if t + '.' != prefix]
    if others:
        lines.append('  if the backbone sits under another name, pass it as '
                     f'--prefix (one of {", ".join(map(repr, others))})')
    return ConversionError('\n'.join(lines))


def convert_state_dict(
        checkpoint: Any,
        target: str = 'mmpretrain',
        arch: str = 'auto',
        prefix: str = BACKBONE_PREFIX,
        allow_unknown: bool = False) -> Tuple['OrderedDict', dict]:
    """Convert a loaded pretraining checkpoint for ``target``.

    Args:
        checkpoint (dict): A loaded checkpoint (see
            :func:`~mmssl.converters.checkpoint.split_checkpoint`).
        target (str): One of :data:`TARGETS`. Defaults to ``'mmpretrain'``.
        arch (str): ``'auto'`` or one of :data:`~mmssl.converters.arch.ARCHS`;
            a given arch that differs from the detected one is an error.
        prefix (str): Where the backbone sits in the source state dict.
            Defaults to ``'backbone.'``. A state dict with no key under it
            but whose own keys form a known backbone is taken as it is.
        allow_unknown (bool): Copy the weights under ``prefix`` even when
            they are no known architecture (``mmpretrain`` / ``mmdet``
            targets only). Defaults to False.

    Returns:
        tuple: ``(state_dict, info)``. ``state_dict`` is what goes into the
        file (keys with ``backbone.``, except for the ``timm`` target and
        the mmseg ``VisionTransformer`` layout); ``info`` holds ``arch``,
        ``target``, ``arch_info``, ``num_tensors``, ``dropped`` (weights per
        dropped group), ``dropped_entries`` (training state), ``prefixed``,
        ``load`` (how to load it, ``{checkpoint}`` for its path), ``notes``
        and, for timm, ``timm_model`` / ``timm_kwargs``.

    Raises:
        ConversionError: no backbone weights, another architecture than
            ``arch``, or a target that cannot express the architecture.
    """
    if target not in TARGETS:
        raise ConversionError(f'target must be one of {TARGETS}, got '
                              f'{target!r}')
    if arch != 'auto' and arch not in ARCHS:
        raise ConversionError(f"arch must be 'auto' or one of {ARCHS}, got "
                              f'{arch!r}')
    if not prefix.endswith('.'):
        prefix += '.'
    state_dict, meta, dropped_entries = split_checkpoint(checkpoint)
    backbone, dropped = extract_prefixed(state_dict, prefix)
    notes: List[str] = []
    if not backbone:
        if detect_arch(state_dict) is None:
            raise _no_backbone_error(state_dict, dropped, prefix)
        backbone, dropped = OrderedDict(state_dict), OrderedDict()
        notes.append(f'the source has no {prefix!r} keys; its keys form a '
                     'backbone and are used as they are')
    found = detect_arch(backbone)
    where = f'the weights under {prefix!r}'
    if found is None and not (allow_unknown and arch == 'auto' and
                              ('unknown', target) in CONVERTERS):
        raise arch_error(backbone, None if arch == 'auto' else arch, None,
                         where)
    if arch != 'auto' and found != arch:
        raise arch_error(backbone, arch, found, where)
    info = dict(
        arch=found or 'unknown',
        target=target,
        source_prefix=prefix,
        arch_info=arch_info(backbone, found) if found else {},
        dropped=dict(dropped),
        dropped_entries=dropped_entries,
        notes=notes,
        source_meta={
            k: meta[k]
            for k in ('epoch', 'iter', 'mmengine_version', 'dataset_meta',
                      'experiment_name', 'seed') if k in meta
        })
    if found in ('vit', 'd2v2-vit') and info['arch_info']['num_heads'] \
            is None:
        notes.append(
            f'num_heads is not stored in the weights and embed_dims='
            f'{info["arch_info"]["embed_dims"]} is no standard width: set '
            'it as in the pretraining config')
    converted = CONVERTERS[(info['arch'], target)](backbone, info['arch_info'])
    notes += converted.notes
    info.update(converted.extra or {})
    out = converted.state_dict
    if converted.prefixed:
        out = OrderedDict((BACKBONE_PREFIX + k, v) for k, v in out.items())
    info['prefixed'] = converted.prefixed
    info['load'] = converted.load
    info['num_tensors'] = len(out)
    return out, info


def load_hint(info: dict, path: str = 'OUT') -> str:
    """How to load a converted file, for the CLI and ``meta['load']``.

    Args:
        info (dict): The ``info`` of :func:`convert_state_dict`.
        path (str): The converted file.
    """
    return info['load'].replace('{checkpoint}', path)
