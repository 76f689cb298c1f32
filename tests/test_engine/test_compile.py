# Copyright (c) mmssl contributors. All rights reserved.
"""A config's ``compile``: the Runner compiles the model's forward."""
import numpy as np
import pytest
import torch
import torch.nn as nn
from mmcv.cnn.bricks.drop import DropPath
from mmengine.config import Config

from mmssl.engine.compile import compile_forward, compile_options
from mmssl.engine.machine_cfg import build_runner
from mmssl.testing import (tiny_mae_cfg, tiny_pretrain_runner_cfg,
                           write_random_images)
from mmssl.testing.resume import own_experiment_name


def test_compile_options():
    assert compile_options(None) is None and compile_options(False) is None
    assert compile_options(True) == {}
    assert compile_options(dict(backend='eager')) == dict(backend='eager')
    with pytest.raises(TypeError, match="got 'yes'"):
        compile_options('yes')
    # a dict written as text on the command line: the error names the form
    # that works there
    with pytest.raises(TypeError, match='compile.mode=max-autotune on the'):
        compile_options("dict(mode='max-autotune')")


def test_compile_forward_casts_drop_path_rates_and_keeps_outputs():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 4), DropPath(np.float64(0.)))
    x = torch.randn(3, 4)
    eager = model(x)
    assert not compile_forward(model, False)
    assert compile_forward(model, dict(backend='eager'))
    assert type(model[1].drop_prob) is float
    assert torch.equal(model(x), eager)
    assert list(model.state_dict()) == ['0.weight', '0.bias']


def test_compile_forward_compiles_the_wrapped_module():
    """A wrapped model (DDP: ``model.module``) has its inner module's forward
    compiled, so the wrapper's own forward (DDP's gradient hooks) stays
    eager."""

    class Wrapper(nn.Module):

        def __init__(self, module):
            super().__init__()
            self.module = module

        def forward(self, x):
            return self.module(x)

    torch.manual_seed(0)
    model = Wrapper(nn.Sequential(nn.Linear(4, 4), DropPath(np.float64(0.))))
    x = torch.randn(3, 4)
    eager = model(x)
    assert compile_forward(model, dict(backend='eager'))
    assert hasattr(model.module.forward, '_torchdynamo_orig_callable')
    assert 'forward' not in vars(model)
    assert type(model.module[1].drop_prob) is float
    assert torch.equal(model(x), eager)
    torch._dynamo.reset()


def _train(tmp_path, name, compile_cfg):
    data = tmp_path / 'imgs'
    if not data.exists():
        data.mkdir()
        write_random_images(str(data))
    cfg = Config(
        tiny_pretrain_runner_cfg(tiny_mae_cfg(), str(tmp_path / name),
                                 str(data), 1))
    if compile_cfg is not None:
        cfg.compile = compile_cfg
    runner = build_runner(own_experiment_name(cfg))
    runner.train()
    return runner


def test_runner_compiles_the_forward_not_train_step(tmp_path):
    """mmengine would compile ``train_step``, which dynamo cannot trace
    through the optimizer wrapper (the run stops in its first step); the
    forward is compiled instead and trains to the eager run's weights."""
    torch._dynamo.reset()
    eager = _train(tmp_path, 'eager', None)
    compiled = _train(tmp_path, 'compiled', dict(backend='eager'))
    assert hasattr(compiled.model.forward, '_torchdynamo_orig_callable')
    assert not hasattr(compiled.model.train_step, '_torchdynamo_orig_callable')
    a, b = eager.model.state_dict(), compiled.model.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(b[k], a[k], atol=1e-5, rtol=0)


def test_runner_without_maybe_compile_is_left_alone():
    """mmengine's FlexibleRunner hands compile to its strategy."""
    from types import SimpleNamespace

    from mmssl.engine.compile import compile_forward_in_runner
    runner = SimpleNamespace(model=nn.Linear(2, 2))
    compile_forward_in_runner(runner)
    assert not hasattr(runner, '_maybe_compile')
