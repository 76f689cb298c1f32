# Copyright (c) mmssl contributors. All rights reserved.
"""Label fractions and k-fold parts of a labelled data set."""
from collections import Counter

import pytest

from mmssl.datasets import (KFoldDataset, LabelFractionDataset, kfold_indices,
                            sample_fraction)


def test_sample_fraction_is_class_balanced_and_seeded():
    labels = [i % 4 for i in range(200)] + [4]  # class 4 has one item
    a = sample_fraction(labels, 0.1, seed=0)
    assert a == sample_fraction(labels, 0.1, seed=0)
    assert a != sample_fraction(labels, 0.1, seed=1)
    # round(0.1 * 50) = 5 per class, at least one of the single item
    assert Counter(labels[i] for i in a) == {0: 5, 1: 5, 2: 5, 3: 5, 4: 1}
    assert a == sorted(set(a))
    assert sample_fraction(labels, 1.0, seed=3) == list(range(201))
    # round, not floor: 0.3 * 50 = 15, 0.33 * 50 = 16.5 -> 16
    b = sample_fraction(labels, 0.33, seed=0)
    assert Counter(labels[i] for i in b)[0] == 16


def test_kfold_parts_are_disjoint_and_cover():
    n, k = 23, 5
    vals = [kfold_indices(n, k, f, 'val', seed=42) for f in range(k)]
    assert sorted(i for v in vals for i in v) == list(range(n))
    assert {len(v) for v in vals} <= {4, 5}
    for f, val in enumerate(vals):
        train = kfold_indices(n, k, f, 'train', seed=42)
        assert not set(train) & set(val)
        assert sorted(train + val) == list(range(n))
    assert vals[0] == kfold_indices(n, k, 0, 'val', seed=42)
    assert vals[0] != kfold_indices(n, k, 0, 'val', seed=7)


def _inner(tmp_path, n=60, classes=3):
    root = tmp_path / 'data'
    lines = []
    for i in range(n):
        name = f'c{i % classes}/img{i}.png'
        lines.append(f'{name} {i % classes}')
    (tmp_path / 'ann.txt').write_text('\n'.join(lines))
    return dict(
        type='mmpretrain.CustomDataset',
        data_root=str(root),
        ann_file=str(tmp_path / 'ann.txt'),
        data_prefix='',
        classes=[f'c{c}' for c in range(classes)],
        pipeline=[dict(type='LoadImageFromFile')])


def test_label_fraction_dataset(tmp_path):
    ds = LabelFractionDataset(_inner(tmp_path), fraction=0.2, seed=0)
    labels = [ds.get_data_info(i)['gt_label'] for i in range(len(ds))]
    assert Counter(labels) == {0: 4, 1: 4, 2: 4}
    assert ds.metainfo['classes'] == ('c0', 'c1', 'c2')
    # the clean label of every kept item is the inner one (img<i> has i % 3)
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        index = int(info['img_path'].rsplit('img', 1)[1].split('.')[0])
        assert info['gt_label'] == index % 3
    same = LabelFractionDataset(_inner(tmp_path), fraction=0.2, seed=0)
    assert [same.get_data_info(i)['img_path'] for i in range(len(same))
            ] == [ds.get_data_info(i)['img_path'] for i in range(len(ds))]


def test_kfold_dataset_of_a_fraction(tmp_path):
    inner = dict(
        type='mmssl.LabelFractionDataset',
        dataset=_inner(tmp_path),
        fraction=0.5)
    train = KFoldDataset(inner, num_folds=5, fold=1, part='train')
    val = KFoldDataset(inner, num_folds=5, fold=1, part='val')
    assert (len(train), len(val)) == (24, 6)
    paths = {train.get_data_info(i)['img_path'] for i in range(len(train))}
    held = {val.get_data_info(i)['img_path'] for i in range(len(val))}
    assert not paths & held


@pytest.mark.parametrize('kwargs, match', [
    (dict(fraction=0.), 'fraction must be a number in \\(0'),
    (dict(fraction=1.5), 'fraction must be a number in \\(0'),
    (dict(seed=-1), 'seed must be an integer >= 0'),
])
def test_label_fraction_errors(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        LabelFractionDataset(_inner(tmp_path), **kwargs)


def test_subset_errors(tmp_path):
    with pytest.raises(ValueError, match='fold must be an integer in'):
        KFoldDataset(_inner(tmp_path), num_folds=5, fold=5)
    with pytest.raises(ValueError, match='num_folds must be an integer'):
        KFoldDataset(_inner(tmp_path), num_folds=1)
    with pytest.raises(ValueError, match='part must be one of'):
        KFoldDataset(_inner(tmp_path), part='test')
    with pytest.raises(ValueError, match='cannot make 5 folds'):
        KFoldDataset(_inner(tmp_path, n=3), num_folds=5)
    with pytest.raises(ValueError, match='must be the config dict'):
        LabelFractionDataset('data/train.txt')
    unlabelled = dict(
        type='mmssl.UnlabeledImageFolder', data_root=str(tmp_path))
    (tmp_path / 'a.png').write_bytes(b'')
    with pytest.raises(ValueError, match='without gt_label|no items'):
        LabelFractionDataset(unlabelled, fraction=0.5)


def _items(ds):
    return [ds.get_data_info(i)['img_path'] for i in range(len(ds))]


def test_documented_defaults_and_bounds(tmp_path):
    inner = _inner(tmp_path)
    assert _items(LabelFractionDataset(inner, fraction=0.2)) == _items(
        LabelFractionDataset(inner, fraction=0.2, seed=0))
    default = KFoldDataset(inner)
    assert (default.num_folds, default.fold, default.part,
            default.seed) == (5, 0, 'train', 42)
    assert _items(default) == _items(
        KFoldDataset(inner, num_folds=5, fold=0, part='train', seed=42))
    # the smallest values allowed: 2 folds, seed 0, one item per fold
    two = KFoldDataset(inner, num_folds=2, fold=1, part='val', seed=0)
    assert len(two) == 30
    small = _inner(tmp_path, n=3)
    parts = [
        KFoldDataset(small, num_folds=3, fold=f, part='val') for f in range(3)
    ]
    assert [len(ds) for ds in parts] == [1, 1, 1]
    # a config dict needs its type
    with pytest.raises(ValueError, match='must be the config dict'):
        LabelFractionDataset(dict(data_root='data'))
