# Copyright (c) mmssl contributors. All rights reserved.
"""Exact resume: 2 epochs + --resume to 4 equals 4 epochs straight."""
import os.path as osp
from types import SimpleNamespace

import torch
from mmengine.config import Config

from mmssl.testing import (assert_resume_equals_straight, tiny_mae_cfg,
                           tiny_pretrain_runner_cfg, train_state,
                           write_random_images)


def _cfg(work_dir, data_root, max_epochs, resume_from=None):
    return Config(
        tiny_pretrain_runner_cfg(
            tiny_mae_cfg(),
            work_dir,
            data_root,
            max_epochs,
            resume_from=resume_from))


def test_resume_equals_straight_run(tmp_path):
    data = tmp_path / 'imgs'
    data.mkdir()
    write_random_images(str(data))
    assert_resume_equals_straight(
        lambda work_dir, epochs, ckpt: _cfg(work_dir, str(data), epochs, ckpt),
        str(tmp_path))


def test_without_random_state_resume_differs(tmp_path):
    """The random-state hook is what makes resume exact (masks, crops)."""
    data = tmp_path / 'imgs'
    data.mkdir()
    write_random_images(str(data))
    straight = train_state(_cfg(str(tmp_path / 'a'), str(data), 4))
    cfg = _cfg(str(tmp_path / 'b'), str(data), 2)
    cfg.default_hooks.pop('random_state')
    train_state(cfg)
    cfg = _cfg(
        str(tmp_path / 'c'),
        str(data),
        4,
        resume_from=osp.join(str(tmp_path), 'b', 'epoch_2.pth'))
    cfg.default_hooks.pop('random_state')
    resumed = train_state(cfg)
    diff = max((resumed[k] - straight[k]).abs().max().item() for k in straight)
    assert diff > 1e-6


def _worker_cfg(work_dir, data_root, max_epochs, resume_from=None):
    cfg = _cfg(work_dir, data_root, max_epochs, resume_from)
    cfg.train_dataloader.num_workers = 2
    cfg.train_dataloader.persistent_workers = True
    return cfg


def test_resume_exact_with_persistent_workers(tmp_path):
    """Per-sample seeding makes resume exact with worker processes too."""
    data = tmp_path / 'imgs'
    data.mkdir()
    write_random_images(str(data))
    assert_resume_equals_straight(
        lambda work_dir, epochs, ckpt: _worker_cfg(work_dir, str(data), epochs,
                                                   ckpt), str(tmp_path))


def test_sample_seeded_pipeline():
    import random

    import numpy as np
    import torch

    from mmssl.engine.hooks.random_state_hook import SampleSeededPipeline

    def pipeline(info):
        return (random.random(), float(np.random.rand()), float(torch.rand(1)))

    epoch = torch.zeros(1, dtype=torch.int64)
    seeded = SampleSeededPipeline(pipeline, 7, epoch)
    torch.manual_seed(0)
    expected_next = torch.rand(1)
    torch.manual_seed(0)
    a = seeded(dict(sample_idx=3))
    # the caller's stream is untouched by the seeded call
    assert torch.equal(torch.rand(1), expected_next)
    assert seeded(dict(sample_idx=3)) == a  # same (seed, epoch, index)
    assert seeded(dict(sample_idx=4)) != a  # another sample
    epoch[0] = 1
    assert seeded(dict(sample_idx=3)) != a  # another epoch
    assert SampleSeededPipeline(pipeline, 8, torch.zeros(
        1, dtype=torch.int64))(dict(sample_idx=3)) != a  # another seed
    # seeds are taken modulo 2**32 (-1 is 2**32 - 1), and only that way
    epoch[0] = 0
    for same in (7 + 2**32, 7 - 2**32):
        assert SampleSeededPipeline(pipeline, same,
                                    epoch)(dict(sample_idx=3)) == a
    for other in (71, 7 + 2**31):
        assert SampleSeededPipeline(pipeline, other,
                                    epoch)(dict(sample_idx=3)) != a
    assert SampleSeededPipeline(pipeline, -1, epoch).seed == 2**32 - 1
    # the wrapped Compose's attributes stay reachable; copies (workers
    # receive one) work before __init__ has set the wrapper's own
    import copy

    from mmengine.dataset import Compose
    compose = Compose([pipeline])
    wrapped = SampleSeededPipeline(compose, 7, epoch)
    assert wrapped.transforms == [pipeline]
    clone = copy.deepcopy(wrapped)
    assert clone.transforms == [pipeline] and clone.seed == 7


def test_resume_exact_with_random_seed(tmp_path):
    """``randomness.seed=None`` (the default runtime): on resume mmengine
    re-seeds with the checkpoint's seed after loading it, which must not
    clobber the restored generators. The run that wrote the checkpoint is
    the reference (a straight run would draw another seed)."""
    data = tmp_path / 'imgs'
    data.mkdir()
    write_random_images(str(data))

    def cfg(work_dir, epochs, ckpt=None):
        cfg = _cfg(work_dir, str(data), epochs, ckpt)
        cfg.randomness = dict(seed=None)
        return cfg

    straight = train_state(cfg(str(tmp_path / 'a'), 4))
    ckpt = osp.join(str(tmp_path), 'a', 'epoch_2.pth')
    resumed = train_state(cfg(str(tmp_path / 'b'), 4, ckpt))
    for k in straight:
        torch.testing.assert_close(resumed[k], straight[k], atol=0, rtol=0)


class _Runner:
    """The few runner attributes RandomStateHook reads."""

    def __init__(self, iter=0, epoch=0):
        self.iter = iter
        self.epoch = epoch
        self.train_dataloader = SimpleNamespace(num_workers=0)


def test_one_random_state_per_rank_and_restore_on_resume_only():
    from mmssl.engine.hooks import RandomStateHook
    hook = RandomStateHook()
    torch.manual_seed(3)
    hook.before_save_checkpoint_all_ranks(_Runner())
    expected = torch.rand(3)
    ckpt = {}
    hook.before_save_checkpoint(_Runner(), ckpt)
    assert ckpt['random_state']['world_size'] == 1
    assert len(ckpt['random_state']['ranks']) == 1
    # saved without the all-ranks gather (runner.save_checkpoint alone):
    # this process's state, taken now
    torch.manual_seed(4)
    alone = {}
    hook.before_save_checkpoint(_Runner(), alone)
    ranks = alone['random_state']['ranks']
    assert len(ranks) == 1 and torch.equal(ranks[0]['torch'],
                                           torch.manual_seed(4).get_state())

    # weights loaded without resuming: the generators are left alone
    torch.manual_seed(5)
    untouched = torch.rand(3)
    torch.manual_seed(5)
    hook.after_load_checkpoint(_Runner(), ckpt)
    hook.before_train(_Runner(iter=0, epoch=0))
    assert torch.equal(torch.rand(3), untouched)

    # a resumed run continues the saved stream, in before_train
    hook.after_load_checkpoint(_Runner(), ckpt)
    torch.manual_seed(5)
    hook.before_train(_Runner(iter=8, epoch=2))
    assert torch.equal(torch.rand(3), expected)


def test_legacy_single_random_state_still_loads():
    from mmssl.engine.hooks import RandomStateHook
    from mmssl.engine.hooks.random_state_hook import get_random_state
    torch.manual_seed(3)
    legacy = get_random_state()  # what older checkpoints hold
    expected = torch.rand(3)
    hook = RandomStateHook()
    hook.after_load_checkpoint(_Runner(), dict(random_state=legacy))
    torch.manual_seed(5)
    hook.before_train(_Runner(iter=8, epoch=2))
    assert torch.equal(torch.rand(3), expected)


def test_select_random_state_per_rank_and_world_size_rule():
    from mmssl.engine.hooks.random_state_hook import select_random_state
    saved = dict(world_size=2, ranks=['s0', 's1'])
    assert select_random_state(saved, 0, 2) == ('s0', None)
    assert select_random_state(saved, 1, 2) == ('s1', None)
    # fewer processes now: rank 0 restores its own, with a warning
    state, msg = select_random_state(saved, 0, 1)
    assert state == 's0'
    assert 'saved by 2 process(es), this run has 1' in msg
    assert 'not bit-exact' in msg
    # more processes now: the new ranks keep their seeded state
    assert select_random_state(saved, 1, 4)[0] == 's1'
    state, msg = select_random_state(saved, 3, 4)
    assert state is None
    assert 'Ranks below 2 restore' in msg and '`randomness`' in msg
    # rank 0's state only (saved outside CheckpointHook)
    state, msg = select_random_state(dict(world_size=2, ranks=['s0']), 1, 2)
    assert state is None and 'ranks 1 to 1 keep' in msg
    # legacy single state: every rank restores it
    legacy = dict(python=0, numpy=0, torch=0)
    assert select_random_state(legacy, 0, 1) == (legacy, None)
    state, msg = select_random_state(legacy, 1, 2)
    assert state is legacy and 'single random state' in msg


class _Data:
    """A training data set with a given ``pipeline`` attribute."""

    def __init__(self, pipeline):
        self.pipeline = pipeline


def test_per_sample_seeding_off_without_a_callable_pipeline(monkeypatch):
    from mmengine.runner import EpochBasedTrainLoop, IterBasedTrainLoop

    import mmssl.engine.hooks.random_state_hook as module
    logged = []
    monkeypatch.setattr(module, 'print_log',
                        lambda msg, **kwargs: logged.append(msg))
    for loop, pipeline, reason in (
        (EpochBasedTrainLoop, [dict(type='PackInputs')],
         '_Data has no callable `pipeline`'),
        (EpochBasedTrainLoop, None, '_Data has no callable `pipeline`'),
        (IterBasedTrainLoop, lambda x: x, 'the train loop is not epoch'),
    ):
        data = _Data(pipeline)
        runner = SimpleNamespace(
            train_loop=object.__new__(loop),
            train_dataloader=SimpleNamespace(
                num_workers=2, dataset=data, generator=None),
            seed=0)
        module.RandomStateHook()._seed_samples(runner)
        assert data.pipeline is pipeline  # not wrapped
        assert reason in logged[-1] and 'seeding is off' in logged[-1]


def test_restore_on_iteration_resume_and_warn_on_world_change(monkeypatch):
    import mmssl.engine.hooks.random_state_hook as module
    logged = []
    monkeypatch.setattr(module, 'print_log',
                        lambda msg, **kwargs: logged.append(msg))
    hook = module.RandomStateHook()
    torch.manual_seed(3)
    hook.before_save_checkpoint_all_ranks(_Runner())
    expected = torch.rand(3)
    ckpt = {}
    hook.before_save_checkpoint(_Runner(), ckpt)
    # an iteration-based run resumes at epoch 0: restored all the same
    hook.after_load_checkpoint(_Runner(), ckpt)
    torch.manual_seed(5)
    hook.before_train(_Runner(iter=8, epoch=0))
    assert torch.equal(torch.rand(3), expected) and logged == []
    # saved by 2 processes, resumed by 1: rank 0's state and a warning
    two = dict(ckpt['random_state'], world_size=2)
    two['ranks'] = two['ranks'] * 2
    hook.after_load_checkpoint(_Runner(), dict(random_state=two))
    torch.manual_seed(5)
    hook.before_train(_Runner(iter=8, epoch=2))
    assert torch.equal(torch.rand(3), expected)
    assert len(logged) == 1 and logged[0].startswith(
        'RandomStateHook: the checkpoint was saved by 2 process(es)')


def test_sampler_seed_restored_when_there_is_a_sampler():
    from mmssl.engine.hooks import RandomStateHook
    from mmssl.engine.hooks.random_state_hook import get_random_state
    saved = dict(world_size=1, ranks=[get_random_state()], sampler_seed=7)
    hook = RandomStateHook()
    hook.after_load_checkpoint(None, dict(random_state=saved))
    hook.before_train(_Runner(iter=8, epoch=2))  # no loop built: no sampler
    runner = _Runner(iter=8, epoch=2)
    sampler = SimpleNamespace(seed=123)
    runner._train_loop = SimpleNamespace(
        dataloader=SimpleNamespace(sampler=sampler))
    hook.after_load_checkpoint(None, dict(random_state=saved))
    hook.before_train(runner)
    assert sampler.seed == 7


def test_cuda_states_saved_and_restored_per_device_count(monkeypatch):
    """The CUDA branch, with torch.cuda's functions stood in for."""
    from mmssl.engine.hooks.random_state_hook import (get_random_state,
                                                      set_random_state)
    restored = []
    cuda = torch.cuda
    monkeypatch.setattr(cuda, 'get_rng_state_all', lambda: ['g0', 'g1'])
    monkeypatch.setattr(cuda, 'set_rng_state_all', restored.append)
    monkeypatch.setattr(cuda, 'device_count', lambda: 2)
    for available, initialised, saved in ((True, True, True),
                                          (True, False, False), (False, True,
                                                                 False)):
        monkeypatch.setattr(cuda, 'is_available', lambda: available)
        monkeypatch.setattr(cuda, 'is_initialized', lambda: initialised)
        state = get_random_state()
        assert ('cuda' in state) == saved
    monkeypatch.setattr(cuda, 'is_available', lambda: True)
    set_random_state(dict(state, cuda=['g0', 'g1']))
    assert restored == [['g0', 'g1']]
    set_random_state(dict(state, cuda=['g0']))  # other device count
    set_random_state(state)  # no CUDA state
    assert restored == [['g0', 'g1']]
    monkeypatch.setattr(cuda, 'is_available', lambda: False)
    set_random_state(dict(state, cuda=['g0', 'g1']))  # no CUDA here
    assert restored == [['g0', 'g1']]
