# Copyright (c) mmssl contributors. All rights reserved.
"""Merge the checkpoints of SubTuning tasks into one multi-task file.

Tasks finetuned with :class:`~mmssl.models.SubTuningClassifier` from the
same pretrained backbone share every block outside their
``trainable_blocks``. The merged file holds that frozen trunk once and each
task's own blocks, neck and head, so it is about ``trunk + T * (tuned
blocks + head)`` instead of ``T * (trunk + head)``:

* ``state_dict``: :meth:`MultiTaskSubTuning.merged_state_dict`, keys
  ``trunk.*`` (less the blocks every task tunes) and ``branches.<i>.*``
  (``blocks.<block name with '-' for '.'>.*``, ``params.*``, ``neck.*``,
  ``head.*``);
* ``meta['multitask']``: ``model`` (the :class:`MultiTaskSubTuning` config
  with each task as ``dict(model=<its SubTuningClassifier config>)``,
  ``Pretrained`` ``init_cfg`` removed, and ``check_trunk=False``),
  ``default_scope`` (the registry scope of the task configs),
  ``unused_trunk_keys`` and ``tasks`` (name, config, checkpoint, trainable
  blocks, number of classes of each task).

:meth:`MultiTaskSubTuning.from_checkpoint` rebuilds the model from the file
alone; :func:`verify_multitask` checks that it predicts what every task
model predicts.
"""
import copy
import os.path as osp
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Union

import torch
from mmengine.config import Config, ConfigDict
from mmengine.registry import DefaultScope
from mmengine.runner.checkpoint import _load_checkpoint

from .checkpoint import ConversionError, split_checkpoint

__all__ = [
    'SubTuningTask', 'load_subtuning_task', 'merge_subtuning_tasks',
    'save_multitask_checkpoint', 'strip_pretrained', 'tensor_bytes',
    'verify_multitask'
]


class SubTuningTask(NamedTuple):
    """One task of a merge, loaded.

    Attributes:
        name (str): the task's name (the key of its outputs).
        config (str): where its config came from.
        checkpoint (str): its trained checkpoint.
        model (SubTuningClassifier): the model with the checkpoint loaded,
            in eval mode.
        model_cfg (dict): its model config as plain dicts, without
            ``Pretrained`` ``init_cfg``.
        scope (str): the registry scope of its config.
    """
    name: str
    config: str
    checkpoint: str
    model: Any
    model_cfg: dict
    scope: str


def tensor_bytes(state_dict: Dict[str, torch.Tensor]) -> int:
    """Bytes of the tensors of a state dict."""
    return sum(v.numel() * v.element_size() for v in state_dict.values()
               if isinstance(v, torch.Tensor))


def _plain(value: Any) -> Any:
    """Config dicts as plain dicts (what a weights-only load reads)."""
    if isinstance(value, (ConfigDict, dict)):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    return value


def _is_pretrained(init_cfg: Any) -> bool:
    return isinstance(
        init_cfg,
        dict) and init_cfg.get('type') in ('Pretrained', 'PretrainedInit')


def strip_pretrained(cfg: Any) -> Any:
    """Remove ``Pretrained`` ``init_cfg`` (and ``pretrained=``) anywhere in
    a model config: the weights come from the merged file."""
    if isinstance(cfg, dict):
        out = {}
        for key, value in cfg.items():
            if key == 'pretrained':
                continue
            if key == 'init_cfg':
                if _is_pretrained(value):
                    continue
                if isinstance(value, (list, tuple)):
                    value = [v for v in value if not _is_pretrained(v)]
                    if not value:
                        continue
            out[key] = strip_pretrained(value)
        return out
    if isinstance(cfg, (list, tuple)):
        return type(cfg)(strip_pretrained(v) for v in cfg)
    return cfg


def _load_cfg(config: Union[str, Config, dict]) -> Config:
    if isinstance(config, Config):
        return config
    if isinstance(config, dict):
        return Config(config)
    from mmssl.utils.config import read_config
    return read_config(config)


def _fit_error(state_dict: Dict[str, torch.Tensor], model: torch.nn.Module,
               where: str) -> Optional[ConversionError]:
    """An error naming the first key of ``state_dict`` that does not fit
    ``model`` (missing, unexpected or of another shape); None if all fit."""
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    shapes = [
        k for k in own
        if k in state_dict and state_dict[k].shape != own[k].shape
    ]
    if shapes:
        key = shapes[0]
        what = (f'{key!r} has shape {tuple(state_dict[key].shape)} in the '
                f'checkpoint but {tuple(own[key].shape)} in the model')
    elif missing:
        what = f'{missing[0]!r} is missing from the checkpoint'
    elif unexpected:
        what = f'{unexpected[0]!r} in the checkpoint is not in the model'
    else:
        return None
    return ConversionError(
        f'{where} does not fit its config: {what} ({len(shapes)} of '
        f'another shape, {len(missing)} missing, {len(unexpected)} '
        'unexpected)')


def load_subtuning_task(name: str, config: Union[str, Config, dict],
                        checkpoint: str) -> SubTuningTask:
    """Build a task's SubTuningClassifier and load its checkpoint.

    The model is built from ``cfg.model`` in the config's registry scope,
    with the config's top-level ``data_preprocessor`` when the model has
    none (as the Runner does) and without ``Pretrained`` ``init_cfg``.

    Args:
        name (str): The task's name.
        config (str | Config | dict): Its training config.
        checkpoint (str): Its trained checkpoint (``state_dict`` with the
            classifier's keys ``backbone.*``, ``neck.*``, ``head.*``).

    Returns:
        SubTuningTask: the loaded task.

    Raises:
        ConversionError: the config's model is not a SubTuningClassifier,
            the checkpoint does not exist, or its weights do not fit the
            model (the message names the first offending key).
    """
    from mmssl.models.classifiers.subtuning import SubTuningClassifier
    from mmssl.registry import MODELS
    from mmssl.utils.config import default_scope_of
    where = config if isinstance(config, str) else f'the config of {name!r}'
    cfg = _load_cfg(config)
    if 'model' not in cfg:
        raise ConversionError(f'task {name!r}: {where} has no model')
    model_cfg = _plain(cfg.model)
    if model_cfg.get('data_preprocessor') is None and cfg.get(
            'data_preprocessor') is not None:
        model_cfg['data_preprocessor'] = _plain(cfg.data_preprocessor)
    model_cfg = strip_pretrained(model_cfg)
    scope = default_scope_of(cfg)
    with DefaultScope.overwrite_default_scope(scope):
        model = MODELS.build(copy.deepcopy(model_cfg))
    if not isinstance(model, SubTuningClassifier):
        raise ConversionError(
            f'task {name!r}: {where} builds a {type(model).__name__} '
            f"(model.type={model_cfg.get('type')!r}); each task must be a "
            "SubTuningClassifier config (type='mmssl.SubTuningClassifier' "
            'with trainable_blocks), whose frozen blocks are the shared '
            'trunk')
    if '://' not in checkpoint and not osp.isfile(checkpoint):
        raise ConversionError(
            f'task {name!r}: checkpoint file {checkpoint!r} does not exist')
    state_dict, _, _ = split_checkpoint(
        _load_checkpoint(checkpoint, map_location='cpu'))
    error = _fit_error(state_dict, model,
                       f'task {name!r}: checkpoint {checkpoint!r}')
    if error is not None:
        raise error
    model.load_state_dict(state_dict, strict=True)
    return SubTuningTask(name, where, checkpoint, model.eval(), model_cfg,
                         scope)


def merge_subtuning_tasks(tasks: Sequence[SubTuningTask],
                          converted_by: str = 'mmssl.converters') -> tuple:
    """Build the multi-task model of loaded tasks and its merged file.

    Args:
        tasks (list[SubTuningTask]): From :func:`load_subtuning_task`.
        converted_by (str): Recorded in ``meta``.

    Returns:
        tuple: ``(model, checkpoint)``: the :class:`MultiTaskSubTuning` of
        the tasks and the ``{'meta': ..., 'state_dict': ...}`` to save.

    Raises:
        ConversionError: no task, repeated names, task configs of different
            registry scopes, or tasks that do not share a frozen trunk (the
            message names the first differing key, as
            :class:`MultiTaskSubTuning` does).
    """
    from mmssl.models.classifiers.subtuning_multitask import (
        MERGED_META_KEY, MultiTaskSubTuning)
    from mmssl.version import __version__
    if not tasks:
        raise ConversionError('give at least one task')
    names = [t.name for t in tasks]
    if len(set(names)) != len(names):
        raise ConversionError(f'task names must be distinct, got {names}')
    scopes = {t.scope for t in tasks}
    if len(scopes) > 1:
        raise ConversionError(
            'the task configs work in different registry scopes '
            f'(default_scope {sorted(scopes)}); give them one')
    try:
        model = MultiTaskSubTuning([t.model for t in tasks], task_names=names)
    except ValueError as err:
        raise ConversionError(str(err)) from err
    cfg = dict(
        type='mmssl.MultiTaskSubTuning',
        tasks=[dict(model=t.model_cfg) for t in tasks],
        task_names=names,
        check_trunk=False)
    meta = {
        MERGED_META_KEY:
        dict(
            model=cfg,
            default_scope=tasks[0].scope,
            unused_trunk_keys=model.unused_trunk_keys(),
            tasks=[
                dict(
                    name=t.name,
                    config=t.config,
                    checkpoint=t.checkpoint,
                    trainable_blocks=list(t.model.trainable_blocks),
                    num_classes=getattr(t.model.head, 'num_classes', None))
                for t in tasks
            ]),
        'converted_by':
        converted_by,
        'mmssl_version':
        __version__,
    }
    return model, dict(meta=meta, state_dict=model.merged_state_dict())


def save_multitask_checkpoint(
        tasks: Sequence[SubTuningTask],
        out: str,
        converted_by: str = 'mmssl.converters') -> Dict[str, Any]:
    """Merge loaded tasks and write the merged file atomically.

    Args:
        tasks (list[SubTuningTask]): From :func:`load_subtuning_task`.
        out (str): The merged checkpoint to write.
        converted_by (str): Recorded in ``meta``.

    Returns:
        dict: ``model`` (the :class:`MultiTaskSubTuning`), ``meta``,
        ``merged_file_bytes`` / ``task_file_bytes`` (file sizes; a runner
        checkpoint also holds the optimizer state), ``merged_weight_bytes``
        / ``task_weight_bytes`` (tensor bytes of the weights) and
        ``num_tensors``.
    """
    from mmssl.utils.checkpoint_save import atomic_save_checkpoint
    model, checkpoint = merge_subtuning_tasks(tasks, converted_by)
    atomic_save_checkpoint(checkpoint, out)

    def size(path):
        return osp.getsize(path) if osp.isfile(path) else None

    return dict(
        model=model,
        meta=checkpoint['meta'],
        num_tensors=len(checkpoint['state_dict']),
        merged_file_bytes=size(out),
        task_file_bytes={t.name: size(t.checkpoint)
                         for t in tasks},
        merged_weight_bytes=tensor_bytes(checkpoint['state_dict']),
        task_weight_bytes={
            t.name: tensor_bytes(t.model.state_dict())
            for t in tasks
        })


def verify_multitask(merged: Union[str, Any],
                     tasks: Sequence[SubTuningTask],
                     batch_size: int = 2,
                     img_size: Optional[int] = None,
                     atol: float = 1e-6,
                     seed: int = 0) -> Dict[str, Dict[str, float]]:
    """Check that a merged model predicts what every task model predicts.

    On one random batch of preprocessed images (``(batch_size, 3, H, W)``
    standard normal values), the logits of the reloaded
    :class:`MultiTaskSubTuning` (per-branch and ``batch_branches``
    forwards) are compared with each task model's.

    Args:
        merged (str | MultiTaskSubTuning): The merged file (reloaded with
            :meth:`MultiTaskSubTuning.from_checkpoint`, so nothing but the
            file is used) or a built model.
        tasks (list[SubTuningTask]): The task models.
        batch_size (int): Images in the batch. Defaults to 2.
        img_size (int, optional): H = W; the first task's
            ``backbone.img_size`` if None, else 64.
        atol (float): Largest absolute difference allowed. Defaults to
            1e-6.
        seed (int): Seed of the batch.

    Returns:
        dict: ``{'branches' | 'batch_branches': {task name: max abs
        difference}}``.

    Raises:
        ConversionError: a task's outputs differ by more than ``atol`` (the
            message names the task and the difference), or the merged
            model lacks a task.
    """
    from mmssl.models.classifiers.subtuning_multitask import MultiTaskSubTuning
    model = MultiTaskSubTuning.from_checkpoint(merged) if isinstance(
        merged, str) else merged
    if img_size is None:
        img_size = tasks[0].model_cfg.get('backbone', {}).get('img_size', 64)
    if isinstance(img_size, (list, tuple)):
        img_size = img_size[0]
    gen = torch.Generator().manual_seed(seed)
    inputs = torch.randn(
        batch_size, 3, int(img_size), int(img_size), generator=gen)
    diffs: Dict[str, Dict[str, float]] = {}
    batch_branches = model.batch_branches
    with torch.inference_mode():
        expected = {t.name: t.model(inputs, mode='tensor') for t in tasks}
        for mode, batched in (('branches', False), ('batch_branches', True)):
            model.batch_branches = batched
            got = model(inputs, mode='tensor')
            diffs[mode] = {}
            for name, want in expected.items():
                if name not in got:
                    raise ConversionError(
                        f'the merged model has no task {name!r} (tasks: '
                        f'{list(got)})')
                diffs[mode][name] = float((got[name] - want).abs().max())
    model.batch_branches = batch_branches
    bad: List[str] = [
        f'{name} ({mode}: {d:.3g})' for mode, per in diffs.items()
        for name, d in per.items() if not d <= atol
    ]
    if bad:
        raise ConversionError(
            'the merged model does not reproduce the task models: largest '
            f'absolute logit difference above atol={atol:g} for ' +
            ', '.join(bad))
    return diffs
