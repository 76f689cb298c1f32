# Copyright (c) mmssl contributors. All rights reserved.
"""Few-shot sampling, base / novel subsets, CoOp split files."""
import json
from collections import Counter

import pytest

from mmssl.datasets import (CoOpSplitDataset, FewShotDataset, sample_few_shot,
                            split_base_novel)


def test_sample_few_shot_is_seeded_and_per_class():
    labels = [i % 5 for i in range(100)] + [5]  # class 5 has a single item
    a = sample_few_shot(labels, 4, seed=1)
    assert a == sample_few_shot(labels, 4, seed=1)
    assert a != sample_few_shot(labels, 4, seed=2)
    counts = Counter(labels[i] for i in a)
    assert counts == {0: 4, 1: 4, 2: 4, 3: 4, 4: 4, 5: 1}
    assert sample_few_shot(labels, 0, seed=1) == list(range(101))


def test_split_base_novel():
    assert split_base_novel(47) == 24  # DTD: 24 base / 23 novel
    assert split_base_novel(100) == 50  # CoOp's Caltech101
    assert split_base_novel(9) == 5


@pytest.fixture
def split_root(tmp_path):
    names = ['abyssinian', 'american_bulldog', 'beagle', 'boxer', 'pug']
    entries = {
        s: [[f'{names[i % 5]}_{j}.jpg', i % 5, names[i % 5]]
            for j, i in enumerate(range(n))]
        for s, n in (('train', 40), ('val', 10), ('test', 20))
    }
    (tmp_path / 'split_zhou_OxfordPets.json').write_text(json.dumps(entries))
    return tmp_path


def test_coop_split_dataset(split_root):
    ds = CoOpSplitDataset(
        str(split_root), 'split_zhou_OxfordPets.json', split='test')
    assert len(ds) == 20
    assert ds.metainfo['classes'][1] == 'american bulldog'
    assert ds.get_data_info(0)['img_path'].endswith('images/abyssinian_0.jpg')
    with pytest.raises(FileNotFoundError, match='split_zhou_Missing'):
        CoOpSplitDataset(str(split_root), 'split_zhou_Missing.json')


def _pets_train(split_root):
    return dict(
        type='mmssl.CoOpSplitDataset',
        data_root=str(split_root),
        split_file='split_zhou_OxfordPets.json',
        split='train')


def test_few_shot_base_novel(split_root):
    inner = _pets_train(split_root)
    base = FewShotDataset(inner, num_shots=2, seed=1, subsample='base')
    assert len(base) == 6  # 3 base classes x 2 shots
    assert base.metainfo['classes'] == ('abyssinian', 'american bulldog',
                                        'beagle')
    assert base.metainfo['num_base'] == 3
    assert len(base.metainfo['all_classes']) == 5
    novel = FewShotDataset(inner, subsample='novel')
    assert sorted(
        {novel.get_data_info(i)['gt_label']
         for i in range(len(novel))}) == [0, 1]  # relabelled
    assert novel.metainfo['classes'] == ('boxer', 'pug')
    assert novel.metainfo['num_base'] is None
    full = FewShotDataset(inner, subsample='all')
    assert len(full) == 40 and full.metainfo['num_base'] is None


def test_fgvc_and_list_formats(tmp_path):
    (tmp_path / 'variants.txt').write_text('707-320\nA300B4\n')
    (tmp_path /
     'images_variant_test.txt').write_text('1025794 707-320\n1340192 A300B4\n')
    ds = CoOpSplitDataset(
        str(tmp_path),
        split='test',
        ann_file='images_variant_test.txt',
        classnames_file='variants.txt',
        ann_format='fgvc')
    assert [ds.get_data_info(i)['gt_label'] for i in range(2)] == [0, 1]
    assert ds.get_data_info(0)['img_path'].endswith('images/1025794.jpg')
    (tmp_path /
     'classnames.txt').write_text('n01440764 tench\nn01443537 goldfish\n')
    (tmp_path / 'val.txt').write_text('n01443537/x.JPEG 1\n')
    ds = CoOpSplitDataset(
        str(tmp_path),
        split='test',
        img_dir='val',
        ann_file='val.txt',
        classnames_file='classnames.txt')
    assert ds.metainfo['classes'] == ('tench', 'goldfish')


def test_one_shot_and_classes_with_exactly_k_items():
    labels = [0, 0, 0, 1, 1, 1, 1, 1]
    one = sample_few_shot(labels, 1, seed=3)
    assert Counter(labels[i] for i in one) == {0: 1, 1: 1}
    # class 0 has exactly K = 3 items: kept without a draw, so the draw of
    # class 1 is the first of the seeded generator
    import random
    rng = random.Random(5)
    expected = [0, 1, 2] + sorted(rng.sample([3, 4, 5, 6, 7], 3))
    assert sample_few_shot(labels, 3, seed=5) == expected


def _labels(ds):
    return [ds.get_data_info(i)['gt_label'] for i in range(len(ds))]


def test_few_shot_defaults_and_labels_of_all_classes(split_root):
    inner = _pets_train(split_root)
    default = FewShotDataset(inner, num_shots=2)
    assert default.seed == 1
    assert [default.get_data_info(i)['img_path'] for i in range(10)] == [
        FewShotDataset(inner, num_shots=2, seed=1).get_data_info(i)['img_path']
        for i in range(10)
    ]
    # 'all' keeps the labels of the inner data set
    full = FewShotDataset(inner)
    assert _labels(full) == [i % 5 for i in range(40)]


def test_split_file_alone_and_class_names_without_ids(split_root):
    ds = CoOpSplitDataset(
        str(split_root), split_file='split_zhou_OxfordPets.json', ann_file='')
    assert len(ds) == 40
    with pytest.raises(ValueError, match='needs split_file, or ann_file'):
        CoOpSplitDataset(str(split_root), ann_file='val.txt')
    # a class-name line without an id is the name itself
    (split_root / 'names.txt').write_text('n01 tench\ngoldfish\n')
    (split_root / 'val.txt').write_text('x.JPEG 1\n')
    ds = CoOpSplitDataset(
        str(split_root), ann_file='val.txt', classnames_file='names.txt')
    assert ds.metainfo['classes'] == ('tench', 'goldfish')
