# Copyright (c) mmssl contributors. All rights reserved.
"""Fixtures for the tools tests: a tiny MAE config and image folder."""
import importlib.util
import os.path as osp
import sys

import numpy as np
import pytest

from mmssl.testing import tiny_mae_cfg

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOLS = osp.join(REPO, 'tools')
PYTHON = sys.executable

TINY_MAE = tiny_mae_cfg(scope='mmpretrain')

CONFIG_TEMPLATE = '''
default_scope = 'mmpretrain'
model = {model!r}
train_dataloader = dict(
    batch_size=2,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type='mmpretrain.CustomDataset',
        data_root={data_root!r},
        with_label=False,
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='RandomResizedCrop', scale=32, backend='pillow'),
            dict(type='PackInputs'),
        ]))
optim_wrapper = dict(optimizer=dict(type='AdamW', lr=1e-3))
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=1)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=1),
    checkpoint=dict(type='CheckpointHook', interval=1))
env_cfg = dict(dist_cfg=dict(backend='nccl'))
randomness = dict(seed=0)
log_level = 'INFO'
'''


def load_tool(relpath):
    """Import a script under tools/ as a module."""
    path = osp.join(TOOLS, relpath)
    name = 'mmssl_tool_' + relpath.replace('/', '_').replace('.py', '')
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_images(folder, num=8, size=40, seed=0):
    """Write ``num`` random RGB PNGs of ``size`` x ``size`` pixels."""
    from PIL import Image
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(num):
        pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f'img_{i}.png')
    return folder


@pytest.fixture
def tiny_mae_config(tmp_path):
    """Path of a self-contained tiny MAE pretraining config."""
    data = write_images(tmp_path / 'images')
    path = tmp_path / 'tiny_mae.py'
    path.write_text(
        CONFIG_TEMPLATE.format(model=TINY_MAE, data_root=str(data)))
    return str(path)


TINY_VIT = dict(
    type='mmpretrain.VisionTransformer',
    arch=dict(
        embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64),
    img_size=32,
    patch_size=8)

CLS_CONFIG_TEMPLATE = '''
default_scope = 'mmpretrain'
model = dict(
    type='mmpretrain.ImageClassifier',
    backbone={backbone!r},
    head=dict(
        type='mmpretrain.VisionTransformerClsHead',
        num_classes=2,
        in_channels=32,
        loss=dict(type='mmpretrain.CrossEntropyLoss')),
    data_preprocessor=dict(
        type='mmpretrain.ClsDataPreprocessor',
        num_classes=2,
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        to_rgb=True))
test_dataloader = dict(
    batch_size=2,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='mmpretrain.CustomDataset',
        data_root={data_root!r},
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='ResizeEdge', scale=32),
            dict(type='CenterCrop', crop_size=32),
            dict(type='PackInputs'),
        ]))
test_evaluator = dict(type='Accuracy', topk=(1, ))
test_cfg = dict()
default_hooks = dict(logger=dict(type='LoggerHook', interval=1))
'''


@pytest.fixture
def tiny_cls_config(tmp_path):
    """Path of a tiny ViT classifier test config over a 2-class folder."""
    root = tmp_path / 'cls_images'
    write_images(root / 'cat', num=2, seed=1)
    write_images(root / 'dog', num=2, seed=2)
    path = tmp_path / 'tiny_cls.py'
    path.write_text(
        CLS_CONFIG_TEMPLATE.format(backbone=TINY_VIT, data_root=str(root)))
    return str(path)


@pytest.fixture(scope='session')
def load_tool_module():
    """``load_tool_module('train.py')`` imports a script under tools/."""
    return load_tool


@pytest.fixture
def tiny_mae_model():
    """The tiny MAE model config dict (a fresh copy)."""
    import copy
    return copy.deepcopy(TINY_MAE)


@pytest.fixture
def tiny_vit_backbone():
    """The tiny ViT backbone config matching the tiny MAE encoder."""
    import copy
    return copy.deepcopy(TINY_VIT)


@pytest.fixture(scope='session')
def tools_dir():
    return TOOLS
