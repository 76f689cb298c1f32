# Copyright (c) mmssl contributors. All rights reserved.
"""Reading a pretraining checkpoint: weights, meta, training state.

A checkpoint written by the runner holds ``{'meta': ..., 'state_dict': ...,
'optimizer': ..., 'message_hub': ..., ...}``; its ``state_dict`` has the
backbone under ``backbone.`` and everything else (necks, heads, decoders,
EMA teachers, momentum encoders) under other top-level names.
"""
import re
from collections import OrderedDict
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

import torch

__all__ = [
    'BACKBONE_PREFIX', 'PRETRAINED', 'TRAINING_STATE', 'ConversionError',
    'Converted', 'split_checkpoint', 'describe_keys', 'extract_prefixed',
    'rename_prefixes'
]

BACKBONE_PREFIX = 'backbone.'

#: the ``init_cfg`` that loads a converted file (``{checkpoint}``: its path)
PRETRAINED = ("init_cfg=dict(type='Pretrained', prefix='backbone.', "
              "checkpoint='{checkpoint}')")

# Top-level entries of a runner checkpoint that are not weights.
TRAINING_STATE = ('optimizer', 'message_hub', 'param_schedulers',
                  'ema_state_dict', 'scaler', 'amp', 'loops')


class ConversionError(ValueError):
    """The checkpoint cannot be converted as asked (message says why)."""


class Converted(NamedTuple):
    """What one (architecture, target) converter returns.

    Attributes:
        state_dict (OrderedDict): the backbone weights in the target's key
            layout, without prefix.
        prefixed (bool): whether the file stores them under ``backbone.``.
        notes (list[str]): what the user must know to load them.
        load (str): how to load the file; ``{checkpoint}`` stands for its
            path.
        extra (dict, optional): more entries for ``meta`` (timm:
            ``timm_model``, ``timm_kwargs``).
    """
    state_dict: 'OrderedDict'
    prefixed: bool
    notes: List[str]
    load: str
    extra: Optional[dict] = None


def split_checkpoint(checkpoint: Any) -> Tuple[Dict[str, Any], dict, list]:
    """Split a loaded checkpoint into weights, meta and training state.

    Args:
        checkpoint (dict): ``{'state_dict': ..., 'meta': ..., ...}`` as the
            runner writes it, ``{'model': ...}`` or a bare state dict.

    Returns:
        tuple: ``(state_dict, meta, dropped_entries)``; a leading
        ``module.`` (DDP) is stripped from the keys, and
        ``dropped_entries`` names the non-weight entries (``optimizer``,
        ``message_hub``, ...).
    """
    if not isinstance(checkpoint, dict):
        raise ConversionError(f'the checkpoint holds a '
                              f'{type(checkpoint).__name__}, not a dict')
    meta = checkpoint.get('meta') if isinstance(checkpoint.get('meta'),
                                                dict) else {}
    state_dict = checkpoint
    for key in ('state_dict', 'model'):
        if isinstance(checkpoint.get(key), dict):
            state_dict = checkpoint[key]
            break
    dropped = [k for k in checkpoint if k in TRAINING_STATE]
    if state_dict is checkpoint:
        state_dict = {
            k: v
            for k, v in checkpoint.items()
            if k not in TRAINING_STATE and k != 'meta'
        }
    state_dict = OrderedDict((re.sub(r'^module\.', '', k), v)
                             for k, v in state_dict.items()
                             if isinstance(v, torch.Tensor))
    return state_dict, meta, dropped


def describe_keys(keys, limit: int = 12) -> str:
    """Short summary of a key set: ``cls_token, layers.0-11.* (144), ...``.

    Keys are grouped by their first component; numbered children of a
    group are collapsed to a range.
    """
    groups: Dict[str, List[str]] = OrderedDict()
    for key in keys:
        groups.setdefault(key.split('.', 1)[0], []).append(key)
    parts = []
    for top, members in groups.items():
        if members == [top]:
            parts.append(top)
            continue
        idx = sorted({
            int(m.split('.')[1])
            for m in members
            if len(m.split('.')) > 2 and m.split('.')[1].isdigit()
        })
        name = f'{top}.{idx[0]}-{idx[-1]}.*' if len(idx) > 1 else f'{top}.*'
        parts.append(f'{name} ({len(members)})')
    text = ', '.join(parts[:limit])
    if len(parts) > limit:
        text += f', ... ({len(parts) - limit} more groups)'
    return text or 'no weights'


def extract_prefixed(
        state_dict: Dict[str, Any],
        prefix: str = BACKBONE_PREFIX) -> Tuple['OrderedDict', Dict[str, int]]:
    """Keep the weights under ``prefix`` (stripped); count the others.

    Args:
        state_dict (dict): Full model state dict.
        prefix (str): e.g. ``'backbone.'``; a missing final dot is added.

    Returns:
        tuple: ``(kept, dropped)`` with ``dropped`` the number of weights per
        top-level name (``{'neck': 20, 'teacher': 54}``).
    """
    if not prefix.endswith('.'):
        prefix += '.'
    kept: 'OrderedDict' = OrderedDict()
    dropped: Dict[str, int] = OrderedDict()
    for key, value in state_dict.items():
        if key.startswith(prefix):
            kept[key[len(prefix):]] = value
        else:
            top = key.split('.', 1)[0]
            dropped[top] = dropped.get(top, 0) + 1
    return kept, dropped


def rename_prefixes(state_dict: Dict[str, Any],
                    table: Dict[str, str]) -> 'OrderedDict':
    """Replace the first matching key prefix of ``table`` in every key."""
    out: 'OrderedDict' = OrderedDict()
    for key, value in state_dict.items():
        for old, new in table.items():
            if key.startswith(old):
                key = new + key[len(old):]
                break
        out[key] = value
    return out
