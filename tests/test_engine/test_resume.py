# Copyright (c) mmssl contributors. All rights reserved.
"""Exact resume: 2 epochs + --resume to 4 equals 4 epochs straight."""
import copy
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner
from PIL import Image

from mmssl.testing import tiny_mae_cfg


def _write_images(root, n=16, size=40):
    rng = np.random.RandomState(0)
    for i in range(n):
        arr = rng.randint(0, 255, (size, size, 3), dtype=np.uint8)
        Image.fromarray(arr).save(osp.join(root, f'{i:03d}.png'))


def _cfg(work_dir, data_root, max_epochs, resume_from=None):
    pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='RandomResizedCrop', scale=32, crop_ratio_range=(0.5, 1)),
        dict(type='RandomFlip', prob=0.5),
        dict(type='PackInputs')
    ]
    cfg = dict(
        default_scope='mmpretrain',
        custom_imports=dict(imports=['mmssl'], allow_failed_imports=False),
        work_dir=work_dir,
        model=tiny_mae_cfg(),
        train_dataloader=dict(
            batch_size=4,
            num_workers=0,
            sampler=dict(type='DefaultSampler', shuffle=True),
            collate_fn=dict(type='default_collate'),
            dataset=dict(
                type='CustomDataset',
                data_root=data_root,
                with_label=False,
                pipeline=pipeline)),
        optim_wrapper=dict(
            optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05)),
        param_scheduler=[
            dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0,
                 end=1, convert_to_iter_based=True),
            dict(type='CosineAnnealingLR', T_max=3, by_epoch=True, begin=1,
                 end=4, convert_to_iter_based=True)
        ],
        train_cfg=dict(type='EpochBasedTrainLoop', max_epochs=max_epochs),
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=1),
            logger=dict(type='LoggerHook', interval=1),
            random_state=dict(type='mmssl.RandomStateHook')),
        randomness=dict(seed=7),
        env_cfg=dict(dist_cfg=dict(backend='gloo')),
        log_level='WARNING',
    )
    if resume_from:
        cfg.update(resume=True, load_from=resume_from)
    return Config(copy.deepcopy(cfg))


def _train(cfg):
    runner = Runner.from_cfg(cfg)
    runner.train()
    return {k: v.detach().clone() for k, v in runner.model.state_dict().items()}


def test_resume_equals_straight_run(tmp_path):
    data = tmp_path / 'imgs'
    data.mkdir()
    _write_images(str(data))
    straight = _train(_cfg(str(tmp_path / 'a'), str(data), 4))
    _train(_cfg(str(tmp_path / 'b'), str(data), 2))
    ckpt = str(tmp_path / 'b' / 'epoch_2.pth')
    assert osp.exists(ckpt)
    # the checkpoint loads weights-only (no pickled code, no HistoryBuffer
    # getattr) and carries the random state
    raw = torch.load(ckpt, weights_only=True)
    assert 'random_state' in raw
    resumed = _train(
        _cfg(str(tmp_path / 'c'), str(data), 4, resume_from=ckpt))
    assert straight.keys() == resumed.keys()
    for k in straight:
        torch.testing.assert_close(
            resumed[k], straight[k], atol=1e-6, rtol=0, msg=k)
    # and the run did move away from the 2-epoch weights
    two = torch.load(ckpt, weights_only=True)['state_dict']
    moved = max((two[k] - straight[k]).abs().max().item() for k in two)
    assert moved > 1e-4


def test_without_random_state_resume_differs(tmp_path):
    """The random-state hook is what makes resume exact (masks, crops)."""
    data = tmp_path / 'imgs'
    data.mkdir()
    _write_images(str(data))
    straight = _train(_cfg(str(tmp_path / 'a'), str(data), 4))
    cfg = _cfg(str(tmp_path / 'b'), str(data), 2)
    cfg.default_hooks.pop("random_state")
    _train(cfg)
    cfg = _cfg(str(tmp_path / 'c'), str(data), 4,
               resume_from=str(tmp_path / 'b' / 'epoch_2.pth'))
    cfg.default_hooks.pop("random_state")
    resumed = _train(cfg)
    diff = max((resumed[k] - straight[k]).abs().max().item() for k in straight)
    assert diff > 1e-6
