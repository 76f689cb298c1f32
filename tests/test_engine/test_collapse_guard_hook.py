# Copyright (c) mmssl contributors. All rights reserved.
"""mmssl.CollapseGuardHook: stop a collapsed teacher-student run."""
from types import SimpleNamespace

import pytest
import torch

from mmssl.registry import HOOKS


def _run(hook, it, **outputs):
    runner = SimpleNamespace(iter=it)
    outputs = {k: torch.tensor(v) for k, v in outputs.items()}
    hook.after_train_iter(runner, 0, None, outputs)


def test_stops_only_after_the_warm_period_and_below_the_limits():
    hook = HOOKS.build(
        dict(
            type='mmssl.CollapseGuardHook',
            min_target_std=0.1,
            min_pred_std=0.01,
            after_iters=10))
    # collapsed but within the first 10 updates: no check yet
    _run(hook, 9, target_std=0.0, pred_std=0.0)
    # healthy after 11 updates, also just above the limits
    _run(hook, 10, target_std=0.5, pred_std=0.2)
    _run(hook, 10, target_std=0.11, pred_std=0.011)
    with pytest.raises(
            RuntimeError, match=r'target_std = 0.05 < 0.1 after 11'):
        _run(hook, 10, target_std=0.05, pred_std=0.2)
    with pytest.raises(RuntimeError, match=r'pred_std = 0.005 < 0.01'):
        _run(hook, 10, target_std=0.5, pred_std=0.005)
    # logs without the keys (another model) are left alone
    _run(hook, 10, loss=1.0)


def test_zero_disables_a_check_and_bad_settings_are_named():
    hook = HOOKS.build(
        dict(
            type='mmssl.CollapseGuardHook',
            min_target_std=0.,
            min_pred_std=0.01,
            after_iters=0))
    _run(hook, 0, target_std=0.0, pred_std=0.5)
    with pytest.raises(RuntimeError, match='pred_std'):
        _run(hook, 0, target_std=0.0, pred_std=0.0)
    with pytest.raises(ValueError, match='min_target_std'):
        HOOKS.build(dict(type='mmssl.CollapseGuardHook', min_target_std=-1))
    with pytest.raises(ValueError, match='after_iters'):
        HOOKS.build(dict(type='mmssl.CollapseGuardHook', after_iters=-1))
