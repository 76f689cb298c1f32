# Copyright (c) mmssl contributors. All rights reserved.
"""Exact resume: 2 epochs + --resume to 4 equals 4 epochs straight."""
import os.path as osp

from mmengine.config import Config

from mmssl.testing import (assert_resume_equals_straight, tiny_mae_cfg,
                           tiny_pretrain_runner_cfg, train_state,
                           write_random_images)


def _cfg(work_dir, data_root, max_epochs, resume_from=None):
    return Config(
        tiny_pretrain_runner_cfg(
            tiny_mae_cfg(), work_dir, data_root, max_epochs,
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
    cfg = _cfg(str(tmp_path / 'c'), str(data), 4,
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
        lambda work_dir, epochs, ckpt: _worker_cfg(work_dir, str(data),
                                                   epochs, ckpt),
        str(tmp_path))


def test_sample_seeded_pipeline():
    import random

    import numpy as np
    import torch

    from mmssl.engine.hooks.random_state_hook import SampleSeededPipeline

    def pipeline(info):
        return (random.random(), float(np.random.rand()),
                float(torch.rand(1)))

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
