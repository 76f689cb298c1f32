# Copyright (c) mmssl contributors. All rights reserved.
"""Check during training that frozen weights and BN statistics stay put."""
import logging
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from torch.nn.modules.batchnorm import _BatchNorm

from mmssl.registry import HOOKS
from mmssl.utils.validation import check_int

DATA_BATCH = Optional[dict]


def frozen_state(model: nn.Module) -> Dict[str, torch.Tensor]:
    """The tensors of ``model`` that training must leave unchanged.

    * every parameter with ``requires_grad=False``;
    * the buffers (BatchNorm running statistics and ``num_batches_tracked``)
      of the frozen modules: those of ``model.frozen_modules()`` and their
      submodules when the model has that method (mmssl
      ``SubTuningClassifier``), otherwise of every module that has
      parameters, all of them frozen.

    Args:
        model (nn.Module): The model (not wrapped).

    Returns:
        dict[str, Tensor]: the live tensors (not copies) by their
        ``state_dict`` key, in ``state_dict`` order.
    """
    frozen_ids = set()
    if callable(getattr(model, 'frozen_modules', None)):
        frozen_ids = {
            id(sub)
            for module in model.frozen_modules()
            for sub in module.modules()
        }
    else:
        for module in model.modules():
            params = list(module.parameters())
            if params and not any(p.requires_grad for p in params):
                frozen_ids.add(id(module))
    wanted = {id(p) for p in model.parameters() if not p.requires_grad}
    for module in model.modules():
        if id(module) in frozen_ids:
            wanted.update(id(b) for b in module.buffers(recurse=False))
    return {
        key: value
        for key, value in model.state_dict(keep_vars=True).items()
        if id(value) in wanted
    }


@HOOKS.register_module()
class FrozenModuleCheckHook(Hook):
    """Fail as soon as a frozen parameter or BN statistic changes.

    A debugging hook for partly frozen models such as mmssl
    ``SubTuningClassifier`` (spec: frozen blocks keep their pretrained
    weights and BatchNorm statistics). At the first training iteration of a
    run (so after ``load_from`` / ``--resume`` have loaded their weights) it
    copies every frozen tensor (see :func:`frozen_state`: the parameters
    with ``requires_grad=False`` and the buffers of the frozen modules, the
    Siamese frozen backbone included); after every ``interval`` training
    iterations, and after the last one, it compares them bit for bit and
    raises an error that names the first key (in ``state_dict`` order) that
    moved, how many moved, and the frozen BatchNorm layers found in train
    mode (the usual cause: a ``train()`` override or a hook that switched
    them back).

    The copies stay on the model's device and take as much memory as the
    frozen tensors. The model may be wrapped (DDP): the hook reads
    ``runner.model.module``.

    Args:
        interval (int): Check every ``interval`` training iterations.
            Defaults to 1.

    Example:
        >>> custom_hooks = [dict(type='mmssl.FrozenModuleCheckHook')]
    """

    priority = 'LOWEST'

    def __init__(self, interval: int = 1) -> None:
        self.interval = check_int(interval, 'interval', type(self).__name__)
        self._reference: Optional[Dict[str, torch.Tensor]] = None

    @staticmethod
    def _model(runner) -> nn.Module:
        model = runner.model
        return model.module if is_model_wrapper(model) else model

    def before_train(self, runner) -> None:
        """Forget the copies of a previous run; record them anew."""
        self._reference = None

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Loaded weights replace the frozen ones: record them anew."""
        self._reference = None

    def before_train_iter(self,
                          runner,
                          batch_idx: int,
                          data_batch: DATA_BATCH = None) -> None:
        """Copy the frozen tensors at the first iteration of a run."""
        if self._reference is not None:
            return
        state = frozen_state(self._model(runner))
        self._reference = {k: v.detach().clone() for k, v in state.items()}
        if not state:
            print_log(
                f'{type(self).__name__}: the model has no frozen parameter '
                'or module; nothing to check',
                logger='current',
                level=logging.WARNING)

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch: DATA_BATCH = None,
                         outputs: Optional[Sequence] = None) -> None:
        """Compare the frozen tensors with their copies.

        Raises:
            RuntimeError: a frozen tensor changed (or disappeared).
        """
        if self._reference is None:
            return
        if not (self.every_n_train_iters(runner, self.interval)
                or self.is_last_train_iter(runner)):
            return
        self.check(self._model(runner), runner.iter + 1)

    def check(self, model: nn.Module, iteration: int) -> None:
        """Compare ``model``'s frozen tensors with the recorded copies.

        Args:
            model (nn.Module): The (unwrapped) model.
            iteration (int): The iteration count, for the message.

        Raises:
            RuntimeError: a recorded tensor changed, or the model has no
                tensor of that name any more.
        """
        params = dict(model.named_parameters())
        live = dict(params, **dict(model.named_buffers()))
        moved: List[Tuple[str, str]] = []
        for key, ref in self._reference.items():
            value = live.get(key)
            if value is None:
                moved.append((key, 'is gone from the model'))
            elif value.shape != ref.shape:
                moved.append((key, f'changed shape {tuple(ref.shape)} -> '
                              f'{tuple(value.shape)}'))
            elif not torch.equal(value.detach(), ref):
                diff = (value.detach().double() - ref.double()).abs().max()
                moved.append((key, f'changed by up to {diff.item():.3g}'))
        if not moved:
            return
        key, how = moved[0]
        kind = 'parameter' if key in params else 'buffer'
        message = (f'{type(self).__name__}: frozen {kind} {key} {how} at '
                   f'training iteration {iteration}; {len(moved)} of '
                   f'{len(self._reference)} frozen tensors moved')
        training_bn = [
            name for name, module in model.named_modules()
            if isinstance(module, _BatchNorm) and module.training and any(
                f'{name}.{b}' in self._reference
                for b, _ in module.named_buffers(recurse=False))
        ]
        if training_bn:
            shown = ', '.join(training_bn[:5])
            more = '' if len(training_bn) <= 5 else \
                f' and {len(training_bn) - 5} more'
            message += (f'. Frozen BatchNorm layers in train mode (their '
                        f'running statistics update): {shown}{more}')
        elif kind == 'parameter':
            message += ('. Frozen weights get no gradient, so something '
                        'else wrote it: a hook, an EMA update, an in-place '
                        'operation, or a gradient set by hand')
        raise RuntimeError(message)
