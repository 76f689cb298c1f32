# Copyright (c) mmssl contributors. All rights reserved.
"""Clothing1M on a tiny fake folder of the released layout."""
import os
import os.path as osp

import numpy as np
import pytest
from PIL import Image

import mmssl  # noqa: F401
from mmssl.datasets import CLOTHING1M_CLASSES, Clothing1M
from mmssl.registry import DATASETS


def _fake(root):
    keys = [f'images/{i % 2}/0{i}/{i:03d}.jpg' for i in range(8)]
    for i, key in enumerate(keys):
        os.makedirs(osp.dirname(osp.join(root, key)), exist_ok=True)
        Image.fromarray(np.full((12, 10, 3), 20 * i,
                                dtype=np.uint8)).save(osp.join(root, key))

    def write(name, lines):
        with open(osp.join(root, name), 'w') as f:
            f.write('\n'.join(lines) + '\n')

    # 0-4 noisy training images, 5 val, 6-7 test; 1 and 4 also have clean
    # labels (different from their noisy ones for 1)
    write('noisy_label_kv.txt', [f'{k} {i % 14}' for i, k in enumerate(keys)])
    write('clean_label_kv.txt', [
        f'{keys[1]} 13', f'{keys[4]} 4', f'{keys[5]} 2', f'{keys[6]} 7',
        f'{keys[7]} 8'
    ])
    write('noisy_train_key_list.txt', keys[:5])
    write('clean_val_key_list.txt', keys[5:6])
    write('clean_test_key_list.txt', keys[6:])
    write('category_names_eng.txt', CLOTHING1M_CLASSES)
    return keys


def test_splits_labels_and_clean_labels(tmp_path):
    root = str(tmp_path)
    keys = _fake(root)
    train = DATASETS.build(
        dict(type='mmssl.Clothing1M', data_root=root, split='noisy_train'))
    assert len(train) == 5 and len(train.metainfo['classes']) == 14
    info = [train.get_data_info(i) for i in range(5)]
    assert [it['gt_label'] for it in info] == [0, 1, 2, 3, 4]
    assert [it['gt_label_clean'] for it in info] == [-1, 13, -1, -1, 4]
    assert info[2]['img_path'] == osp.join(root, keys[2])
    assert info[3]['sample_idx'] == 3
    assert list(train.get_gt_labels()) == [0, 1, 2, 3, 4]
    val = Clothing1M(root, split='clean_val')
    assert [val.get_data_info(0)[k]
            for k in ('gt_label', 'gt_label_clean')] == [2, 2]
    test = Clothing1M(
        root,
        split='clean_test',
        pipeline=[
            dict(type='mmpretrain.LoadImageFromFile'),
            dict(type='mmpretrain.PackInputs')
        ])
    item = test[1]
    assert item['inputs'].shape == (3, 12, 10)
    assert int(item['data_samples'].gt_label) == 8


def test_clear_errors(tmp_path):
    root = str(tmp_path)
    keys = _fake(root)
    with pytest.raises(ValueError, match='split'):
        Clothing1M(root, split='train')
    os.remove(osp.join(root, 'clean_val_key_list.txt'))
    with pytest.raises(FileNotFoundError, match='clean_val_key_list.txt'):
        Clothing1M(root, split='clean_val')
    with open(osp.join(root, 'noisy_train_key_list.txt'), 'a') as f:
        f.write('images/9/99/missing.jpg\n')
    with pytest.raises(ValueError, match='1 keys of noisy_train_key_list'):
        Clothing1M(root)
    with open(osp.join(root, 'clean_label_kv.txt'), 'a') as f:
        f.write(f'{keys[6]} 14\n')  # the last entry wins: out of range
    with pytest.raises(ValueError, match='label 14'):
        Clothing1M(root, split='clean_test')


def test_category_names_file_and_label_file_lines(tmp_path):
    """``category_names_eng.txt`` names the classes when present (and must
    name 14); a label file's malformed line is named by its 1-based
    number."""
    root = str(tmp_path)
    keys = _fake(root)
    names = [f'kind {i}' for i in range(14)]
    with open(osp.join(root, 'category_names_eng.txt'), 'w') as f:
        f.write('\n'.join(names) + '\n\n')
    assert Clothing1M(root).metainfo['classes'] == tuple(names)
    with open(osp.join(root, 'category_names_eng.txt'), 'w') as f:
        f.write('\n'.join(names[:13]) + '\n')
    with pytest.raises(ValueError, match='names 13 classes'):
        Clothing1M(root)
    os.remove(osp.join(root, 'category_names_eng.txt'))
    assert Clothing1M(root).metainfo['classes'] == tuple(CLOTHING1M_CLASSES)
    with open(osp.join(root, 'noisy_label_kv.txt'), 'w') as f:
        f.write(f'{keys[0]} 1\n\n{keys[1]} 2 extra\n')
    with pytest.raises(ValueError, match='line 3 of'):
        Clothing1M(root)
