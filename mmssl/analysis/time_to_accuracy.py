# Copyright (c) mmssl contributors. All rights reserved.
"""Pretraining under a wall-clock budget, evaluated at fixed time points.

The question this answers is the one data2vec 2.0's paper asks of MAE: *how
much pretraining time does a method need to reach another method's
accuracy?* Each config is trained through a normal mmengine ``Runner`` (its
own hooks, EMA teacher, data pipeline) for ``budget_s`` seconds of training
wall-clock time. Its schedule (warm-up, cosine decay, EMA annealing) is
rescaled from epochs to the number of iterations that fit the budget
(:func:`~mmssl.analysis.schedule.rescale_schedule`), which is estimated from
a short real training probe (data loading included). At ``num_evals``
evenly spaced time points training is paused (the clock stops) and the
frozen backbone is evaluated with kNN and/or a linear probe on the config's
``frozen_eval`` data. The result holds the accuracy curve of each method,
and the time each method needed to reach the reference method's final
accuracy.
"""
import copy
import os.path as osp
import tempfile
import time
from typing import Callable, Dict, List, Optional, Sequence, Union

import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.logging import print_log

from mmssl.engine.machine_cfg import build_runner
from mmssl.evaluation.protocols import build_eval_dataloader, evaluate_backbone
from .schedule import iters_per_epoch, rescale_schedule

__all__ = [
    'TimeBudgetHook', 'probe_iter_time', 'pretrain_under_budget',
    'time_to_reach', 'compare_time_to_accuracy'
]


class TimeBudgetHook(Hook):
    """Stop training after ``budget_s`` seconds; evaluate at time points.

    Training time is wall-clock time from the first iteration on, data
    loading included, with the evaluations themselves excluded.

    Args:
        budget_s (float): training seconds.
        eval_points_s (Sequence[float]): training times to evaluate at (the
            last one should equal ``budget_s``).
        evaluate (Callable[[model], dict]): the evaluation.
    """

    priority = 'LOWEST'

    def __init__(self, budget_s: float, eval_points_s: Sequence[float],
                 evaluate: Callable[[torch.nn.Module], Dict[str, float]]):
        self.budget_s = budget_s
        self.eval_points_s = sorted(eval_points_s)
        self.evaluate = evaluate
        self.records: List[dict] = []
        self._start = None
        self._paused = 0.0
        self._images = 0

    def train_seconds(self) -> float:
        return time.perf_counter() - self._start - self._paused

    def before_train(self, runner) -> None:
        # the initialised (untrained) model is the curve's first point
        self._start = time.perf_counter()
        self._record(runner, 0.0, iteration=0)

    def after_train_iter(self,
                         runner,
                         batch_idx,
                         data_batch=None,
                         outputs=None) -> None:
        inputs = data_batch['inputs'] if isinstance(data_batch, dict) else None
        if isinstance(inputs, (list, tuple)):
            inputs = inputs[0]
        if torch.is_tensor(inputs):
            self._images += inputs.shape[0] * runner.world_size
        elapsed = self.train_seconds()
        last = runner.iter + 1 >= runner.max_iters or elapsed >= self.budget_s
        due = self.eval_points_s and elapsed >= self.eval_points_s[0]
        if due or last:
            while self.eval_points_s and elapsed >= self.eval_points_s[0]:
                self.eval_points_s.pop(0)
            self._record(runner, elapsed)
        if elapsed >= self.budget_s:
            runner.train_loop.stop_training = True

    def _record(self,
                runner,
                elapsed: float,
                iteration: Optional[int] = None) -> None:
        pause = time.perf_counter()
        metrics = self.evaluate(runner.model)
        record = dict(
            train_s=round(elapsed, 2),
            iter=runner.iter + 1 if iteration is None else iteration,
            images=self._images,
            loss=_last_loss(runner),
            **metrics)
        self.records.append(record)
        print_log(
            'time-to-accuracy: ' +
            ', '.join(f'{k}={v:.4g}' if isinstance(v, float) else f'{k}={v}'
                      for k, v in record.items()),
            logger='current')
        self._paused += time.perf_counter() - pause


def _last_loss(runner) -> Optional[float]:
    scalars = runner.message_hub.log_scalars
    buf = scalars.get('train/loss')
    return float(buf.current()) if buf is not None else None


class _SpeedProbeHook(Hook):
    """Time the iterations after a warm-up (data loading included)."""

    priority = 'LOWEST'

    def __init__(self, warmup: int):
        self.warmup = warmup
        self.start = None
        self.iters = 0

    def after_train_iter(self,
                         runner,
                         batch_idx,
                         data_batch=None,
                         outputs=None) -> None:
        if runner.iter + 1 == self.warmup:
            self.start = time.perf_counter()
        elif self.start is not None:
            self.iters += 1


def probe_iter_time(cfg: Config, iters: int = 10, warmup: int = 3) -> float:
    """Seconds per training iteration of ``cfg``, measured for real.

    A throw-away Runner trains ``warmup + iters`` iterations with the
    config's own data pipeline and hooks (no checkpoints, no pictures), so
    data loading and the teacher update count, unlike in the synthetic-batch
    benchmark of :mod:`mmssl.analysis.benchmark`.
    """
    cfg = copy.deepcopy(cfg)
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=warmup + iters)
    cfg.train_dataloader.sampler = dict(type='InfiniteSampler', shuffle=True)
    cfg.param_scheduler = []
    cfg.work_dir = tempfile.mkdtemp(prefix='tta_probe_')
    cfg.default_hooks.checkpoint = None
    cfg.custom_hooks = [
        h for h in cfg.get('custom_hooks', [])
        if 'Vis' not in h.get('type', '')
        and 'FrozenEval' not in h.get('type', '')
    ]
    cfg.log_level = 'WARNING'
    runner = build_runner(cfg)
    hook = _SpeedProbeHook(warmup)
    runner.register_hook(hook)
    runner.train()
    return (time.perf_counter() - hook.start) / max(1, hook.iters)


def pretrain_under_budget(cfg: Union[str, Config],
                          budget_s: float,
                          img_per_s: Optional[float] = None,
                          num_evals: int = 5,
                          protocols: Sequence[str] = ('knn', 'linear'),
                          work_dir: Optional[str] = None,
                          seed: int = 0) -> dict:
    """Pretrain one config for ``budget_s`` seconds, evaluating on the way.

    Args:
        cfg (str | Config): a pretraining config with ``frozen_eval``.
        budget_s (float): training seconds.
        img_per_s (float, optional): expected training speed, used to size
            the schedule (``budget_s * img_per_s / batch_size``
            iterations); measured with :func:`probe_iter_time` if None.
        num_evals (int): evaluations, evenly spaced in time.
        protocols (Sequence[str]): 'knn' and/or 'linear'.
        work_dir (str, optional): where the runner writes.
        seed (int): the run's seed.

    Returns:
        dict: ``records`` (one dict per evaluation: ``train_s``, ``iter``,
        ``images``, ``loss`` and the metrics), ``total_iters``.
    """
    if isinstance(cfg, str):
        cfg = Config.fromfile(cfg)
    if 'frozen_eval' not in cfg:
        raise KeyError(
            'the config has no `frozen_eval` (train_dataloader / '
            'val_dataloader of a labelled classification set) to evaluate '
            'on; see configs/_base_/datasets/embedded_bs64_mae.py')
    batch = cfg.train_dataloader.batch_size
    if img_per_s is None:
        iter_s = probe_iter_time(cfg)
    else:
        iter_s = batch / img_per_s
    total_iters = max(2, int(budget_s / iter_s))
    cfg = rescale_schedule(
        cfg, iters=total_iters, iters_per_epoch=iters_per_epoch(cfg))
    cfg.work_dir = work_dir or tempfile.mkdtemp(prefix='tta_')
    cfg.randomness = dict(seed=seed)
    cfg.default_hooks.checkpoint = dict(
        type='CheckpointHook', interval=10**9, save_last=False)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=50)
    cfg.custom_hooks = [
        h for h in cfg.get('custom_hooks', [])
        if 'Vis' not in h.get('type', '')
        and 'FrozenEval' not in h.get('type', '')
    ]
    cfg.pop('val_dataloader', None)
    cfg.log_level = 'INFO'
    runner = build_runner(cfg)
    eval_loaders = (build_eval_dataloader(cfg.frozen_eval.train_dataloader),
                    build_eval_dataloader(cfg.frozen_eval.val_dataloader))

    def evaluate(model):
        return evaluate_backbone(
            model, *eval_loaders, protocols=protocols, progress=False)

    points = [budget_s * (i + 1) / num_evals for i in range(num_evals)]
    hook = TimeBudgetHook(budget_s, points, evaluate)
    runner.register_hook(hook)
    runner.train()
    return dict(
        records=hook.records, total_iters=total_iters, probe_iter_s=iter_s)


def time_to_reach(records: Sequence[dict], metric: str,
                  target: float) -> Optional[float]:
    """Training seconds of the first evaluation with ``metric >= target``.

    Between two evaluations the curve is interpolated linearly; None when
    the target is never reached.
    """
    prev = None  # (seconds, value) of the last evaluation below target
    for rec in records:
        v = rec.get(metric)
        if v is None:
            continue
        t = rec['train_s']
        if v >= target:
            if prev is None:
                return t
            prev_t, prev_v = prev
            return prev_t + (target - prev_v) / (v - prev_v) * (t - prev_t)
        prev = (t, v)
    return None


def compare_time_to_accuracy(cfgs: Sequence[Union[str, Config]],
                             names: Sequence[str],
                             budget_s: float,
                             img_per_s: Optional[Sequence[float]] = None,
                             metric: str = 'knn_top1',
                             **kwargs) -> dict:
    """Run :func:`pretrain_under_budget` per config; compare with the first.

    The first config is the reference: its accuracy at the end of the budget
    is the target, and each method's time to reach it is reported with the
    speed-up ``reference's time to the target / method's time``.
    """
    runs = {}
    if img_per_s is None:
        img_per_s = [None] * len(cfgs)
    work_dir = kwargs.pop('work_dir', None)
    for cfg, name, speed in zip(cfgs, names, img_per_s):
        sub = osp.join(work_dir, name) if work_dir else None
        runs[name] = pretrain_under_budget(
            cfg, budget_s, speed, work_dir=sub, **kwargs)
    ref = names[0]
    target = runs[ref]['records'][-1][metric]
    # the reference's own time to its final accuracy (earlier than its
    # budget when its curve is not monotone)
    ref_time = time_to_reach(runs[ref]['records'], metric, target)
    summary = {}
    for name in names:
        t = time_to_reach(runs[name]['records'], metric, target)
        summary[name] = dict(
            final=runs[name]['records'][-1][metric],
            time_to_target_s=t,
            # a target met by the untrained model (t == 0) has no speed-up
            speedup=(ref_time / t) if t and ref_time else None)
    return dict(
        metric=metric,
        target=target,
        reference=ref,
        runs=runs,
        summary=summary)
