# Copyright (c) mmssl contributors. All rights reserved.
"""The time-budget hook, the time to a target and the comparison of methods
on a fake clock and fake runs; the speed probe and a budget run on a fake
runner (the real runs are in test_time_to_accuracy.py)."""
import pytest
import torch
from mmengine.config import Config

import mmssl.analysis.time_to_accuracy as tta
from mmssl.analysis import time_to_reach
from mmssl.analysis.time_to_accuracy import (TimeBudgetHook,
                                             compare_time_to_accuracy,
                                             pretrain_under_budget)


class _Clock:

    def __init__(self):
        self.now = 1000.

    def __call__(self):
        return self.now


class _Buffer:

    def __init__(self, value):
        self.value = value

    def current(self):
        return self.value


class _Runner:

    def __init__(self, max_iters, world_size=1):
        self.iter, self.max_iters, self.world_size = 0, max_iters, world_size
        self.model = object()
        self.train_loop = type('Loop', (), {'stop_training': False})()
        self.message_hub = type('Hub', (), {'log_scalars': {}})()


def _hook(monkeypatch, budget, points, pause=100.):
    clock = _Clock()
    monkeypatch.setattr(tta.time, 'perf_counter', clock)
    seen = []

    def evaluate(model):
        seen.append(clock.now)
        clock.now += pause  # evaluating takes time off the clock
        return dict(knn_top1=float(len(seen)))

    return TimeBudgetHook(budget, points, evaluate), clock, seen


def _step(hook, runner, clock, seconds, batch, loss=None):
    clock.now += seconds
    if loss is not None:
        runner.message_hub.log_scalars['train/loss'] = _Buffer(loss)
    hook.after_train_iter(runner, runner.iter, batch)
    runner.iter += 1


def test_evaluates_at_the_time_points_without_the_pauses(monkeypatch):
    hook, clock, seen = _hook(monkeypatch, 10., [10., 6.])
    runner = _Runner(max_iters=100, world_size=2)
    hook.before_train(runner)
    batch = dict(inputs=torch.zeros(4, 3, 2, 2))
    for i in range(5):
        assert not runner.train_loop.stop_training
        _step(hook, runner, clock, 2., batch, loss=1. / (i + 1))
    assert runner.train_loop.stop_training  # 10 s of training reached
    records = hook.records
    assert [r['train_s'] for r in records] == [0., 6., 10.]
    assert [r['iter'] for r in records] == [0, 3, 5]
    # 4 images a process and step, 2 processes
    assert [r['images'] for r in records] == [0, 24, 40]
    assert [r['loss'] for r in records] == [None, pytest.approx(1 / 3), 0.2]
    assert [r['knn_top1'] for r in records] == [1., 2., 3.]
    # the evaluations' own 100 s are not training time
    assert hook.train_seconds() == pytest.approx(10.)
    assert seen == [1000., 1106., 1210.]


def test_late_points_run_once_and_the_last_iteration_counts(monkeypatch):
    hook, clock, _ = _hook(monkeypatch, 100., [1., 2., 3., 50.], pause=0.)
    runner = _Runner(max_iters=3)
    hook.before_train(runner)
    # views of a batch: the first one's size counts
    batch = dict(inputs=[torch.zeros(5, 1), torch.zeros(3, 1)])
    _step(hook, runner, clock, 4.0004, batch)  # three points at once
    assert [r['train_s'] for r in hook.records] == [0., 4.]
    assert hook.eval_points_s == [50.]
    _step(hook, runner, clock, 1., batch)  # not due
    assert len(hook.records) == 2
    _step(hook, runner, clock, 0.9996, batch)  # the last iteration
    # seconds rounded to hundredths
    assert [r['train_s'] for r in hook.records] == [0., 4., 6.]
    assert [r['images'] for r in hook.records] == [0, 5, 15]
    assert not runner.train_loop.stop_training  # within the budget
    # a batch without tensor inputs counts no images
    hook2, clock2, _ = _hook(monkeypatch, 1., [1.], pause=0.)
    runner2 = _Runner(max_iters=9)
    hook2.before_train(runner2)
    _step(hook2, runner2, clock2, 1., None)
    _step(hook2, runner2, clock2, 1., dict(inputs='text'))
    assert [r['images'] for r in hook2.records] == [0, 0, 0]
    assert runner2.train_loop.stop_training


def test_time_to_reach_edges():
    curve = [
        dict(train_s=0, acc=10.),
        dict(train_s=10, acc=30.),
        dict(train_s=20, acc=25.),
        dict(train_s=30, acc=50.)
    ]
    # a dip: the first crossing after it, interpolated
    assert time_to_reach(curve, 'acc', 40.) == pytest.approx(26.)
    # an evaluation without the metric is skipped
    gap = [
        dict(train_s=0, acc=10.),
        dict(train_s=10),
        dict(train_s=20, acc=30.)
    ]
    assert time_to_reach(gap, 'acc', 20.) == pytest.approx(10.)
    # no starting point: the first evaluation reaching it
    assert time_to_reach([dict(train_s=5, acc=50.)], 'acc', 40.) == 5
    assert time_to_reach(
        [dict(train_s=0), dict(train_s=8, acc=50.)], 'acc', 40.) == 8
    # a flat step at the target: the time it is reached
    flat = [
        dict(train_s=0, acc=10.),
        dict(train_s=4, acc=40.),
        dict(train_s=9, acc=40.)
    ]
    assert time_to_reach(flat, 'acc', 40.) == 4
    assert time_to_reach(flat, 'acc', 25.) == pytest.approx(2.)


def test_compare_is_relative_to_the_first_method(monkeypatch, tmp_path):
    curves = {
        'ref': [(0, 10.), (10, 30.), (20, 40.)],
        'fast': [(0, 10.), (10, 45.), (20, 50.)],
        'slow': [(0, 10.), (10, 20.), (20, 30.)],
        'free': [(0, 60.), (20, 70.)],
    }
    calls = []

    def fake(cfg, budget_s, speed, work_dir=None, **kwargs):
        calls.append((cfg, budget_s, speed, work_dir, kwargs))
        return dict(
            records=[dict(train_s=t, knn_top1=v) for t, v in curves[cfg]])

    monkeypatch.setattr(tta, 'pretrain_under_budget', fake)
    names = list(curves)
    out = compare_time_to_accuracy(
        names,
        names,
        20.,
        img_per_s=[1., 2., 3., 4.],
        work_dir=str(tmp_path),
        num_evals=2)
    assert [c[2] for c in calls] == [1., 2., 3., 4.]
    assert [c[3] for c in calls] == [str(tmp_path / n) for n in names]
    assert all(c[1] == 20. and c[4] == dict(num_evals=2) for c in calls)
    assert out['metric'] == 'knn_top1' and out['reference'] == 'ref'
    assert out['target'] == 40.
    s = out['summary']
    assert s['ref'] == dict(final=40., time_to_target_s=20., speedup=1.)
    # 10 + 30 / 35 of the way from 10 to 45 points
    assert s['fast']['time_to_target_s'] == pytest.approx(60 / 7)
    assert s['fast']['speedup'] == pytest.approx(20 / (60 / 7))
    assert s['slow'] == dict(final=30., time_to_target_s=None, speedup=None)
    assert s['free'] == dict(final=70., time_to_target_s=0., speedup=None)
    assert out['runs']['fast']['records'][-1]['knn_top1'] == 50.
    # without speeds each run is probed; without a work dir none is named
    calls.clear()
    compare_time_to_accuracy(['ref', 'fast'], ['ref', 'fast'], 5.)
    assert [(c[2], c[3]) for c in calls] == [(None, None), (None, None)]


def test_budget_run_needs_a_frozen_eval():
    with pytest.raises(KeyError, match='frozen_eval'):
        pretrain_under_budget(Config(dict(model=dict())), 1.)


class _TrainRunner(_Runner):
    """Trains on the fake clock: ``seconds[i]`` for iteration ``i`` (1 s
    past the list), batches of 8 images."""

    def __init__(self, cfg, clock, seconds=()):
        super().__init__(cfg.train_cfg.max_iters)
        self.cfg, self.clock, self.seconds = cfg, clock, list(seconds)
        self.hooks = []

    def register_hook(self, hook):
        self.hooks.append(hook)

    def train(self):
        for hook in self.hooks:
            if hasattr(hook, 'before_train'):
                hook.before_train(self)
        batch = dict(inputs=torch.zeros(8, 3, 4, 4))
        for i in range(self.max_iters):
            self.iter = i
            self.clock.now += self.seconds[i] if i < len(self.seconds) else 1.
            for hook in self.hooks:
                hook.after_train_iter(self, i, batch)
            if self.train_loop.stop_training:
                break


def _pretrain_cfg():
    return Config(
        dict(
            model=dict(type='M', ema=dict(anneal_iters=50)),
            train_cfg=dict(type='EpochBasedTrainLoop', max_epochs=10),
            train_dataloader=dict(
                batch_size=8, sampler=dict(type='DefaultSampler')),
            val_dataloader=dict(batch_size=8),
            param_scheduler=[
                dict(type='CosineAnnealingLR', by_epoch=True, T_max=10)
            ],
            default_hooks=dict(
                checkpoint=dict(type='CheckpointHook', interval=1),
                logger=dict(type='LoggerHook', interval=10)),
            custom_hooks=[
                dict(type='mmssl.EMAHook'),
                dict(type='mmssl.ReconstructionVisHook'),
                dict(type='mmssl.FrozenEvalHook')
            ],
            frozen_eval=dict(
                train_dataloader=dict(split='train'),
                val_dataloader=dict(split='val'))))


def _fake_runs(monkeypatch, tmp_path, seconds=()):
    clock = _Clock()
    monkeypatch.setattr(tta.time, 'perf_counter', clock)
    monkeypatch.setattr(tta.tempfile, 'mkdtemp',
                        lambda prefix: str(tmp_path / prefix))
    runners = []

    def build(cfg):
        runners.append(_TrainRunner(cfg, clock, seconds))
        return runners[-1]

    monkeypatch.setattr(tta, 'build_runner', build)
    return clock, runners


def test_the_probe_times_the_iterations_after_its_warmup(
        monkeypatch, tmp_path):
    _, runners = _fake_runs(monkeypatch, tmp_path, [50, 20, 10, 2, 2, 3, 5])
    cfg = _pretrain_cfg()
    assert tta.probe_iter_time(cfg, iters=4, warmup=3) == 3.
    run = runners[0].cfg
    assert run.train_cfg == dict(type='IterBasedTrainLoop', max_iters=7)
    assert run.train_dataloader.sampler == dict(
        type='InfiniteSampler', shuffle=True)
    assert run.param_scheduler == [] and run.log_level == 'WARNING'
    assert run.work_dir == str(tmp_path / 'tta_probe_')
    assert run.default_hooks.checkpoint is None  # nothing written
    assert run.custom_hooks == [dict(type='mmssl.EMAHook')]
    assert cfg.train_cfg.type == 'EpochBasedTrainLoop'  # a copy was run
    assert len(cfg.custom_hooks) == 3
    # one timed iteration: the one after the warm-up
    assert tta.probe_iter_time(cfg, iters=1, warmup=2) == 10.


def test_a_budget_run_sizes_its_schedule_and_evaluates_in_time(
        monkeypatch, tmp_path):
    _, runners = _fake_runs(monkeypatch, tmp_path)
    monkeypatch.setattr(tta, 'iters_per_epoch', lambda cfg: 10)
    built = []
    monkeypatch.setattr(tta, 'build_eval_dataloader',
                        lambda loader: built.append(loader) or loader.split)
    evals = []

    def evaluate(model, train, val, protocols, progress):
        evals.append((train, val, tuple(protocols), progress))
        return dict(knn_top1=float(len(evals)))

    monkeypatch.setattr(tta, 'evaluate_backbone', evaluate)
    cfg = _pretrain_cfg()
    # 4 img/s at batch 8: 2 s an iteration, 9 s of budget -> 4 iterations
    out = pretrain_under_budget(
        cfg,
        9.,
        img_per_s=4.,
        num_evals=3,
        protocols=('knn', ),
        work_dir=str(tmp_path / 'run'),
        seed=7)
    assert out['total_iters'] == 4 and out['probe_iter_s'] == 2.
    run = runners[0].cfg
    assert run.train_cfg == dict(type='IterBasedTrainLoop', max_iters=4)
    # the cosine decay spans the 4 iterations, the EMA anneal 50 of 100
    assert run.param_scheduler[0].T_max == 4
    assert run.model.ema.anneal_iters == 2
    assert run.work_dir == str(tmp_path / 'run')
    assert run.randomness == dict(seed=7) and run.log_level == 'INFO'
    assert run.default_hooks.checkpoint == dict(
        type='CheckpointHook', interval=10**9, save_last=False)
    assert run.default_hooks.logger == dict(type='LoggerHook', interval=50)
    assert run.custom_hooks == [dict(type='mmssl.EMAHook')]
    assert 'val_dataloader' not in run and 'val_dataloader' in cfg
    assert [b.split for b in built] == ['train', 'val']
    assert evals[0] == ('train', 'val', ('knn', ), False)
    # time points 3, 6 and 9 s; the run ends after 4 iterations of 1 s
    records = out['records']
    assert [(r['train_s'], r['iter'], r['images'])
            for r in records] == [(0., 0, 0), (3., 3, 24), (4., 4, 32)]
    assert [r['knn_top1'] for r in records] == [1., 2., 3.]
    # without a speed the probe sizes the run; a tiny budget runs 2
    monkeypatch.setattr(tta, 'probe_iter_time', lambda cfg: 100.)
    out = pretrain_under_budget(cfg, 9., work_dir=str(tmp_path / 'b'))
    assert out['total_iters'] == 2 and out['probe_iter_s'] == 100.
    assert runners[-1].cfg.randomness == dict(seed=0)
    # no work dir: a temporary one
    pretrain_under_budget(cfg, 9., img_per_s=4.)
    assert runners[-1].cfg.work_dir == str(tmp_path / 'tta_')
