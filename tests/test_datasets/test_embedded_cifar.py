# Copyright (c) mmssl contributors. All rights reserved.
"""The CIFAR-format copy of the embedded classification data."""
import json
import os
import os.path as osp

import numpy as np
import pytest
from PIL import Image

from mmssl.datasets import EmbeddedCIFARDataset, make_embedded_data
from mmssl.datasets.embedded_cifar import ensure_embedded_cifar


@pytest.fixture(scope='module')
def source(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('embedded'))
    make_embedded_data(root, img_size=32, num_train=10, num_val=5)
    return root


def test_copy_is_made_once_with_its_source_recorded(source, tmp_path):
    root = str(tmp_path / 'cifar')
    assert ensure_embedded_cifar(root, source) == root
    with open(osp.join(root, 'source.json')) as f:
        recorded = json.load(f)
    with open(osp.join(source, 'meta.json')) as f:
        params = json.load(f)['params']
    assert recorded == dict(
        generator='mmssl.datasets.embedded_cifar',
        embedded_params=params,
        size=64)  # the default size
    meta = osp.join(root, 'cifar-10-batches-py', 'batches.meta')
    stamp = os.stat(meta).st_mtime_ns
    assert ensure_embedded_cifar(root, source) == root
    assert os.stat(meta).st_mtime_ns == stamp  # reused, not rewritten
    assert sorted(p for p in os.listdir(root) if not p.startswith('.')) == [
        'cifar-10-batches-py', 'source.json'
    ]
    assert not [p for p in os.listdir(root) if p.startswith('.tmp-')]


def test_dataset_items_follow_the_embedded_files(source, tmp_path):
    root = str(tmp_path / 'cifar')
    train = EmbeddedCIFARDataset(
        data_root=root, source_root=source, size=16, split='train')
    test = EmbeddedCIFARDataset(
        data_root=root, source_root=source, size=16, split='test')
    assert len(train) == 10 and len(test) == 5
    from mmssl.datasets import EmbeddedClsDataset
    cls = EmbeddedClsDataset(data_root=source, split='train')
    for idx in (0, 9):
        item = train.get_data_info(idx)
        ref = cls.get_data_info(idx)
        assert item['gt_label'] == ref['gt_label']
        img = np.asarray(
            Image.open(ref['img_path']).convert('RGB').resize((16, 16),
                                                              Image.BOX))
        assert item['img'].shape == (16, 16, 3)
        assert np.abs(item['img'].astype(int) - img).mean() < 2


def test_a_copy_of_other_parameters_is_refused(source, tmp_path):
    root = str(tmp_path / 'cifar')
    ensure_embedded_cifar(root, source, size=16)
    with pytest.raises(ValueError, match="'size': 32") as err:
        ensure_embedded_cifar(root, source, size=32)
    assert root in str(err.value) and 'delete' in str(err.value)
    with pytest.raises(ValueError, match='size'):
        ensure_embedded_cifar(str(tmp_path / 'other'), source, size=7)
    ensure_embedded_cifar(str(tmp_path / 'smallest'), source, size=8)


def test_dataset_default_size_is_64(source, tmp_path):
    ds = EmbeddedCIFARDataset(
        data_root=str(tmp_path / 'cifar'), source_root=source, split='test')
    assert ds.get_data_info(0)['img'].shape == (64, 64, 3)


def test_a_half_made_copy_is_made_again(source, tmp_path):
    """A recorded source without ``batches.meta`` (a copy cut short) is
    rebuilt, replacing the old folder."""
    root = str(tmp_path / 'cifar')
    ensure_embedded_cifar(root, source, size=16)
    folder = osp.join(root, 'cifar-10-batches-py')
    os.remove(osp.join(folder, 'batches.meta'))
    ensure_embedded_cifar(root, source, size=16)
    assert osp.isfile(osp.join(folder, 'batches.meta'))
    assert len(
        EmbeddedCIFARDataset(data_root=root, source_root=source,
                             size=16)) == 10
