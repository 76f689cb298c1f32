# Copyright (c) mmssl contributors. All rights reserved.
"""ClassCondDDPM: exact resume (2 epochs + --resume to 4 == 4 straight)."""
import os.path as osp
import sys

import numpy as np
from mmengine.config import Config
from PIL import Image

from mmssl.testing import (assert_resume_equals_straight,
                           tiny_pretrain_runner_cfg)

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
    model = tiny_ddpm_cfg(16)
    model['data_preprocessor'] = dict(
        type='mmpretrain.ClsDataPreprocessor',
        mean=[127.5] * 3,
        std=[127.5] * 3)
    return Config(
        tiny_pretrain_runner_cfg(
            model,
            work_dir,
            data_root,
            max_epochs,
            resume_from=resume_from,
            pipeline=[
                dict(type='LoadImageFromFile'),
                dict(type='RandomFlip', prob=0.5),
                dict(type='PackInputs')
            ],
            dataset_kwargs=dict(with_label=True, ann_file='ann.txt')))


def test_ddpm_resume_equals_straight_run(tmp_path):
    data = tmp_path / 'imgs'
    data.mkdir()
    _write_images(str(data))
    assert_resume_equals_straight(
        lambda work_dir, epochs, ckpt: _cfg(work_dir, str(data), epochs, ckpt),
        str(tmp_path))
