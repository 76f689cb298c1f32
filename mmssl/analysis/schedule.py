# Copyright (c) mmssl contributors. All rights reserved.
"""Shortening or stretching a training schedule, as one rule.

Used by the time-to-accuracy runs (a pretraining sized to a time budget,
:mod:`mmssl.analysis.time_to_accuracy`) and the transfer pipeline
(``--pretrain-epochs`` / ``--finetune-epochs``,
:mod:`mmssl.analysis.transfer`). The rule, for a run ``factor`` times as
long as the config's:

* a parameter scheduler written in epochs (``by_epoch=True``, mmengine's
  default) keeps its share of the run: ``begin``, ``end`` and ``T_max``
  scale by ``factor``;
* a parameter scheduler written in iterations (``by_epoch=False``) keeps
  its length: a warm-up of N iterations (mmdet's convention) stays N
  iterations;
* the EMA teacher's anneal (``model.ema.anneal_iters`` of data2vec 2.0),
  which has no epoch form, keeps its share of the run like an epoch-based
  scheduler: the teacher's decay reaches its final value at the same point
  of the run as in the config.

The iterations per epoch come from :func:`iters_per_epoch`, which builds the
training data set in the config's scope (``default_scope``, else
``'mmengine'``, as the Runner does).
"""
import copy
import math
from typing import Optional

from mmengine.config import Config
from mmengine.registry import DATASETS, DefaultScope

from mmssl.utils.config import default_scope_of
from mmssl.utils.validation import check_int

__all__ = ['iters_per_epoch', 'rescale_schedule']

_INF = 1e8  # ``end`` values at or above this mean "to the end of the run"


def iters_per_epoch(cfg: Config) -> int:
    """Training iterations per epoch of ``cfg`` on one process.

    The training data set is built in the config's scope (see
    :func:`~mmssl.utils.config.default_scope_of`); its length, the batch
    size and ``drop_last`` give the count, as the default sampler yields it.
    """
    loader = cfg.train_dataloader
    with DefaultScope.overwrite_default_scope(default_scope_of(cfg)):
        dataset = DATASETS.build(copy.deepcopy(loader.dataset))
    num, batch = len(dataset), loader.batch_size
    if loader.get('drop_last', False):
        return max(1, num // batch)
    return max(1, math.ceil(num / batch))


def rescale_schedule(cfg: Config,
                     epochs: Optional[int] = None,
                     iters: Optional[int] = None,
                     iters_per_epoch: Optional[int] = None) -> Config:
    """A copy of ``cfg`` whose schedule lasts ``epochs`` or ``iters``.

    Args:
        cfg (Config): A training config; ``train_cfg`` holds ``max_epochs``
            (epoch-based) or ``max_iters`` (iteration-based).
        epochs (int, optional): Length of the new run in epochs; the train
            loop stays epoch-based. A scheduler with
            ``convert_to_iter_based=True`` is written in iterations when
            ``iters_per_epoch`` is given (each at least one iteration long,
            so that a short warm-up of a tiny run does not vanish), else in
            fractional epochs; the other epoch-based schedulers are rounded
            to whole epochs (at least one). ``val_interval`` is capped at
            ``epochs``.
        iters (int, optional): Length of the new run in iterations; the train
            loop becomes an ``IterBasedTrainLoop`` with an
            ``InfiniteSampler`` and every epoch-based scheduler is written in
            iterations. Needs ``iters_per_epoch`` for an epoch-based config.
        iters_per_epoch (int, optional): Iterations of one epoch of ``cfg``
            (:func:`iters_per_epoch`).

    Returns:
        Config: The rescaled copy; see the module docstring for the rule
        (epoch-based schedulers and the EMA anneal keep their share of the
        run, iteration-based schedulers their length).

    Raises:
        ValueError: neither or both of ``epochs`` / ``iters``, a length
            below 1, ``epochs`` for an iteration-based config, or ``iters``
            for an epoch-based one without ``iters_per_epoch``.
    """
    if (epochs is None) == (iters is None):
        raise ValueError('rescale_schedule: give exactly one of epochs= and '
                         f'iters= (got epochs={epochs!r}, iters={iters!r})')
    check_int(epochs if iters is None else iters,
              'epochs' if iters is None else 'iters', 'rescale_schedule')
    cfg = copy.deepcopy(cfg)
    train_cfg = cfg.train_cfg
    old_epochs = train_cfg.get('max_epochs')
    if old_epochs is None and epochs is not None:
        raise ValueError(
            'rescale_schedule(epochs=...) needs an epoch-based config '
            '(train_cfg.max_epochs); this one has train_cfg='
            f'{dict(train_cfg)!r}: pass iters= instead')
    if iters is not None and old_epochs is not None and not iters_per_epoch:
        raise ValueError(
            'rescale_schedule(iters=...) of an epoch-based config needs '
            'iters_per_epoch= (see iters_per_epoch(cfg))')
    if epochs is not None:
        factor = epochs / old_epochs
    else:
        old_iters = old_epochs * iters_per_epoch if old_epochs is not None \
            else train_cfg.max_iters
        factor = iters / old_iters

    schedulers = cfg.get('param_scheduler') or []
    single = isinstance(schedulers, dict)
    new = [
        _rescale_scheduler(s, factor, epochs, iters, iters_per_epoch)
        for s in ([schedulers] if single else schedulers)
    ]
    if 'param_scheduler' in cfg:
        cfg.param_scheduler = new[0] if single else new

    if epochs is not None:
        cfg.train_cfg.max_epochs = epochs
        if 'val_interval' in cfg.train_cfg:
            cfg.train_cfg.val_interval = min(cfg.train_cfg.val_interval,
                                             epochs)
    else:
        cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=iters)
        sampler = cfg.train_dataloader.get('sampler', {})
        cfg.train_dataloader.sampler = dict(
            type='InfiniteSampler', shuffle=sampler.get('shuffle', True))

    ema = cfg.get('model', {}).get('ema')
    if isinstance(ema, dict) and ema.get('anneal_iters'):
        ema['anneal_iters'] = max(1, round(ema['anneal_iters'] * factor))
    return cfg


def _rescale_scheduler(sched: dict, factor: float, epochs: Optional[int],
                       iters: Optional[int], per_epoch: Optional[int]) -> dict:
    """One ``param_scheduler`` entry rescaled (see :func:`rescale_schedule`).
    """
    sched = copy.deepcopy(sched)
    if not sched.get('by_epoch', True):
        return sched  # written in iterations: keeps its length
    begin = sched.get('begin', 0) * factor
    end = sched.get('end', None)
    end = None if end is None or end >= _INF else end * factor
    t_max = sched['T_max'] * factor if 'T_max' in sched else None
    to_iters = iters is not None or (sched.get('convert_to_iter_based', False)
                                     and per_epoch is not None)
    if to_iters:
        if per_epoch is None:
            raise ValueError(
                f'rescale_schedule: the epoch-based scheduler {dict(sched)!r} '
                'of an iteration-based config cannot be written in '
                'iterations without iters_per_epoch=')
        # written in iterations from now on
        sched['by_epoch'] = False
        sched.pop('convert_to_iter_based', None)
        sched['begin'] = round(begin * per_epoch)
        if end is not None:
            sched['end'] = max(sched['begin'] + 1, round(end * per_epoch))
        if t_max is not None:
            sched['T_max'] = max(1, round(t_max * per_epoch))
    elif sched.get('convert_to_iter_based', False):
        # no epoch length known: fractional epochs, converted by mmengine
        sched['begin'] = begin
        if end is not None:
            sched['end'] = end
        if t_max is not None:
            sched['T_max'] = t_max
    else:
        sched['begin'] = round(begin)
        if end is not None:
            sched['end'] = max(sched['begin'] + 1, round(end))
        if t_max is not None:
            sched['T_max'] = max(1, round(t_max))
    return sched
