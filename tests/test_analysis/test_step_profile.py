# Copyright (c) mmssl contributors. All rights reserved.
"""The training-step profiler: families, phases, the tool; the graph-break
and recompilation counts on toy models."""
import contextlib
import inspect
import itertools
from types import SimpleNamespace

import pytest
import torch
import torch.nn as nn
from mmengine.config import Config

import mmssl.analysis.step_profile as step_profile
from mmssl.analysis.step_profile import (PHASES, explain_graph_breaks,
                                         format_profile, op_family,
                                         profile_train_step, time_phases)

MAE_TINY = 'configs/mae/mae_vit-tiny-p8_1xb64-coslr-30e_embedded.py'


@pytest.mark.parametrize('name,family', [
    ('aten::addmm', 'matmul'),
    ('aten::mm', 'matmul'),
    ('sm90_xmma_gemm_bf16bf16_bf16f32', 'matmul'),
    ('aten::_scaled_dot_product_flash_attention_for_cpu', 'attention'),
    ('aten::_softmax', 'attention'),
    ('aten::_fused_adamw_', 'optimizer'),
    ('aten::_foreach_mul_', 'optimizer'),
    ('aten::native_layer_norm_backward', 'norm'),
    ('aten::gelu_backward', 'activation'),
    ('aten::copy_', 'copy / cast'),
    ('aten::contiguous', 'copy / cast'),
    ('aten::add_', 'elementwise'),
    ('aten::nonsense', 'other'),
])
def test_op_family(name, family):
    assert op_family(name) == family


def test_profile_of_a_tiny_mae_step():
    res = profile_train_step(
        MAE_TINY, batch_size=2, steps=1, warmup=1, threads=1, top=5)
    assert res['time_kind'] == 'cpu' and res['batch_size'] == 2
    assert abs(sum(res['families'].values()) - 100.) < 1e-6
    assert res['families']['matmul'] > 10.
    pcts = [r['pct'] for r in res['ops']]
    assert len(pcts) == 5 and pcts == sorted(pcts, reverse=True)
    assert set(res['phase_ms']) == set(PHASES)
    assert all(v > 0 for v in res['phase_ms'].values())
    text = '\n'.join(format_profile(res))
    assert 'families: matmul' in text or 'matmul' in text.splitlines()[1]


def test_profile_numbers_are_per_step():
    """Over 2 profiled steps: the listed self times add up to the step time,
    each share is its part of it, and an operator run once per step (the
    pixel loss, the optimizer step) counts 1 call."""
    res = profile_train_step(
        MAE_TINY, batch_size=2, steps=2, warmup=0, threads=1, top=10**6)
    ops = {r['name']: r for r in res['ops']}
    assert sum(r['self_ms'] for r in res['ops']) == pytest.approx(
        res['step_ms'], rel=1e-6)
    for r in res['ops']:
        assert r['pct'] == pytest.approx(
            100. * r['self_ms'] / res['step_ms'], rel=1e-6)
    assert ops['aten::mse_loss']['calls'] == 1
    assert all(r['self_ms'] > 0 for r in res['ops'])  # no idle operators
    shares = list(res['families'].values())
    assert shares == sorted(shares, reverse=True)
    assert ops['Optimizer.step#AdamW.step']['calls'] == 1


def test_time_phases_splits_each_step_and_averages(monkeypatch):
    """With a clock that advances 1, 2, 3 and 4 ms across the phases of
    every step (and 100 ms between steps), each phase is its own time per
    step, in order."""
    calls = []
    model = SimpleNamespace(
        data_preprocessor=lambda data, training: calls.append(
            ('pre', training)) or data,
        _run_forward=lambda batch, mode: calls.append(mode) or dict(loss=1.),
        parse_losses=lambda losses: (losses['loss'], {}))
    optim_wrapper = SimpleNamespace(
        optim_context=lambda model: contextlib.nullcontext(),
        backward=lambda loss: calls.append('backward'),
        step=lambda: calls.append('step'),
        zero_grad=lambda: calls.append('zero_grad'))
    clock = itertools.accumulate(itertools.cycle([.1, .001, .002, .003, .004]))
    monkeypatch.setattr(step_profile, 'time',
                        SimpleNamespace(perf_counter=lambda: next(clock)))
    ms = time_phases(model, optim_wrapper, {}, 3, torch.device('cpu'))
    assert list(ms) == list(PHASES)
    assert [ms[p] for p in PHASES] == pytest.approx([1., 2., 3., 4.])
    assert calls == [('pre', True), 'loss', 'backward', 'step', 'zero_grad'
                     ] * 3


def test_defaults_and_config_names():
    params = inspect.signature(profile_train_step).parameters
    assert {
        k: params[k].default
        for k in ('batch_size', 'steps', 'warmup', 'device', 'threads', 'top',
                  'seed')
    } == dict(
        batch_size=None,
        steps=3,
        warmup=3,
        device='cpu',
        threads=None,
        top=15,
        seed=0)
    params = inspect.signature(explain_graph_breaks).parameters
    assert {
        k: params[k].default
        for k in ('batch_size', 'seed', 'steps')
    } == dict(
        batch_size=2, seed=0, steps=3)
    assert step_profile._cfg_name(Config(dict(a=1))) == 'config'
    assert step_profile._cfg_name(Config.fromfile(MAE_TINY)).endswith(MAE_TINY)


def test_format_profile_columns():
    result = dict(
        time_kind='cpu',
        step_ms=12.34,
        batch_size=4,
        compiled=True,
        families={
            'matmul': 75.,
            'other': 25.
        },
        phase_ms={
            'forward': 4.,
            'backward': 8.
        },
        ops=[
            dict(
                name='aten::mm',
                family='matmul',
                self_ms=9.5,
                pct=75.,
                calls=3.),
            dict(
                name='x' * 100,
                family='other',
                self_ms=3.085,
                pct=25.,
                calls=1.),
        ])
    lines = format_profile(result)
    assert lines[:3] == [
        'self cpu time per step 12.3 ms (batch 4, compiled)',
        'families: matmul 75.0 %, other 25.0 %',
        'phases (ms/step, timed apart): forward 4.0, backward 8.0'
    ]
    width = 70  # names are cut at 70 characters
    assert lines[3] == ('operator'.ljust(width) + '  ' + 'family'.ljust(12) +
                        ' ' + 'ms/step'.rjust(8) + ' ' + '%'.rjust(6) + ' ' +
                        'calls'.rjust(6))
    assert lines[4] == ('aten::mm'.ljust(width) + '  ' + 'matmul'.ljust(12) +
                        ' ' + '9.50'.rjust(8) + ' ' + '75.0'.rjust(6) + ' ' +
                        '3'.rjust(6))
    assert lines[5].startswith('x' * 70 + '  other ')
    short = format_profile(dict(result, ops=result['ops'][:1], compiled=False))
    assert short[0].endswith('(batch 4)')
    assert short[3].startswith('operator  family ')  # at least 8 wide
    assert short[4].startswith('aten::mm  matmul ')


def test_counted_events():
    cpu, cuda = torch.autograd.DeviceType.CPU, torch.autograd.DeviceType.CUDA

    def event(key, us, kind=cpu):
        return SimpleNamespace(key=key, t=us, device_type=kind)

    averages = [
        event('aten::mm', 5),
        event('aten::view', 0),
        event('ProfilerStep#3', 9),
        event('sm90_gemm', 4, cuda),
        event('idle_kernel', 0, cuda),
        SimpleNamespace(key='no_time'),
    ]
    counted = step_profile._counted_events
    assert [e.key for e in counted(averages, 't', False)
            ] == ['aten::mm', 'sm90_gemm']
    assert [e.key for e in counted(averages, 't', True)] == ['sm90_gemm']
    assert [e.key for e in counted([event('a', 1)], 't', False)] == ['a']


def test_is_kernel():
    kernel = SimpleNamespace(device_type=torch.autograd.DeviceType.CUDA)
    operator = SimpleNamespace(device_type=torch.autograd.DeviceType.CPU)
    assert step_profile._is_kernel(kernel)
    assert not step_profile._is_kernel(operator)
    assert not step_profile._is_kernel(SimpleNamespace())


def _scalar(x):
    return x.sum().item()  # the one place the graph breaks


class _ToyModel(nn.Module):
    """Breaks twice at the same place, or (``recompile``) specialises on a
    Python int that every forward changes."""

    def __init__(self, recompile):
        super().__init__()
        self.linear = nn.Linear(4, 4)
        self.recompile = recompile
        self.calls = 0

    def data_preprocessor(self, data, training):
        assert training, 'batches are prepared as for training'
        return data

    def forward(self, inputs, data_samples=None, mode='loss'):
        x = self.linear(inputs)
        if self.recompile:
            self.calls += 1
            return dict(loss=(x * self.calls).sum())
        _scalar(x)
        _scalar(x + 1)
        return dict(loss=x.sum())


@pytest.fixture
def toy(monkeypatch):
    """explain_graph_breaks on a _ToyModel; records the batch seeds."""
    seeds = []

    def batch(cfg, batch_size, seed):
        seeds.append(seed)
        return dict(inputs=torch.randn(batch_size, 4))

    def explain(recompile, **kwargs):
        monkeypatch.setattr(
            step_profile, 'build_train_model', lambda cfg, device:
            (_ToyModel(recompile), None, None))
        monkeypatch.setattr(step_profile, 'make_synthetic_batch', batch)
        seeds.clear()
        return explain_graph_breaks(dict(), **kwargs)

    explain.seeds = seeds
    return explain


def test_graph_breaks_are_counted_once_per_place(toy):
    """Breaks at the same line of a helper (``Tensor.item()``, called
    twice): one graph more than breaks, one reason located in the helper
    (the innermost frame), no recompilation; every compiled step gets a
    fresh batch (seed, seed + 1, ...)."""
    res = toy(False, seed=5, steps=3)
    assert res['breaks'] >= 2 and res['graphs'] == res['breaks'] + 1
    assert res['recompiles'] == 0
    assert len(res['reasons']) == 1
    # the first line of dynamo's message only
    assert res['reasons'][0]['reason'].startswith('Unsupported Tensor.item()')
    assert 'in _scalar' in res['reasons'][0]['where']
    assert res['recompile_reasons'] == []
    assert toy.seeds == [5, 5, 6, 7]


@pytest.mark.parametrize('steps', [3, 4])
def test_recompilations_after_the_first_step_are_counted(toy, steps):
    """A Python int that changes every forward: one graph per step, every
    step after the first a recompilation, one guard named once with its
    value elided."""
    res = toy(True, steps=steps)
    assert (res['graphs'], res['breaks']) == (1, 0)
    assert res['recompiles'] == steps - 1
    assert res['recompile_reasons'] == ['self.calls == <int>']
