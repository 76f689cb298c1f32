# Copyright (c) mmssl contributors. All rights reserved.
"""Positional labels: exact resume (2 epochs + --resume to 4 == 4 straight)
of the supervised classifier with APL and of MAE + RPL (random pairs)."""
import os.path as osp

import numpy as np
from mmengine.config import Config
from PIL import Image

from mmssl.testing import (assert_resume_equals_straight, tiny_mae_cfg,
                           tiny_poslabel_vit_cfg, tiny_pretrain_runner_cfg)


def _write_labelled_images(root, n=12, size=40):
    rng = np.random.RandomState(0)
    lines = []
    for i in range(n):
        arr = rng.randint(0, 255, (size, size, 3), dtype=np.uint8)
        Image.fromarray(arr).save(osp.join(root, f'{i:03d}.png'))
        lines.append(f'{i:03d}.png {i % 3}\n')
    with open(osp.join(root, 'ann.txt'), 'w') as f:
        f.writelines(lines)


def _classifier():
    return dict(
        type='mmssl.PosLabelClassifier',
        data_preprocessor=dict(
            type='mmpretrain.ClsDataPreprocessor',
            num_classes=3,
            mean=[127.5] * 3,
            std=[127.5] * 3),
        backbone=tiny_poslabel_vit_cfg(drop_path_rate=0.1),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(
            type='LinearClsHead',
            num_classes=3,
            in_channels=32,
            loss=dict(type='CrossEntropyLoss')),
        pos_head=dict(
            type='mmssl.AbsPosLabelHead',
            in_channels=32,
            grid_size=4,
            mlp_dims=(16, 8),
            dropout=0.1))


def _mae_rpl():
    cfg = tiny_mae_cfg()
    cfg.update(
        type='mmssl.MAEPosLabel',
        pos_head=dict(
            type='mmssl.RelPosLabelHead',
            in_channels=32,
            grid_size=4,
            mlp_dims=(16, 16),
            max_pairs=6))
    return cfg


def _run(tmp_path, model, labelled):
    data = tmp_path / 'imgs'
    data.mkdir()
    _write_labelled_images(str(data))
    kwargs = dict(
        dataset_kwargs=dict(with_label=True, ann_file='ann.txt'),
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(
                type='RandomResizedCrop', scale=32, crop_ratio_range=(0.5, 1)),
            dict(type='RandomFlip', prob=0.5),
            dict(type='PackInputs')
        ]) if labelled else {}

    def make(work_dir, epochs, ckpt):
        return Config(
            tiny_pretrain_runner_cfg(
                model, work_dir, str(data), epochs, resume_from=ckpt,
                **kwargs))

    assert_resume_equals_straight(make, str(tmp_path))


def test_poslabel_classifier_resume_equals_straight_run(tmp_path):
    _run(tmp_path, _classifier(), labelled=True)


def test_mae_poslabel_rpl_resume_equals_straight_run(tmp_path):
    _run(tmp_path, _mae_rpl(), labelled=False)
