# Copyright (c) mmssl contributors. All rights reserved.
"""The multi-task benchmark's parts by hand: input sizes, placements, the
perturbation of the tuned blocks, byte counts, and the rows' arithmetic on
a fake clock and a fake memory meter."""
import inspect
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from mmssl.analysis import multitask_benchmark as mb

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
TINY = osp.join(
    ROOT, 'configs/subtuning/'
    'subtuning_resnet18-tiny-simclr_1xb64-coslr-10e_embedded.py')
MIB = 2**20


def test_defaults():
    params = inspect.signature(mb.benchmark_multitask).parameters
    assert {
        k: params[k].default
        for k in ('task_counts', 'blocks', 'batch_size', 'img_size', 'iters',
                  'warmup', 'repeat', 'seed', 'pretrained', 'arms')
    } == dict(
        task_counts=(1, 2, 4, 8),
        blocks=('layer4.1', ),
        batch_size=8,
        img_size=None,
        iters=5,
        warmup=2,
        repeat=5,
        seed=0,
        pretrained=False,
        arms=mb.ARMS)
    params = inspect.signature(mb.make_subtuning_tasks).parameters
    assert (params['seed'].default, params['noise'].default,
            params['pretrained'].default) == (0, 0.1, False)
    assert inspect.signature(
        mb.task_block_sets).parameters['seed'].default == 0


def _cfg(backbone=None, **loaders):
    return Config(dict(model=dict(backbone=backbone or {}), **loaders))


def _loader(*pipeline):
    return dict(dataset=dict(pipeline=list(pipeline)))


def test_input_size_sources():
    assert mb.input_size(_cfg(dict(img_size=[96, 128]))) == 96
    assert mb.input_size(_cfg(dict(img_size=80))) == 80
    # scope-prefixed types; a size step without its size is skipped
    assert mb.input_size(
        _cfg(
            train_dataloader=_loader(
                dict(type='LoadImageFromFile'),
                dict(type='mmpretrain.Resize', scale=None),
                dict(type='mmpretrain.CenterCrop', crop_size=(72, 90))))) == 72
    assert mb.input_size(
        _cfg(
            train_dataloader=_loader(dict(type='PackInputs')),
            test_dataloader=_loader(dict(type='ResizeEdge', scale=48)))) == 48
    assert mb.input_size(_cfg()) == 224


@pytest.fixture(scope='module')
def backbone():
    return mb._build_backbone(Config.fromfile(TINY))


def test_random_placements_take_one_to_all_blocks(backbone):
    from mmssl.models.utils import selectable_blocks
    every = len(selectable_blocks(backbone))
    sets = mb.task_block_sets(backbone, f'random:{every}', 2)
    assert all(len(s) == every for s in sets)
    assert [len(s)
            for s in mb.task_block_sets(backbone, 'random', 3)] == [1, 1, 1]
    for bad in ('random:0', f'random:{every + 1}'):
        with pytest.raises(ValueError, match=f'K must be in 1..{every}'):
            mb.task_block_sets(backbone, bad, 1)


def test_perturbation_by_hand():
    noise = torch.randn(5, generator=torch.Generator().manual_seed(3))
    var = torch.full((5, ), 2.)
    mb._perturb(var, torch.Generator().manual_seed(3), .1, 'bn.running_var')
    assert torch.allclose(var, 2. * torch.exp(.1 * noise))
    weight = torch.arange(5.)
    std = weight.std()
    mb._perturb(weight, torch.Generator().manual_seed(3), .1, 'conv.weight')
    assert torch.allclose(weight, torch.arange(5.) + .1 * std * noise)
    single = torch.tensor([4.])  # no spread to scale by: scale 1
    mb._perturb(single, torch.Generator().manual_seed(3), .1, 'bias')
    assert torch.allclose(single, 4. + .1 * noise[:1])
    counter = torch.tensor([7])
    mb._perturb(counter, torch.Generator().manual_seed(3), .1, 'bn.n')
    assert counter.item() == 7


def test_tasks_differ_in_their_tuned_blocks_only():
    cfg = Config.fromfile(TINY)
    models = mb.make_subtuning_tasks(cfg, [['layer4.1'], ['layer3.0']])
    one, two = (m.backbone.state_dict() for m in models)
    changed = {
        name
        for name in one if one[name].is_floating_point()
        and not torch.equal(one[name], two[name])
    }
    # a constant tensor (a fresh BN's weight, bias, mean) has no spread to
    # scale the noise by; every other tensor of a tuned block moves
    tuned = {
        name
        for name, value in one.items()
        if name.startswith(('layer4.1.',
                            'layer3.0.')) and value.is_floating_point() and
        (name.endswith('running_var') or value.std() > 0)
    }
    assert changed == tuned and len(tuned) >= 6
    # the config's top-level data preprocessor is the model's
    mean = torch.tensor(cfg.data_preprocessor.mean).view(-1, 1, 1)
    assert torch.allclose(models[0].data_preprocessor.mean, mean)
    # ... unless the model names its own
    cfg.model.data_preprocessor = dict(
        type='ClsDataPreprocessor', mean=[1., 2., 3.], std=[1., 1., 1.])
    own = mb.make_subtuning_tasks(cfg, [['layer4.1']])[0]
    assert own.data_preprocessor.mean.flatten().tolist() == [1., 2., 3.]


def test_byte_counts_and_differences_by_hand():
    a = torch.zeros(3, 4)
    assert mb._unique_bytes([a, a, torch.zeros(5, dtype=torch.int64)
                             ]) == 3 * 4 * 4 + 5 * 8
    assert mb._unique_bytes([]) == 0
    got = dict(x=torch.tensor([1., 2.]), y=torch.tensor([0.]))
    want = dict(x=torch.tensor([1., 5.]), y=torch.tensor([-1.]))
    assert mb._max_diff(got, want) == 3.


def test_time_per_call(monkeypatch):
    readings = iter([10., 16.])
    monkeypatch.setattr(mb.time, 'perf_counter', lambda: next(readings))
    calls = []
    assert mb._time(lambda: calls.append(1), 3, torch.device('cpu')) == 2.
    assert len(calls) == 3


class _Meter:
    method = 'fake meter'

    def __init__(self, device):
        pass

    def start(self):
        pass

    def stop(self):
        return 3. * MIB


def _state_bytes(models):
    return sum(t.numel() * t.element_size() for m in models
               for t in m.state_dict().values())


def test_rows_from_the_windows(monkeypatch):
    """Two cases (1 and 2 tasks), three arms, three rounds: the fake time
    of round r, case c, arm a is (r + 1)(c + 1)(a + 1) ms."""
    timings = iter([(r + 1) * (c + 1) * (a + 1) / 1e3 for r in range(3)
                    for c in range(2) for a in range(3)])
    batches = []

    def fake_time(fn, iters, device):
        batches.append(iters)
        fn()
        return next(timings)

    monkeypatch.setattr(mb, '_time', fake_time)
    monkeypatch.setattr(mb, 'StepMemory', _Meter)
    rows = mb.benchmark_multitask(
        TINY,
        task_counts=(1, 2),
        blocks=('layer4.1', ),
        batch_size=2,
        iters=4,
        warmup=0,
        repeat=3,
        threads=1)
    assert batches == [4] * 18
    assert [(r['tasks'], r['arm']) for r in rows] == [(t, a) for t in (1, 2)
                                                      for a in mb.ARMS]
    models = mb.make_subtuning_tasks(TINY, [['layer4.1']] * 2)
    for row, (c, a) in zip(rows, [(c, a) for c in range(2) for a in range(3)]):
        assert row['latency_ms_runs'] == pytest.approx([
            (r + 1) * (c + 1) * (a + 1) for r in range(3)
        ])
        assert row['latency_ms'] == pytest.approx(2 * (c + 1) * (a + 1))
        assert row['speedup'] == pytest.approx(1 / (a + 1))
        assert row['forward_mem_mib'] == 3.
        assert row['peak_mem_mib'] == pytest.approx(row['param_mib'] + 3.)
        assert row['memory_method'] == 'fake meter'
        assert row['max_abs_diff'] < 1e-4
        if row['arm'] == 'separate':
            separate = _state_bytes(models[:row['tasks']]) / MIB
            assert row['param_mib'] == pytest.approx(separate)
            assert row['param_mib_held'] == pytest.approx(separate)
        else:  # the shared trunk is held once
            assert row['param_mib'] < _state_bytes(models[:1]) / MIB * 1.5
    single, double = rows[0], rows[3]
    assert double['param_mib'] == pytest.approx(2 * single['param_mib'])


class _Multi:
    task_names = ['a', 'b']
    batch_branches = None

    def __call__(self, inputs):
        return dict(batched=self.batch_branches)


def test_case_arms_set_the_branch_mode():
    case = mb._Case('x', [], [lambda x, mode: (x, mode)] * 2, _Multi(), 7,
                    mb.ARMS)
    assert case.run('separate') == dict(a=(7, 'tensor'), b=(7, 'tensor'))
    assert case.run('multitask_batched') == dict(batched=True)
    assert case.run('multitask') == dict(batched=False)


def test_markdown_table_cells():
    row = dict(
        blocks='layer4.1',
        tasks=2,
        arm='multitask',
        latency_ms=12.345,
        speedup=None,
        forward_mem_mib=3.0,
        param_mib=1.5,
        peak_mem_mib=4.5,
        max_abs_diff=2e-7)
    lines = mb.format_markdown([row]).splitlines()
    assert lines[0] == ('| blocks | T | arm | latency ms | separate / arm | '
                        'forward MiB | weights MiB | peak MiB | max diff |')
    assert lines[1] == ('| --- | --- | --- | ---: | ---: | ---: | ---: | '
                        '---: | ---: |')
    assert lines[2] == ('| layer4.1 | 2 | multitask | 12.35 | - | 3.0 | 1.50 '
                        '| 4.5 | 2.0e-07 |')
