# Copyright (c) mmssl contributors. All rights reserved.
"""mmssl.analysis.schedule: one rescaling rule for every shortened run."""
import os.path as osp

import pytest
from mmengine.config import Config

from mmssl.analysis import iters_per_epoch, rescale_schedule

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
D2V2 = osp.join(
    ROOT, 'configs/data2vec2/'
    'data2vec2_vit-tiny-p8_1xb64-coslr-30e_embedded.py')


def _cfg(**extra):
    cfg = dict(
        train_cfg=dict(max_epochs=30, val_interval=10),
        train_dataloader=dict(batch_size=8, dataset=dict(type='X')),
        param_scheduler=[
            dict(
                type='LinearLR',
                by_epoch=True,
                begin=0,
                end=3,
                convert_to_iter_based=True),
            dict(
                type='CosineAnnealingLR',
                T_max=27,
                by_epoch=True,
                begin=3,
                end=30,
                convert_to_iter_based=True),
            dict(type='LinearLR', by_epoch=False, begin=0, end=50),
        ])
    cfg.update(extra)
    return Config(cfg)


def test_epochs_keep_shares_and_iteration_warmups():
    cfg = _cfg()
    out = rescale_schedule(cfg, epochs=10, iters_per_epoch=31)
    warmup, cosine, iters = out.param_scheduler
    assert out.train_cfg.max_epochs == 10 and out.train_cfg.val_interval == 10
    assert (warmup.begin, warmup.end, warmup.by_epoch) == (0, 31, False)
    assert 'convert_to_iter_based' not in warmup
    assert (cosine.begin, cosine.end, cosine.T_max) == (31, 310, 279)
    assert (iters.begin, iters.end) == (0, 50)  # iteration-based: kept
    assert cfg.param_scheduler[0].by_epoch  # the input is untouched
    # a tiny run keeps every scheduler at least one iteration long
    tiny = rescale_schedule(_cfg(), epochs=1, iters_per_epoch=1)
    assert tiny.param_scheduler[0].end - tiny.param_scheduler[0].begin >= 1
    assert tiny.param_scheduler[1].T_max >= 1
    # without the epoch length: fractional epochs, mmengine converts them
    cfg = Config(
        dict(
            train_cfg=dict(max_epochs=20),
            param_scheduler=dict(
                type='PolyLR',
                by_epoch=True,
                begin=0,
                end=20,
                convert_to_iter_based=True)))
    assert rescale_schedule(cfg, epochs=5).param_scheduler.end == 5
    # epoch-based without conversion: whole epochs, at least one
    cfg = Config(
        dict(
            train_cfg=dict(max_epochs=12),
            param_scheduler=[dict(type='MultiStepLR', begin=0, end=12)]))
    sched = rescale_schedule(cfg, epochs=1).param_scheduler[0]
    assert (sched.begin, sched.end) == (0, 1)
    # validation at most every run; an end of 1e8 or more is "to the end"
    cfg = Config(
        dict(
            train_cfg=dict(max_epochs=12, val_interval=5),
            param_scheduler=[
                dict(type='ConstantLR', begin=6, end=10**8),
                dict(type='ConstantLR', begin=6, end=10**8 - 1)
            ]))
    out = rescale_schedule(cfg, epochs=2)
    assert out.train_cfg.val_interval == 2
    assert out.param_scheduler[0] == dict(
        type='ConstantLR', begin=1, end=10**8)
    assert out.param_scheduler[1].end == round((10**8 - 1) / 6)
    assert rescale_schedule(cfg, epochs=24).train_cfg.val_interval == 5


def test_iters_make_an_iteration_run():
    cfg = _cfg()
    out = rescale_schedule(cfg, iters=93, iters_per_epoch=31)  # 1/10 run
    warmup, cosine, iters = out.param_scheduler
    assert out.train_cfg == dict(type='IterBasedTrainLoop', max_iters=93)
    assert out.train_dataloader.sampler == dict(
        type='InfiniteSampler', shuffle=True)
    assert (warmup.begin, warmup.end, warmup.by_epoch) == (0, 9, False)
    assert (cosine.begin, cosine.end, cosine.T_max) == (9, 93, 84)
    assert (iters.begin, iters.end) == (0, 50)  # iteration-based: kept


@pytest.mark.parametrize(
    'kwargs',
    [
        dict(iters=10, epochs=2),
        dict(),
        dict(epochs=0),
        dict(iters=10),  # epoch-based config without iters_per_epoch
    ])
def test_bad_requests_are_refused(kwargs):
    with pytest.raises(ValueError, match='rescale_schedule'):
        rescale_schedule(_cfg(), **kwargs)
    # the length named as given
    with pytest.raises(ValueError, match='epochs'):
        rescale_schedule(_cfg(), epochs=0)
    with pytest.raises(ValueError, match='iters'):
        rescale_schedule(_cfg(), iters=0, iters_per_epoch=4)
    iter_cfg = Config(dict(train_cfg=dict(max_iters=100)))
    with pytest.raises(ValueError, match='epoch-based config'):
        rescale_schedule(iter_cfg, epochs=3)


@pytest.mark.parametrize('length', [
    dict(epochs=100, iters_per_epoch=32),
    dict(epochs=10, iters_per_epoch=32),
    dict(iters=300, iters_per_epoch=32),
])
def test_ema_anneal_is_stretched_with_the_schedule(length):
    """data2vec 2.0's teacher anneal ends at the same share of the run.

    The tiny config anneals over 250 of its 960 updates (30 epochs of 32);
    a 100-epoch run (3200 updates) anneals over 833, a 300-iteration run
    over 78, and the cosine decay starts at the same share in each.
    """
    cfg = Config.fromfile(D2V2)
    assert cfg.train_cfg.max_epochs == 30
    assert cfg.model.ema.anneal_iters == 250
    out = rescale_schedule(cfg, **length)
    total = length.get('iters') or length['epochs'] * 32
    assert out.model.ema.anneal_iters == round(250 * total / 960)
    anneal_share = out.model.ema.anneal_iters / total
    assert anneal_share == pytest.approx(250 / 960, abs=1 / total)
    warmup = out.param_scheduler[0]
    assert warmup.end / total == pytest.approx(3 / 30, abs=1 / total)
    assert cfg.model.ema.anneal_iters == 250  # the input is untouched
    # momentum / end_momentum are not lengths
    assert out.model.ema.momentum == cfg.model.ema.momentum


def test_iters_per_epoch_uses_the_runner_scope(monkeypatch):
    """The data set is built in default_scope, else 'mmengine' (the
    Runner's default), whatever scope is current."""
    from mmengine.registry import DATASETS, DefaultScope
    seen = []

    def build(cfg):
        seen.append(DefaultScope.get_current_instance().scope_name)
        return list(range(10))

    monkeypatch.setattr(DATASETS, 'build', build)
    cfg = Config(dict(train_dataloader=dict(batch_size=4, dataset={})))
    assert iters_per_epoch(cfg) == 3
    cfg.train_dataloader.drop_last = True
    assert iters_per_epoch(cfg) == 2
    # a data set smaller than a batch (or empty) is still one iteration
    cfg.train_dataloader.batch_size = 16
    assert iters_per_epoch(cfg) == 1
    cfg.train_dataloader.drop_last = False
    monkeypatch.setattr(DATASETS, 'build', lambda cfg: [])
    assert iters_per_epoch(cfg) == 1
    monkeypatch.setattr(DATASETS, 'build', build)
    cfg.default_scope = 'mmpretrain'
    iters_per_epoch(cfg)
    assert seen == ['mmengine'] * 3 + ['mmpretrain']


def test_scheduler_fields_and_floors():
    """Missing fields keep their defaults; every length stays >= 1."""
    cfg = Config(
        dict(
            train_cfg=dict(max_epochs=30),
            model=dict(ema=dict(anneal_iters=10)),
            param_scheduler=[
                dict(type='ConstantLR'),  # no begin, no end
                dict(type='CosineAnnealingLR', T_max=3, begin=27, end=28),
                dict(type='LinearLR', begin=3, end=4),
            ]))
    # whole epochs: no iteration conversion unless the scheduler asks
    out = rescale_schedule(cfg, epochs=1, iters_per_epoch=1)
    const, cosine, linear = out.param_scheduler
    assert const == dict(type='ConstantLR', begin=0)
    assert 'by_epoch' not in cosine and cosine.T_max == 1
    assert (cosine.begin, cosine.end) == (1, 2)  # one epoch at least
    assert isinstance(linear.begin,
                      int) and (linear.begin, linear.end) == (0, 1)
    assert out.model.ema.anneal_iters == 1
    longer = rescale_schedule(cfg, epochs=60, iters_per_epoch=1)
    assert longer.param_scheduler[0] == dict(type='ConstantLR', begin=0)
    # converted to iterations: at least one iteration of T_max
    conv = Config(
        dict(
            train_cfg=dict(max_epochs=30),
            param_scheduler=dict(
                type='CosineAnnealingLR',
                T_max=3,
                begin=0,
                end=3,
                convert_to_iter_based=True)))
    sched = rescale_schedule(conv, epochs=1, iters_per_epoch=1).param_scheduler
    assert sched.by_epoch is False and sched.T_max == 1
    # fractional epochs for mmengine to convert, T_max too
    frac = rescale_schedule(conv, epochs=5).param_scheduler
    assert (frac.begin, frac.end, frac.T_max) == (0, 0.5, 0.5)
    assert frac.convert_to_iter_based
