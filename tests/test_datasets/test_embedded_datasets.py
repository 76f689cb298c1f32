# Copyright (c) mmssl contributors. All rights reserved.
"""The registered views of the embedded data set, built through the hosts'
registries with real pipelines."""
import inspect
import os.path as osp

import numpy as np
import pytest
import torch

from mmssl.datasets import (SHAPE_CLASSES, UNIDET_LABEL_SPACES,
                            make_embedded_data)
from mmssl.datasets.embedded_shapes import SHAPE_PALETTE

SMALL = dict(img_size=64, num_train=40, num_val=12)


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('embedded'))
    make_embedded_data(root, seed=0, **SMALL)
    return root


def _cls_cfg(root, **kwargs):
    return dict(
        type='mmssl.EmbeddedClsDataset',
        data_root=root,
        pipeline=[dict(type='LoadImageFromFile'),
                  dict(type='PackInputs')],
        **kwargs)


def test_cls_dataset(data_root):
    from mmpretrain.registry import DATASETS
    train = DATASETS.build(_cls_cfg(data_root, split='train'))
    assert len(train) == 40
    assert train.metainfo['classes'] == SHAPE_CLASSES
    sample = train[3]
    assert isinstance(sample['inputs'], torch.Tensor)
    assert sample['inputs'].shape == (3, 64, 64)
    assert sample['inputs'].dtype == torch.uint8
    assert sample['data_samples'].gt_label.tolist() == [3]
    assert train.get_gt_labels()[:10].tolist() == list(range(9)) + [0]

    val = DATASETS.build(_cls_cfg(data_root, split='val', with_label=False))
    assert len(val) == 12
    sample = val[0]
    assert 'gt_label' not in sample['data_samples']
    assert sample['inputs'].shape == (3, 64, 64)
    with pytest.raises(ValueError, match='split'):
        DATASETS.build(_cls_cfg(data_root, split='test'))


def test_cls_dataset_makes_data_on_first_use(tmp_path):
    from mmpretrain.registry import DATASETS
    root = str(tmp_path / 'fresh')
    ds = DATASETS.build(
        _cls_cfg(
            root,
            split='val',
            embedded_cfg=dict(img_size=32, num_train=9, num_val=9)))
    assert len(ds) == 9
    assert ds[0]['inputs'].shape == (3, 32, 32)
    assert osp.isfile(osp.join(root, 'meta.json'))


def test_host_views_are_registered():
    # with mmdet and mmseg installed the real classes are registered, not
    # the stand-ins used when a host cannot be imported
    from mmssl.registry import DATASETS
    for name in ('EmbeddedCocoDataset', 'EmbeddedSegDataset'):
        assert inspect.isclass(DATASETS.get(name)), name


@pytest.mark.parametrize('source', [None, 'source_a', 'source_b'])
def test_coco_dataset(data_root, source):
    from mmdet.registry import DATASETS
    ds = DATASETS.build(
        dict(
            type='mmssl.EmbeddedCocoDataset',
            data_root=data_root,
            split='val',
            source=source,
            pipeline=[
                dict(type='mmdet.LoadImageFromFile'),
                dict(
                    type='mmdet.LoadAnnotations',
                    with_bbox=True,
                    with_mask=True),
                dict(type='mmdet.PackDetInputs')
            ]))
    classes = SHAPE_CLASSES if source is None else \
        UNIDET_LABEL_SPACES[source]['classes']
    assert ds.metainfo['classes'] == tuple(classes)
    assert len(ds) == (6 if source is None else 3)
    sample = ds[0]
    assert sample['inputs'].shape == (3, 64, 64)
    inst = sample['data_samples'].gt_instances
    assert 1 <= len(inst) <= 3
    assert inst.bboxes.tensor.shape == (len(inst), 4)
    assert int(inst.labels.max()) < len(classes)
    masks = inst.masks.to_ndarray()
    for box, mask in zip(inst.bboxes.tensor.numpy(), masks):
        ys, xs = np.nonzero(mask)
        assert box.tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


def test_seg_dataset(data_root):
    from mmseg.registry import DATASETS
    ds = DATASETS.build(
        dict(
            type='mmssl.EmbeddedSegDataset',
            data_root=data_root,
            split='train',
            pipeline=[
                dict(type='mmseg.LoadImageFromFile'),
                dict(type='mmseg.LoadAnnotations'),
                dict(type='mmseg.PackSegInputs')
            ]))
    assert len(ds) == 20
    assert ds.metainfo['classes'] == ('background', ) + SHAPE_CLASSES
    # the background black, then the shapes' palette
    assert ds.metainfo['palette'] == [[0, 0, 0]
                                      ] + [list(c) for c in SHAPE_PALETTE]
    sample = ds[0]
    assert sample['inputs'].shape == (3, 64, 64)
    seg = sample['data_samples'].gt_sem_seg.data
    assert seg.shape == (1, 64, 64)
    assert 0 < int(seg.max()) <= len(SHAPE_CLASSES)
