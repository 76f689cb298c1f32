# Copyright (c) mmssl contributors. All rights reserved.
"""DenseCL resumes exactly: 2 epochs + resume to 4 equals 4 straight,
weights, key encoder and both queues included."""
import os.path as osp

import torch
from mmengine.config import Config
from mmengine.runner import Runner

from mmssl.testing import tiny_pretrain_runner_cfg, write_random_images
from mmssl.testing.densecl import tiny_densecl_cfg

TWO_VIEWS = dict(
    type='MultiView',
    num_views=2,
    transforms=[[
        dict(
            type='RandomResizedCrop',
            scale=64,
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
        tiny_densecl_cfg(queue_len=16),
        work_dir,
        data_root,
        max_epochs,
        img_size=64,
        extra_transforms=[TWO_VIEWS],
        # lambda switches from 0 to 0.5 at iteration 10, after the resume
        custom_hooks=[dict(type='mmssl.DenseCLWarmupHook', start_iters=10)],
        resume_from=resume_from)
    runner = Runner.from_cfg(Config(cfg))
    runner.train()
    return {
        k: v.detach().clone()
        for k, v in runner.model.state_dict().items()
    }


def test_densecl_resume_equals_straight_run(tmp_path):
    data = tmp_path / 'imgs'
    data.mkdir()
    write_random_images(str(data), num=16, size=72)
    straight = _train(str(tmp_path / 'a'), str(data), 4)
    _train(str(tmp_path / 'b'), str(data), 2)
    ckpt = str(tmp_path / 'b' / 'epoch_2.pth')
    assert osp.exists(ckpt)
    resumed = _train(str(tmp_path / 'c'), str(data), 4, resume_from=ckpt)
    assert straight.keys() == resumed.keys()
    for k in ('queue', 'queue2', 'queue_ptr', 'queue2_ptr', 'encoder_k.steps'):
        assert k in straight
    for k in straight:
        torch.testing.assert_close(
            resumed[k], straight[k], atol=1e-6, rtol=0, msg=k)
    assert int(straight['encoder_k.steps']) == 16  # one update per step
    two = torch.load(ckpt, weights_only=True)['state_dict']
    # epochs 3-4 moved everything (the key encoder by 0.1 % per step)
    for k, moved in (('queue', 1e-2), ('queue2',
                                       1e-2), ('backbone.conv1.weight', 1e-4),
                     ('encoder_k.module.0.conv1.weight', 1e-6)):
        assert (two[k].float() - straight[k].float()).abs().max() > moved, k
