# Copyright (c) mmssl contributors. All rights reserved.
"""The input-pipeline benchmark: counts, rows, transform names, errors.

No test asserts a time or a speed: timings on a shared machine are not
reproducible.
"""
import json
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config

from mmssl.analysis import (batch_images, benchmark_loader, loader_summary,
                            time_transforms)
from mmssl.datasets import make_embedded_data

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
EMBEDDED_CONFIGS = [
    'configs/mae/mae_vit-tiny-p8_1xb64-coslr-30e_embedded.py',
    'configs/data2vec2/data2vec2_vit-tiny-p8_1xb64-coslr-30e_embedded.py',
]
FOLDER_PIPELINE = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=32, backend='pillow'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackInputs'),
]


def write_jpegs(folder, num=8, seed=0):
    """``num`` random RGB JPEGs of 40 x 48 pixels in two class folders."""
    from PIL import Image
    rng = np.random.default_rng(seed)
    for i in range(num):
        sub = folder / f'class_{i % 2}'
        sub.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(sub / f'img_{i}.jpg', format='JPEG')
    return folder


def folder_config(root, batch_size=2, collate='default_collate'):
    """A training config over an ImageNet-style folder (CustomDataset)."""
    return Config(
        dict(
            default_scope='mmpretrain',
            train_dataloader=dict(
                batch_size=batch_size,
                num_workers=0,
                sampler=dict(type='DefaultSampler', shuffle=True),
                collate_fn=dict(type=collate),
                dataset=dict(
                    type='mmpretrain.CustomDataset',
                    data_root=str(root),
                    with_label=False,
                    pipeline=FOLDER_PIPELINE))))


@pytest.fixture
def jpeg_config(tmp_path):
    return folder_config(write_jpegs(tmp_path / 'images'))


@pytest.fixture(scope='module')
def embedded_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('embedded'))
    make_embedded_data(root, num_train=24, num_val=4)
    return root


def test_folder_counts_rows_and_transforms(jpeg_config):
    # 8 images, batch 2: 4 batches an epoch, so the 1 + 3 x 2 batches read
    # cross into the next epochs
    result = benchmark_loader(
        jpeg_config, (0, 1, 2), batches=3, warmup=1, repeat=2)
    runs = result['runs']
    assert [r['num_workers'] for r in runs] == [0, 1, 2]
    for run in runs:
        assert run['images'] == 3 * 2 * 2  # batches x batch size x windows
        assert run['batch_size'] == 2
        assert len(run['img_per_s_windows']) == 2
        for key in ('img_per_s', 'batches_per_s', 's_per_batch',
                    'first_batch_s', 'build_s'):
            assert run[key] > 0, key
    assert not runs[0]['persistent_workers']  # torch refuses it with 0
    assert runs[1]['persistent_workers'] and runs[2]['persistent_workers']
    assert result['best'] in runs
    assert result['num_samples'] == 8
    assert result['collate_fn'] == 'default_collate'
    transforms = result['transforms']
    assert [s['name'] for s in transforms['steps']] == \
        [t['type'] for t in FOLDER_PIPELINE]
    assert transforms['bottleneck'] in [t['type'] for t in FOLDER_PIPELINE]
    assert sum(s['share'] for s in transforms['steps']) == pytest.approx(100)
    json.dumps(result)


def test_batch_size_override_and_pseudo_collate(tmp_path):
    cfg = folder_config(
        write_jpegs(tmp_path / 'images', num=12), collate='pseudo_collate')
    result = benchmark_loader(
        cfg,
        [np.int64(0)],  # numpy integers count as integers
        batches=2,
        warmup=0,
        repeat=1,
        batch_size=3,
        transform_samples=0)
    run, = result['runs']
    assert run['images'] == 2 * 3 and run['batch_size'] == 3
    assert result['transforms'] is None


@pytest.mark.parametrize('config', EMBEDDED_CONFIGS)
def test_embedded_configs(config, embedded_root):
    cfg = Config.fromfile(osp.join(ROOT, config))
    cfg.train_dataloader.dataset.data_root = embedded_root
    result = benchmark_loader(
        cfg, (0, ), batches=2, warmup=1, repeat=1, batch_size=4)
    assert result['runs'][0]['images'] == 2 * 4
    assert result['num_samples'] == 24
    names = [s['type'] for s in result['transforms']['steps']]
    assert names == [t['type'] for t in cfg.train_dataloader.dataset.pipeline]


def _drop(results):
    """A filter that drops every sample."""
    return None


def test_time_transforms_stops_at_a_dropped_sample(jpeg_config):
    pipeline = jpeg_config.train_dataloader.dataset.pipeline
    pipeline.insert(2, _drop)
    result = time_transforms(jpeg_config, num_samples=3)
    assert result['samples'] == 3
    assert [s['name'] for s in result['steps']] == [
        'LoadImageFromFile', 'RandomResizedCrop', 'function', 'RandomFlip',
        'PackInputs'
    ]
    assert [s['samples'] for s in result['steps']] == [3, 3, 3, 0, 0]
    assert result['steps'][-1]['ms_per_sample'] == 0


def test_batch_images():
    data_samples = [object()] * 3
    assert batch_images(
        dict(inputs=torch.zeros(3, 1), data_samples=data_samples)) == 3
    # pseudo_collate: a list of images; several views: a list per view
    assert batch_images(dict(inputs=[torch.zeros(1)] * 5)) == 5
    assert batch_images(
        dict(inputs=[torch.zeros(4, 1)] * 2, data_samples=[object()] * 4)) == 4
    assert batch_images(torch.zeros(6, 2)) == 6


def test_summary_names_the_limiting_side():
    assert loader_summary(50., 100.).startswith('the loader limits')
    assert loader_summary(300., 100.).startswith('the step limits')


@pytest.mark.parametrize('kwargs, words', [
    (dict(num_workers_list=(0, -1)), ['worker count', '-1', '>= 0']),
    (dict(num_workers_list=()), ['empty', '(0, 1, 2)']),
    (dict(num_workers_list=(1.5, )), ['worker count', '1.5']),
    (dict(batches=0), ['batches', '>= 1', 'got 0']),
    (dict(warmup=-2), ['warmup', '>= 0', 'got -2']),
    (dict(batch_size=0), ['batch_size', 'got 0']),
])
def test_bad_arguments_are_named(jpeg_config, kwargs, words):
    with pytest.raises(ValueError) as exc:
        benchmark_loader(jpeg_config, **kwargs)
    for word in words:
        assert word in str(exc.value)


def test_config_without_train_loader():
    with pytest.raises(ValueError, match='has no train_dataloader.*training'):
        benchmark_loader(Config(dict(model=dict(type='x'))))
