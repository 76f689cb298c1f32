# Copyright (c) mmssl contributors. All rights reserved.
"""Checkpoint against model: a key-by-key report and the check the tools
run before loading weights (:func:`check_checkpoint`), which raises
:class:`CheckpointMismatchError` with counts, examples and the fix.
"""
import logging
import os.path as osp
import re
from typing import Any, Dict, List, Tuple

import torch
from mmengine.logging import print_log

from mmssl.utils.validation import name_list
from .tool_errors import EXTRACT_BACKBONE, ToolError, _quiet

__all__ = [
    'StateDictReport', 'CheckpointMismatchError', 'compare_state_dict',
    'check_checkpoint', 'classifier_shape_mismatches',
    'num_classes_mismatch_lines'
]


class StateDictReport:
    """Key-by-key comparison of a checkpoint with a model.

    Attributes:
        matched (list[str]): keys present in both with the same shape.
        missing (list[str]): model keys absent from the checkpoint.
        unexpected (list[str]): checkpoint keys the model does not have.
        mismatched (list[tuple]): ``(key, ckpt_shape, model_shape)``.
        num_model_keys (int): number of keys in the model's state_dict.
        backbone_like (str | None): the child module name (``'backbone'``)
            when the checkpoint's keys are that child's keys without its
            prefix, i.e. a backbone-only checkpoint.
    """

    def __init__(self,
                 matched,
                 missing,
                 unexpected,
                 mismatched,
                 num_model_keys,
                 backbone_like=None):
        self.matched = matched
        self.missing = missing
        self.unexpected = unexpected
        self.mismatched = mismatched
        self.num_model_keys = num_model_keys
        self.backbone_like = backbone_like

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def summary(self, limit: int = 5) -> str:
        parts = [
            f'{len(self.matched)} of {self.num_model_keys} model keys matched'
        ]
        if self.missing:
            parts.append(f'{len(self.missing)} missing from the checkpoint '
                         f'(e.g. {name_list(self.missing, limit)})')
        if self.unexpected:
            parts.append(
                f'{len(self.unexpected)} unexpected in the checkpoint '
                f'(e.g. {name_list(self.unexpected, limit)})')
        if self.mismatched:
            shown = name_list([
                f'{k!r}: checkpoint {tuple(a)} vs model {tuple(b)}'
                for k, a, b in self.mismatched
            ],
                              limit,
                              quote=False)
            parts.append(f'{len(self.mismatched)} with a different shape '
                         f'({shown})')
        return '; '.join(parts)


class CheckpointMismatchError(ToolError):
    """The checkpoint's weights do not fit the model built from the config.

    Attributes:
        report (StateDictReport): the key-by-key comparison.
    """

    def __init__(self, message: str, report: StateDictReport):
        super().__init__(message)
        self.report = report


def _unwrap(model):
    from mmengine.model import is_model_wrapper
    return model.module if is_model_wrapper(model) else model


def compare_state_dict(model: torch.nn.Module,
                       state_dict: Dict[str, Any]) -> StateDictReport:
    """Compare ``state_dict`` with ``model.state_dict()`` without loading.

    A leading ``module.`` is stripped from checkpoint keys (as mmengine's
    ``load_checkpoint`` does), and the model's load-state-dict pre-hooks
    are run on a copy first, so conversions a model applies when loading
    (e.g. mmpretrain's ViT resizing ``pos_embed``) are taken into account.
    """
    model = _unwrap(model)
    ckpt = {re.sub(r'^module\.', '', k): v for k, v in state_dict.items()}
    scratch_missing: List[str] = []
    scratch_unexpected: List[str] = []
    scratch_errors: List[str] = []
    with _quiet():
        for name, module in model.named_modules():
            prefix = name + '.' if name else ''
            for hook in list(
                    getattr(module, '_load_state_dict_pre_hooks',
                            {}).values()):
                try:
                    hook(ckpt, prefix, {}, True, scratch_missing,
                         scratch_unexpected, scratch_errors)
                except Exception:
                    pass
    own = model.state_dict()
    matched, missing, mismatched = [], [], []
    for key, value in own.items():
        if key not in ckpt:
            missing.append(key)
            continue
        theirs = ckpt[key]
        shape = tuple(getattr(theirs, 'shape', ()))
        if shape != tuple(value.shape):
            mismatched.append((key, shape, tuple(value.shape)))
        else:
            matched.append(key)
    unexpected = [k for k in ckpt if k not in own]

    backbone_like = None
    if not matched and ckpt:
        for child, _ in model.named_children():
            hits = sum(f'{child}.{k}' in own for k in ckpt)
            if hits >= 0.9 * len(ckpt):
                backbone_like = child
                break
    return StateDictReport(matched, missing, unexpected, mismatched, len(own),
                           backbone_like)


# names of the modules that hold a class-dependent output layer
_HEAD_PREFIXES = ('head.', 'decode_head.', 'auxiliary_head.', 'bbox_head.',
                  'roi_head.', 'cls_head.', 'mask_head.')
_CLASSIFIER_LAYER = re.compile(
    r'(^|\.)(fc|fc_cls|cls|cls_score|classifier|conv_seg|conv_cls|'
    r'head)\.(weight|bias)$')


def classifier_shape_mismatches(
        report: StateDictReport) -> List[Tuple[str, tuple, tuple]]:
    """Mismatched weights that look like a classifier of another size.

    A weight qualifies when it lies in a head (``head.``, ``decode_head.``,
    ...) or is an output layer (``fc``, ``fc_cls``, ``conv_seg``, ...), and
    its shapes differ in the first (class) dimension only.

    Args:
        report (StateDictReport): From :func:`compare_state_dict`.

    Returns:
        list[tuple]: ``(key, checkpoint_shape, model_shape)``.
    """
    found = []
    for key, ckpt_shape, model_shape in report.mismatched:
        ckpt_shape, model_shape = tuple(ckpt_shape), tuple(model_shape)
        if not ckpt_shape or len(ckpt_shape) != len(model_shape):
            continue
        if ckpt_shape[1:] != model_shape[1:]:
            continue
        if key.startswith(_HEAD_PREFIXES) or _CLASSIFIER_LAYER.search(key):
            found.append((key, ckpt_shape, model_shape))
    return found


def num_classes_mismatch_lines(report: StateDictReport,
                               filename: str) -> List[str]:
    """Message lines naming a mismatched number of classes, if any.

    Example: ``number of classes differs: 'head.fc.weight' has 9 classes
    in the checkpoint (shape (9, 32)) but 2 in the model (shape (2,
    32))``, followed by the two ways out (set ``num_classes`` or load only
    the backbone).

    Args:
        report (StateDictReport): From :func:`compare_state_dict`.
        filename (str): The checkpoint, for the message.

    Returns:
        list[str]: Empty when no classifier weight differs in size.
    """
    found = classifier_shape_mismatches(report)
    if not found:
        return []
    lines = [
        f'number of classes differs: {key!r} has {a[0]} classes in the '
        f'checkpoint (shape {a}) but {b[0]} in the model (shape {b})'
        for key, a, b in found
    ]
    heads = sorted({key.split('.', 1)[0] for key, _, _ in found})
    num = found[0][1][0]
    lines.append(
        f'Set num_classes={num} in model.{heads[0]} (and in the data '
        'preprocessor / data set) to use this head, or load only the '
        "backbone with model.backbone.init_cfg=dict(type='Pretrained', "
        f"prefix='backbone.', checkpoint={filename!r}) and train a new "
        'head.')
    return lines


def _mismatch_message(filename: str, config_path: str, report: StateDictReport,
                      purpose: str) -> str:
    lines = [
        f'checkpoint {filename!r} does not match the model built from '
        f'config {config_path!r}: {report.summary()}.'
    ]
    lines += num_classes_mismatch_lines(report, filename)
    if report.backbone_like:
        child = report.backbone_like
        lines.append(
            f"Its keys are the model's {child!r} weights without the "
            f"'{child}.' prefix, i.e. a {child}-only checkpoint: load it "
            f"through model.{child}.init_cfg=dict(type='Pretrained', "
            f'checkpoint={filename!r}) instead of {purpose}.')
    else:
        lines.append(
            f'Use the config that trained this checkpoint; or, to reuse a '
            f'pretraining checkpoint in another model, extract its backbone '
            f'with `python {EXTRACT_BACKBONE} {filename} backbone.pth` and '
            "load it through model.backbone.init_cfg=dict(type='Pretrained', "
            "prefix='backbone.', checkpoint='backbone.pth').")
    return '\n'.join(lines)


def check_checkpoint(model: torch.nn.Module,
                     filename: str,
                     config_path: str,
                     strict: bool = True,
                     purpose: str = 'testing it') -> StateDictReport:
    """Check that ``filename`` fits ``model`` before it is loaded.

    The checkpoint goes through ``mmengine.runner.checkpoint._load_checkpoint``
    (mmssl's weights-only loader for local files).

    Args:
        model: the built model (a DDP wrapper is unwrapped).
        filename: checkpoint path or URL.
        config_path: the config file, for the message.
        strict: if True any missing, unexpected or differently shaped key
            is an error (testing, resuming). If False (``load_from`` for
            fine-tuning, where a new head is normal) it is an error only when
            fewer than half of the model's keys match; otherwise the report
            is logged as a warning.
        purpose: how the checkpoint was going to be used, for the message.

    Raises:
        ToolError: the checkpoint file does not exist.
        CheckpointMismatchError: see ``strict``.
    """
    from mmengine.runner.checkpoint import _load_checkpoint
    if '://' not in filename and not osp.isfile(osp.expanduser(filename)):
        raise ToolError(f'checkpoint file {filename!r} does not exist')
    with _quiet():
        checkpoint = _load_checkpoint(filename, map_location='cpu')
    if not isinstance(checkpoint, dict):
        raise ToolError(f'checkpoint {filename!r} holds a '
                        f'{type(checkpoint).__name__}, not a dict of weights')
    state_dict = checkpoint.get('state_dict', checkpoint)
    report = compare_state_dict(model, state_dict)
    if report.ok:
        return report
    severe = 2 * len(report.matched) < report.num_model_keys
    message = _mismatch_message(filename, config_path, report, purpose)
    if strict or severe:
        raise CheckpointMismatchError(message, report)
    print_log(
        message.replace('does not match', 'only partly matches', 1) +
        ' Loading the matching weights.',
        logger='current',
        level=logging.WARNING)
    return report
