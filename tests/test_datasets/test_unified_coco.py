# Copyright (c) mmssl contributors. All rights reserved.
"""mmdet data sets of the unified label space: the label-space path under
``data_root``, the metainfo, the embedded sources and the concatenation's
pipeline, refetch, test mode, lazy init and checks."""
import json
import os
import os.path as osp

import pytest
from mmengine.dataset import BaseDataset

from mmssl.datasets import (EmbeddedUniDetDataset, UnifiedCocoDataset,
                            UnifiedConcatDataset, make_embedded_data,
                            prepare_embedded_unidet)
from mmssl.datasets.unidet.unified_coco import unified_palette

ANN = 'unidet/unified/source_a/instances_train.json'
SPACE = 'unidet/unified/label_space.json'


@pytest.fixture(scope='module')
def root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('embedded'))
    make_embedded_data(root, num_train=8, num_val=4)
    prepare_embedded_unidet(root)
    return root


def _classes(root):
    with open(osp.join(root, SPACE)) as f:
        return tuple(json.load(f)['classes'])


def _coco(root, label_space, **kwargs):
    return UnifiedCocoDataset(
        label_space=label_space,
        source='source_a',
        data_root=root,
        ann_file=ANN,
        data_prefix=dict(img='unidet/source_a/images/train/'),
        **kwargs)


def test_palette_is_fixed_rgb():
    pal = unified_palette(500)
    assert len(pal) == 500 and all(len(c) == 3 for c in pal)
    values = [v for c in pal for v in c]
    # bright enough to read on a dark image: [40, 255], and the range used
    assert min(values) == 40 and max(values) == 255
    assert unified_palette(6) == unified_palette(6, seed=0)
    assert unified_palette(6) != unified_palette(6, seed=1)


def test_label_space_path_relative_to_data_root(root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # SPACE does not exist from here
    ds = _coco(root, SPACE)
    assert ds.label_space == osp.join(root, SPACE)
    assert ds.metainfo['classes'] == _classes(root)
    assert len(ds.metainfo['palette']) == len(ds.metainfo['classes'])
    assert ds.get_data_info(0)['source'] == 'source_a'
    # an absolute path is taken as it is
    assert _coco(root, osp.join(root,
                                SPACE)).label_space == osp.join(root, SPACE)
    # a relative path that exists from the working folder is not moved
    os.makedirs('spaces')
    with open(osp.join(root, SPACE)) as src, \
            open('spaces/mine.json', 'w') as dst:
        dst.write(src.read())
    assert _coco(root, 'spaces/mine.json').label_space == 'spaces/mine.json'


def test_missing_label_space_and_metainfo_override(root):
    with pytest.raises(
            FileNotFoundError,
            match='nowhere.json.*does not '
            'exist; build it with tools/dataset_converters/'
            'unify_label_space.py'):
        _coco(root, 'nowhere.json')
    n = len(_classes(root))
    pal = [(1, 2, 3)] * n
    ds = _coco(root, SPACE, metainfo=dict(palette=pal))
    assert ds.metainfo['palette'] == pal
    assert ds.metainfo['classes'] == _classes(root)


def test_embedded_sources(root, tmp_path):
    ds = EmbeddedUniDetDataset('source_b', split='val', data_root=root)
    assert ds.split == 'val' and len(ds) == 1
    assert ds.get_data_info(0)['source'] == 'source_b'
    with pytest.raises(
            ValueError,
            match=r"unknown source 'source_c', "
            r"expected one of \['source_a', 'source_b'\]"):
        EmbeddedUniDetDataset('source_c', data_root=root)
    with pytest.raises(ValueError, match='split'):
        EmbeddedUniDetDataset('source_a', split='test', data_root=root)
    # embedded_cfg is the size the data must have (made here on first use)
    fresh = str(tmp_path / 'fresh')
    ds = EmbeddedUniDetDataset(
        'source_a', data_root=fresh, embedded_cfg=dict(num_train=8, num_val=4))
    assert len(ds) == 2  # a quarter of the 8 training images


class _Items(BaseDataset):
    METAINFO = dict(classes=('a', 'b'))

    def __init__(self, values, metainfo=None, lazy_init=False):
        self.values = values
        super().__init__(
            metainfo=metainfo, serialize_data=False, lazy_init=lazy_init)

    def load_data_list(self):
        return [dict(value=v, labels=[v % 2]) for v in self.values]

    def get_cat_ids(self, idx):
        return self.get_data_info(idx)['labels']


class _DropOdd:
    """A pipeline step that drops the odd values and counts its calls."""
    calls = 0

    def __call__(self, results):
        type(self).calls += 1
        return None if results['value'] % 2 else results


def test_concat_defaults_and_checks():
    one = _Items([0, 1], metainfo=dict(palette=[(1, 1, 1)] * 2))
    two = _Items([2], metainfo=dict(palette=[(2, 2, 2)] * 2))
    concat = UnifiedConcatDataset([one, two])
    assert concat._fully_initialized and len(concat) == 3
    assert not concat.test_mode and concat.max_refetch == 100
    assert concat.metainfo['palette'] == [(1, 1, 1)] * 2  # the first's
    assert concat[2]['value'] == 2  # no pipeline: the source's items
    single = UnifiedConcatDataset([_Items([5])])
    assert single.get_cat_ids(0) == [1]
    with pytest.raises(
            TypeError,
            match='elements must be data sets or '
            "their configs, got <class 'list'>"):
        UnifiedConcatDataset([one, [1, 2]])
    other = _Items([3], metainfo=dict(classes=('a', 'c')))
    with pytest.raises(ValueError, match='do not share one label space'):
        UnifiedConcatDataset([one, other])


def test_concat_lazy_init():
    concat = UnifiedConcatDataset([_Items([0, 1], lazy_init=True)],
                                  lazy_init=True)
    assert not concat._fully_initialized
    assert concat.get_cat_ids(1) == [1] and concat._fully_initialized


def test_concat_pipeline_refetch_and_test_mode(monkeypatch):
    import numpy as np
    pipeline = [dict(type=_DropOdd)]
    concat = UnifiedConcatDataset([_Items([0, 1, 2, 3])], pipeline=pipeline)
    assert concat[2]['value'] == 2
    # a dropped training sample is replaced by a random other one
    draws = iter([3, 0])
    monkeypatch.setattr(np.random, 'randint', lambda n: next(draws))
    _DropOdd.calls = 0
    assert concat[1]['value'] == 0 and _DropOdd.calls == 3
    # dropping every try: max_refetch + 1 tries, then an error
    concat = UnifiedConcatDataset([_Items([1, 3])],
                                  pipeline=pipeline,
                                  max_refetch=2)
    monkeypatch.setattr(np.random, 'randint', lambda n: 1)
    _DropOdd.calls = 0
    with pytest.raises(RuntimeError, match='dropped 3 samples in a row'):
        concat[0]
    assert _DropOdd.calls == 3
    # in test mode a dropped sample is an error at once
    concat = UnifiedConcatDataset([_Items([0, 1])],
                                  pipeline=pipeline,
                                  test_mode=True)
    with pytest.raises(RuntimeError, match='dropped test sample 1'):
        concat[1]
