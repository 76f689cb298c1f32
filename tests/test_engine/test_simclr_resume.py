# Copyright (c) mmssl contributors. All rights reserved.
"""SimCLR resumes exactly: 2 epochs + resume to 4 equals 4 straight."""
import os.path as osp

import torch
from mmengine.config import Config
from mmengine.runner import Runner

from mmssl.testing import (tiny_pretrain_runner_cfg, tiny_simclr_cfg,
                           write_random_images)

TWO_VIEWS = dict(
    type='MultiView',
    num_views=2,
    transforms=[[
        dict(
            type='RandomResizedCrop',
            scale=32,
            crop_ratio_range=(0.3, 1),
            backend='pillow'),
        dict(type='RandomFlip', prob=0.5),
        dict(
            type='RandomApply',
            transforms=[
                dict(
                    type='ColorJitter',
                    brightness=0.4,
                    contrast=0.4,
                    saturation=0.4,
                    hue=0.1)
            ],
            prob=0.8),
        dict(type='RandomGrayscale', prob=0.2, keep_channels=True),
    ]])


def _train(work_dir, data_root, max_epochs, resume_from=None):
    cfg = tiny_pretrain_runner_cfg(
        tiny_simclr_cfg(),
        work_dir,
        data_root,
        max_epochs,
        extra_transforms=[TWO_VIEWS],
        resume_from=resume_from)
    runner = Runner.from_cfg(Config(cfg))
    runner.train()
    return {
        k: v.detach().clone()
        for k, v in runner.model.state_dict().items()
    }


def test_simclr_resume_equals_straight_run(tmp_path):
    data = tmp_path / 'imgs'
    data.mkdir()
    write_random_images(str(data), num=16, size=40)
    straight = _train(str(tmp_path / 'a'), str(data), 4)
    _train(str(tmp_path / 'b'), str(data), 2)
    ckpt = str(tmp_path / 'b' / 'epoch_2.pth')
    assert osp.exists(ckpt)
    resumed = _train(str(tmp_path / 'c'), str(data), 4, resume_from=ckpt)
    assert straight.keys() == resumed.keys()
    for k in straight:
        torch.testing.assert_close(
            resumed[k], straight[k], atol=1e-6, rtol=0, msg=k)
    two = torch.load(ckpt, weights_only=True)['state_dict']
    moved = max(
        (two[k].float() - straight[k].float()).abs().max().item() for k in two)
    assert moved > 1e-4
