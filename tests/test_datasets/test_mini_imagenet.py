# Copyright (c) mmssl contributors. All rights reserved.
"""mmssl.MiniImageNet on a tiny fake tree: loads, labels, clear errors."""
import os.path as osp

import numpy as np
import pytest
from PIL import Image

from mmssl.datasets import MINI_IMAGENET_CLASSES, MiniImageNet
from mmssl.registry import DATASETS

# (relative path, label): the first and last class and one in between
SAMPLES = {
    'train': [('n01532829/n01532829_1.png', 0),
              ('n01532829/n01532829_2.png', 0),
              ('n02074367/n02074367_1.png', 10),
              ('n13133613/n13133613_1.png', 99)],
    'val': [('n01532829/n01532829_3.png', 0),
            ('n13133613/n13133613_2.png', 99)],
}


def _write_split(root, split, lines):
    path = osp.join(root, 'meta', f'{split}.txt')
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    return path


@pytest.fixture
def root(tmp_path):
    """data/mini-imagenet-like tree: images/<wnid>/*.png + meta/*.txt."""
    rng = np.random.default_rng(0)
    (tmp_path / 'meta').mkdir()
    for split, samples in SAMPLES.items():
        for rel, _ in samples:
            path = tmp_path / 'images' / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            pixels = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(path)
        _write_split(
            str(tmp_path), split,
            [f'{rel} {label}' for rel, label in samples] + [''])
    return str(tmp_path)


def test_classes():
    assert len(MINI_IMAGENET_CLASSES) == 100
    assert len(set(MINI_IMAGENET_CLASSES)) == 100
    assert list(MINI_IMAGENET_CLASSES) == sorted(MINI_IMAGENET_CLASSES)
    assert MiniImageNet.METAINFO['classes'] == MINI_IMAGENET_CLASSES


@pytest.mark.parametrize('split', ['train', 'val'])
def test_loads_with_labels(root, split):
    ds = DATASETS.build(
        dict(type='mmssl.MiniImageNet', data_root=root, split=split))
    assert isinstance(ds, MiniImageNet)
    assert len(ds) == len(SAMPLES[split])
    assert ds.CLASSES == MINI_IMAGENET_CLASSES
    assert ds.get_gt_labels().tolist() == [lb for _, lb in SAMPLES[split]]
    for i, (rel, _) in enumerate(SAMPLES[split]):
        info = ds.get_data_info(i)
        assert info['img_path'] == osp.join(root, 'images', rel)
        assert osp.isfile(info['img_path'])


def test_pipeline_reads_images(root):
    ds = MiniImageNet(
        data_root=root,
        split='val',
        pipeline=[dict(type='LoadImageFromFile'),
                  dict(type='PackInputs')])
    item = ds[1]
    assert tuple(item['inputs'].shape) == (3, 8, 8)
    assert item['data_samples'].gt_label.tolist() == [99]


def test_without_labels(root):
    ds = MiniImageNet(data_root=root, split='train', with_label=False)
    assert len(ds) == 4
    assert 'gt_label' not in ds.get_data_info(0)


def test_bad_split_name(root):
    with pytest.raises(ValueError, match='split must be one of'):
        MiniImageNet(data_root=root, split='training')


def test_missing_data_root(tmp_path):
    missing = str(tmp_path / 'nowhere')
    with pytest.raises(FileNotFoundError) as err:
        MiniImageNet(data_root=missing)
    msg = str(err.value)
    assert f"data_root='{missing}'" in msg
    assert 'meta/' in msg and 'data_root=' in msg  # the layout and the fix


def test_missing_image_folder(root):
    with pytest.raises(FileNotFoundError) as err:
        MiniImageNet(data_root=root, data_prefix='pictures')
    assert osp.join(root, 'pictures') in str(err.value)


def test_missing_split_file(root):
    with pytest.raises(FileNotFoundError) as err:
        MiniImageNet(data_root=root, split='test')
    msg = str(err.value)
    assert osp.join(root, 'meta', 'test.txt') in msg
    assert 'ann_file' in msg and "split='test'" in msg


@pytest.mark.parametrize('label', [100, -1])
def test_label_out_of_range(root, label):
    path = _write_split(
        root, 'train',
        ['n01532829/n01532829_1.png 0', f'n01532829/n01532829_2.png {label}'])
    with pytest.raises(ValueError) as err:
        MiniImageNet(data_root=root, split='train')
    msg = str(err.value)
    assert f"line 2 of '{path}'" in msg
    assert f'label {label} is out of range for 100 classes' in msg
    assert '[0, 99]' in msg


@pytest.mark.parametrize('line', [
    'n01532829/n01532829_1.png', 'n01532829/n01532829_1.png x',
    'n01532829/n01532829_1.png n01532829'
])
def test_malformed_line(root, line):
    path = _write_split(root, 'val', [line])
    with pytest.raises(ValueError) as err:
        MiniImageNet(data_root=root, split='val')
    msg = str(err.value)
    assert f"line 1 of '{path}' is malformed" in msg
    assert repr(line) in msg


def test_empty_split_file(root):
    path = _write_split(root, 'val', [''])
    with pytest.raises(ValueError, match='lists no images') as err:
        MiniImageNet(data_root=root, split='val')
    assert path in str(err.value)


def test_paths_with_spaces_and_other_classes(root):
    """The label is the last field; ``classes`` sets the class count."""
    img = osp.join(root, 'images', 'a b.png')
    Image.new('RGB', (8, 8)).save(img)
    _write_split(root, 'val', ['a b.png 1'])
    ds = MiniImageNet(data_root=root, split='val', classes=['x', 'y'])
    assert ds.get_data_info(0)['img_path'] == img
    assert ds.get_gt_labels().tolist() == [1]
    _write_split(root, 'val', ['a b.png 2'])
    with pytest.raises(ValueError, match='out of range for 2 classes'):
        MiniImageNet(data_root=root, split='val', classes=['x', 'y'])
