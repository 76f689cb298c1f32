# Copyright (c) mmssl contributors. All rights reserved.
"""Checkpoint helpers for tests: a module saved as a model checkpoint's
backbone, and the check that ``init_cfg=dict(type='Pretrained', ...)``
loads it."""
import os.path as osp
from typing import Callable

import torch
import torch.nn as nn

__all__ = ['save_as_backbone', 'assert_init_cfg_loads']


def save_as_backbone(module: nn.Module,
                     path: str,
                     prefix: str = 'backbone.') -> str:
    """Save ``module``'s weights as a checkpoint ``{'state_dict':
    {prefix + key: value}}`` (the layout mmengine runners write); returns
    ``path``."""
    torch.save(
        dict(state_dict={
            prefix + k: v
            for k, v in module.state_dict().items()
        }), path)
    return path


def assert_init_cfg_loads(build: Callable[..., nn.Module],
                          folder: str) -> None:
    """``build(init_cfg=...)`` then ``init_weights()`` holds exactly the
    weights of another ``build()`` saved under ``backbone.`` (and did not
    before ``init_weights()``).

    Args:
        build (callable): makes the module; takes ``init_cfg`` as a keyword.
        folder (str): where the checkpoint is written.
    """
    source = build()
    path = save_as_backbone(source, osp.join(str(folder), 'backbone.pth'))
    module = build(
        init_cfg=dict(type='Pretrained', checkpoint=path, prefix='backbone.'))
    assert any(not torch.equal(module.state_dict()[k], v)
               for k, v in source.state_dict().items()), (
                   'two builds have the same weights: nothing would show '
                   'that init_weights() loaded the checkpoint')
    module.init_weights()
    loaded = module.state_dict()
    for key, value in source.state_dict().items():
        assert torch.equal(
            loaded[key],
            value), (f'{key} differs from the checkpoint after init_weights()')
