# Copyright (c) mmssl contributors. All rights reserved.
"""Convert a pretraining checkpoint file into a backbone checkpoint file.

The entry point behind ``tools/model_converters/convert_backbone.py``; the
conversion itself (architectures, targets, key layouts) is
:mod:`mmssl.converters`.
"""
import os.path as osp

from mmengine.runner.checkpoint import _load_checkpoint

from mmssl.converters import (BACKBONE_PREFIX, ConversionError,
                              convert_state_dict, load_hint)
from mmssl.utils.checkpoint_save import atomic_save_checkpoint
from mmssl.version import __version__

__all__ = ['convert_checkpoint']


def convert_checkpoint(src: str,
                       dst: str,
                       target: str = 'mmpretrain',
                       arch: str = 'auto',
                       prefix: str = BACKBONE_PREFIX,
                       allow_unknown: bool = False,
                       converted_by: str = 'mmssl.apis.convert') -> dict:
    """Load ``src``, convert it for ``target`` and write ``dst`` atomically.

    The source goes through mmengine's ``_load_checkpoint`` (mmssl's
    weights-only loader for local files). ``dst`` receives ``{'meta':
    {...}, 'state_dict': {...}}``; ``meta`` records ``source``, ``arch``,
    ``target``, ``arch_info``, ``dropped``, ``num_tensors``, ``load`` (how
    to load it), ``notes``, the source's ``epoch`` / ``iter`` (as
    ``source_epoch`` ...), and for timm ``timm_model`` / ``timm_kwargs``.

    Args:
        src (str): Source checkpoint (path or URL).
        dst (str): Output path.
        target (str): ``'mmpretrain'``, ``'mmdet'``, ``'mmseg'`` or
            ``'timm'``; see :mod:`mmssl.converters.convert`.
        arch (str): ``'auto'``, ``'vit'``, ``'d2v2-vit'`` or ``'resnet'``.
        prefix (str): Where the backbone sits in the source.
        allow_unknown (bool): Copy weights of no known architecture.
        converted_by (str): Recorded in ``meta``.

    Returns:
        dict: the ``info`` of
        :func:`~mmssl.converters.convert.convert_state_dict` plus ``meta``.

    Raises:
        ConversionError: ``src`` does not exist, or it cannot be converted
            as asked (the message says why and what to pass instead).
    """
    if '://' not in src and not osp.isfile(src):
        raise ConversionError(f'checkpoint file {src!r} does not exist')
    checkpoint = _load_checkpoint(src, map_location='cpu')
    state_dict, info = convert_state_dict(checkpoint, target, arch, prefix,
                                          allow_unknown)
    meta = dict(
        source=osp.abspath(src) if '://' not in src else src,
        arch=info['arch'],
        target=target,
        arch_info=info['arch_info'],
        prefix=BACKBONE_PREFIX if info['prefixed'] else '',
        num_tensors=info['num_tensors'],
        dropped=info['dropped'],
        dropped_entries=info['dropped_entries'],
        notes=info['notes'],
        load=load_hint(info, dst),
        converted_by=converted_by,
        mmssl_version=__version__)
    for key in ('timm_model', 'timm_kwargs'):
        if key in info:
            meta[key] = info[key]
    for key, value in info['source_meta'].items():
        meta[f'source_{key}'] = value
    atomic_save_checkpoint(dict(meta=meta, state_dict=state_dict), dst)
    info['meta'] = meta
    return info
