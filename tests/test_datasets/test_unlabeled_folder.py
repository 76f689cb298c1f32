# Copyright (c) mmssl contributors. All rights reserved.
"""UnlabeledImageFolder: discovery, messages and unreadable files."""
import os.path as osp

import numpy as np
import pytest
import torch
from mmpretrain.registry import DATASETS
from PIL import Image

PIPELINE = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]


def _image(path, value=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8, 3), value, dtype=np.uint8)).save(
        path, format='PNG' if path.suffix.lower() == '.png' else 'JPEG')


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / 'images'
    _image(root / 'a' / 'x.JPG', 10)
    _image(root / 'a' / 'b' / 'y.png', 20)
    _image(root / 'z.jpeg', 30)
    _image(root / 'c' / 'w.PnG', 40)
    (root / 'notes.txt').write_text('not an image')
    return root


def _build(root, **kwargs):
    kwargs.setdefault('pipeline', PIPELINE)
    return DATASETS.build(
        dict(type='mmssl.UnlabeledImageFolder', data_root=str(root), **kwargs))


def test_recursive_case_insensitive(folder):
    ds = _build(folder)
    names = [
        osp.relpath(ds.get_data_info(i)['img_path'], folder)
        for i in range(len(ds))
    ]
    assert names == ['z.jpeg', 'a/x.JPG', 'a/b/y.png', 'c/w.PnG']
    sample = ds[0]
    assert isinstance(sample['inputs'], torch.Tensor)
    assert sample['inputs'].shape == (3, 8, 8)
    assert 'gt_label' not in sample['data_samples']
    assert len(_build(folder, extensions=('png', ))) == 2


def test_missing_or_empty_root(tmp_path):
    missing = tmp_path / 'nowhere'
    with pytest.raises(FileNotFoundError) as info:
        _build(missing)
    assert str(missing) in str(info.value)
    assert 'data_root' in str(info.value)
    (tmp_path / 'empty' / 'sub').mkdir(parents=True)
    (tmp_path / 'empty' / 'sub' / 'a.txt').write_text('x')
    with pytest.raises(FileNotFoundError, match='no image files'):
        _build(tmp_path / 'empty')
    with pytest.raises(ValueError, match='on_corrupt'):
        _build(tmp_path / 'empty', on_corrupt='ignore')


def _add_corrupt(folder):
    bad = folder / 'a' / 'bad.png'
    bad.write_bytes(b'\x89PNG\r\n\x1a\n' + b'garbage' * 10)
    return str(bad)


def test_corrupt_file_error_mode(folder):
    bad = _add_corrupt(folder)
    ds = _build(folder)
    idx = [ds.get_data_info(i)['img_path'] for i in range(len(ds))].index(bad)
    with pytest.raises(RuntimeError) as info:
        ds[idx]
    assert bad in str(info.value)
    assert "on_corrupt='skip'" in str(info.value)


def test_corrupt_file_skip_mode(folder):
    bad = _add_corrupt(folder)
    ds = _build(folder, on_corrupt='skip')
    paths = [ds.get_data_info(i)['img_path'] for i in range(len(ds))]
    for i in range(len(ds)):
        assert ds[i]['inputs'].shape == (3, 8, 8)
        assert ds[i]['data_samples'].img_path != bad
    assert ds.num_corrupt == 1 and ds.corrupt_files == [bad]

    test_ds = _build(folder, on_corrupt='skip', test_mode=True)
    idx = paths.index(bad)
    assert test_ds[idx]['data_samples'].img_path == \
        paths[(idx + 1) % len(paths)]
    assert test_ds.num_corrupt == 1


def test_pipeline_errors_are_not_hidden(folder):

    def broken(results):
        raise KeyError('a bug in a transform')

    ds = _build(folder, on_corrupt='skip', pipeline=[broken])
    with pytest.raises(KeyError, match='a bug in a transform'):
        ds[0]
    assert ds.num_corrupt == 0
