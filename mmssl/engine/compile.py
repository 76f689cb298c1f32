# Copyright (c) mmssl contributors. All rights reserved.
"""``compile=...`` of a config: what ``torch.compile`` compiles in mmssl.

mmengine's Runner applies a config's ``compile`` to ``model.train_step``.
With torch 2.14 dynamo cannot trace mmengine's optimizer wrapper inside it:
``tools/train.py CONFIG --cfg-options compile=True`` stops in the first
step with ``InternalTorchDynamoError: 'UserDefinedDictVariable' object has
no attribute 'items'`` (reading the optimizer's ``param_groups``). mmssl
compiles the model's forward pass instead (data preprocessing and the
optimizer update stay eager; backward runs through the compiled graph's
autograd function), in the Runner (:func:`compile_forward_in_runner`, set
up by ``build_runner``) and in the benchmark tools alike. The module tree,
and so every checkpoint key, stays as it is.
"""
import types
from typing import Optional

import torch
import torch.nn as nn

from mmssl.models.utils.drop_path import python_drop_path_rates

__all__ = ['compile_options', 'compile_forward', 'compile_forward_in_runner']


def compile_options(compile_cfg) -> Optional[dict]:
    """A config's ``compile`` as ``torch.compile`` options, None if off.

    Raises:
        TypeError: not a bool or a dict, naming the value.
    """
    if compile_cfg is None or compile_cfg is False:
        return None
    if compile_cfg is True:
        return dict()
    if not isinstance(compile_cfg, dict):
        raise TypeError(f'compile must be a bool or a dict of torch.compile '
                        f'options (e.g. compile=dict(mode=\'max-autotune\') '
                        f'in a config, compile.mode=max-autotune on the '
                        f'command line), got {compile_cfg!r}')
    return dict(compile_cfg)


def compile_forward(model: nn.Module, compile_cfg) -> bool:
    """Compile ``model.forward`` with the options of ``compile_cfg``.

    The model's drop-path rates become Python floats first
    (:func:`python_drop_path_rates`: mmpretrain's NumPy rates would break
    the graph at every block). A wrapped model (DDP) has its inner module's
    forward compiled.

    Returns:
        bool: Whether anything was compiled.
    """
    options = compile_options(compile_cfg)
    if options is None:
        return False
    module = getattr(model, 'module', model)
    python_drop_path_rates(module)
    module.forward = torch.compile(module.forward, **options)
    return True


def compile_forward_in_runner(runner) -> None:
    """Make ``runner`` compile the model's forward, not ``train_step``.

    Replaces the runner's ``_maybe_compile`` (mmengine calls it with
    ``'train_step'`` when ``train()`` starts) by :func:`compile_forward` on
    ``runner.model`` with the config's ``compile`` options. A runner
    without that method (mmengine's ``FlexibleRunner`` hands ``compile`` to
    its strategy) is left as it is.
    """
    original = getattr(runner, '_maybe_compile', None)
    if original is None:
        return

    def _maybe_compile(self, target: str) -> None:
        if target != 'train_step':
            return original(target)
        if compile_forward(self.model, self.cfg.get('compile', None)):
            self.logger.info('The model\'s forward has been compiled '
                             '(torch.compile); the first steps will be slow.')

    runner._maybe_compile = types.MethodType(_maybe_compile, runner)
