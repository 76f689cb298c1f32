# Copyright (c) mmssl contributors. All rights reserved.
"""ClassCondDDPM: exact resume (2 epochs + --resume to 4 == 4 straight)."""
import copy
import os.path as osp
import sys

import numpy as np
from mmengine.config import Config
from PIL import Image

from mmssl.testing import assert_resume_equals_straight

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from difffashion_helpers import tiny_ddpm_cfg  # noqa: E402


def _write_images(root, n=8, size=16):
    rng = np.random.RandomState(0)
    lines = []
    for i in range(n):
        arr = rng.randint(0, 255, (size, size, 3), dtype=np.uint8)
        Image.fromarray(arr).save(osp.join(root, f'{i:03d}.png'))
        lines.append(f'{i:03d}.png {i % 4}\n')
    with open(osp.join(root, 'ann.txt'), 'w') as f:
        f.writelines(lines)


def _cfg(work_dir, data_root, max_epochs, resume_from=None):
    pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='RandomFlip', prob=0.5),
        dict(type='PackInputs')
    ]
    model = tiny_ddpm_cfg(16)
    model['data_preprocessor'] = dict(
        type='mmpretrain.ClsDataPreprocessor', mean=[127.5] * 3,
        std=[127.5] * 3)
    cfg = dict(
        default_scope='mmpretrain',
        custom_imports=dict(imports=['mmssl'], allow_failed_imports=False),
        work_dir=work_dir,
        model=model,
        train_dataloader=dict(
            batch_size=4,
            num_workers=0,
            sampler=dict(type='DefaultSampler', shuffle=True),
            collate_fn=dict(type='default_collate'),
            dataset=dict(
                type='CustomDataset',
                data_root=data_root,
                ann_file='ann.txt',
                pipeline=pipeline)),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=1e-3)),
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


def test_ddpm_resume_equals_straight_run(tmp_path):
    data = tmp_path / 'imgs'
    data.mkdir()
    _write_images(str(data))
    assert_resume_equals_straight(
        lambda work_dir, epochs, ckpt: _cfg(work_dir, str(data), epochs, ckpt),
        str(tmp_path))
