# Copyright (c) mmssl contributors. All rights reserved.
"""FashionPairDataset: deterministic pairs with the true silhouettes."""
import numpy as np
import pytest
import torch
from PIL import Image

from mmssl.datasets import SHAPE_CLASSES, make_embedded_data
from mmssl.registry import DATASETS


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('embedded'))
    make_embedded_data(root, seed=0, img_size=32, num_train=9, num_val=12)
    return root


def _cfg(root, **kw):
    return dict(
        type='mmssl.FashionPairDataset',
        data_root=root,
        pipeline=[
            dict(type='mmssl.LoadFashionPair', size=16),
            dict(type='mmssl.PackFashionPair')
        ],
        **kw)


def test_pairs_are_deterministic_and_of_other_classes(data_root):
    ds = DATASETS.build(_cfg(data_root))
    assert len(ds) == 12 and ds.reference_offset == 1
    infos = [ds.get_data_info(i) for i in range(len(ds))]
    for info in infos:
        assert info['garment_label'] != info['reference_label']
        assert SHAPE_CLASSES[info['garment_label']] in info['garment_path']
    # classes cycle in the embedded split: the next image is the reference
    assert [i['reference_label'] for i in infos[:3]] == [1, 2, 3]
    again = DATASETS.build(_cfg(data_root))
    assert all(
        a['reference_path'] == b['reference_path']
        and np.array_equal(a['gt_mask'], b['gt_mask'])
        for a, b in zip(infos, [again.get_data_info(i) for i in range(12)]))
    sub = DATASETS.build(
        _cfg(data_root, num_pairs=2, garment_classes=['square', 'cross']))
    assert [sub.get_data_info(i)['garment_label'] for i in range(2)] == [4, 8]


def test_true_mask_is_the_main_shape(data_root):
    ds = DATASETS.build(_cfg(data_root, num_pairs=9))
    for i in range(9):
        info = ds.get_data_info(i)
        mask = info['gt_mask'].astype(bool)
        img = np.asarray(Image.open(info['garment_path'])).astype(float)
        # a sizeable shape, not the whole image, and its pixels differ in
        # colour from the pixels around it
        assert 0.05 < mask.mean() < 0.7
        inside = img[mask].mean(0)
        outside = img[~mask].mean(0)
        assert np.abs(inside - outside).max() > 10


def test_packed_sample(data_root):
    ds = DATASETS.build(_cfg(data_root, num_pairs=1))
    sample = ds[0]
    assert sample['inputs'].shape == (2, 3, 16, 16)
    assert -1 <= float(sample['inputs'].min()) <= float(
        sample['inputs'].max()) <= 1
    gt = sample['data_samples'].gt_mask
    assert gt.shape == (1, 16, 16) and set(gt.unique().tolist()) <= {0, 1}
    full = torch.from_numpy(ds.get_data_info(0)['gt_mask']).float()
    assert abs(float(gt.mean()) - float(full.mean())) < 0.05
    meta = sample['data_samples'].metainfo
    assert meta['garment_label'] == 0 and meta['sample_idx'] == 0


def test_bad_input_is_named(data_root, tmp_path):
    with pytest.raises(ValueError, match='garment_classes'):
        DATASETS.build(_cfg(data_root, garment_classes=['hat']))
    with pytest.raises(ValueError, match='split'):
        DATASETS.build(_cfg(data_root, split='test'))
    # a garment image that is not the generator's: its mask is unknown
    import shutil
    root = str(tmp_path / 'copy')
    shutil.copytree(data_root, root)
    path = f'{root}/cls/val/circle/val_00000.png'
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(path)
    with pytest.raises(ValueError, match='check_images'):
        DATASETS.build(_cfg(root, num_pairs=1))
    assert len(DATASETS.build(_cfg(root, num_pairs=1,
                                   check_images=False))) == 1


def test_reference_is_the_next_image_of_another_class_after_the_offset(
        data_root):
    n = len(SHAPE_CLASSES)
    ds = DATASETS.build(_cfg(data_root, reference_offset=n))
    infos = [ds.get_data_info(i) for i in range(len(ds))]
    # the image n places on has the same class: the one after it is used
    assert infos[0]['reference_path'] == infos[n + 1]['garment_path']
    assert all(i['garment_label'] != i['reference_label'] for i in infos)


def test_mask_resized_by_area_half_a_pixel_is_garment(tmp_path):
    from mmssl.datasets.fashion_pairs import LoadFashionPair
    for name in ('g.png', 'r.png'):
        Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / name)
    mask = np.zeros((16, 16), np.uint8)
    mask[0, 0:2] = 1  # half of output pixel (0, 0)
    mask[0:2, 2] = 1  # a quarter of (0, 1) ...
    mask[0, 3] = 1  # ... and another quarter: half
    mask[2:4, 4:6] = 1
    mask[2, 4] = 0  # three quarters of (1, 2)
    mask[6, 6] = 1  # a quarter of (3, 3): background
    out = LoadFashionPair(size=8).transform(
        dict(
            garment_path=str(tmp_path / 'g.png'),
            reference_path=str(tmp_path / 'r.png'),
            gt_mask=mask))
    assert out['garment'].shape == out['reference'].shape == (3, 8, 8)
    expected = torch.zeros(1, 8, 8)
    expected[0, 0, 0] = expected[0, 0, 1] = expected[0, 1, 2] = 1
    assert torch.equal(out['gt_mask'], expected)
    with pytest.raises(ValueError, match='size must be an integer >= 8'):
        LoadFashionPair(size=7)
