# Copyright (c) mmssl contributors. All rights reserved.
"""The embedded data generator: determinism, formats, label spaces, locks."""
import json
import multiprocessing as mp
import os
import os.path as osp

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

import mmssl.datasets.embedded as embedded
from mmssl.datasets import (SHAPE_CLASSES, SHAPE_HIERARCHY,
                            UNIDET_LABEL_SPACES, ensure_embedded_data,
                            load_embedded_meta, make_embedded_data)

SMALL = dict(img_size=64, num_train=40, num_val=12)


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('embedded'))
    make_embedded_data(root, seed=0, **SMALL)
    return root


def _files(root):
    out = {}
    for folder, _, files in os.walk(root):
        for name in files:
            path = osp.join(folder, name)
            rel = osp.relpath(path, root)
            if rel in ('meta.json', '.lock'):
                continue
            with open(path, 'rb') as f:
                out[rel] = f.read()
    return out


def test_determinism(data_root, tmp_path):
    again = str(tmp_path / 'again')
    other = str(tmp_path / 'other')
    make_embedded_data(again, seed=0, **SMALL)
    make_embedded_data(other, seed=1, **SMALL)
    ref = _files(data_root)
    assert _files(again) == ref
    other_files = _files(other)
    assert other_files.keys() == ref.keys()
    assert other_files['cls/val/circle/val_00000.png'] != \
        ref['cls/val/circle/val_00000.png']
    assert sum(other_files[k] != ref[k] for k in ref) > len(ref) // 2


def test_meta(data_root):
    meta = load_embedded_meta(data_root)
    assert meta['params'] == dict(
        version=embedded.EMBEDDED_VERSION, seed=0, **SMALL)
    assert meta['classes'] == list(SHAPE_CLASSES)
    assert meta['counts']['cls'] == {'train': 40, 'val': 12}
    assert meta['counts']['det'] == {'train': 20, 'val': 6}
    assert meta['counts']['source_a'] == {'train': 10, 'val': 3}
    assert len(SHAPE_CLASSES) == 9
    assert sum(len(v) for v in SHAPE_HIERARCHY.values()) == 9


def test_classification_layout(data_root):
    with open(osp.join(data_root, 'cls', 'classes.txt')) as f:
        assert tuple(f.read().split()) == SHAPE_CLASSES
    for split, num in (('train', 40), ('val', 12)):
        with open(osp.join(data_root, 'cls', 'meta', f'{split}.txt')) as f:
            lines = [line.split() for line in f]
        assert len(lines) == num
        for rel, label in lines:
            assert rel.split('/')[0] == SHAPE_CLASSES[int(label)]
            img = Image.open(osp.join(data_root, 'cls', split, rel))
            assert img.size == (64, 64) and img.mode == 'RGB'
        if split == 'train':
            assert {int(label) for _, label in lines} == set(range(9))


@pytest.mark.parametrize('folder',
                         ['det', 'unidet/source_a', 'unidet/source_b'])
def test_coco_annotations(data_root, folder):
    for split in ('train', 'val'):
        coco = COCO(
            osp.join(data_root, folder, 'annotations',
                     f'instances_{split}.json'))
        cat_ids = set(coco.getCatIds())
        for img_id in coco.getImgIds():
            info = coco.loadImgs(img_id)[0]
            img = Image.open(
                osp.join(data_root, folder, 'images', split,
                         info['file_name']))
            assert img.size == (info['width'], info['height'])
            anns = coco.loadAnns(coco.getAnnIds(imgIds=img_id))
            assert 1 <= len(anns) <= 3
            union = np.zeros((info['height'], info['width']), dtype=int)
            for ann in anns:
                assert ann['iscrowd'] == 0 and ann['category_id'] in cat_ids
                assert isinstance(ann['segmentation']['counts'], str)
                mask = mask_utils.decode(ann['segmentation'])
                assert mask.sum() == ann['area'] > 0
                ys, xs = np.nonzero(mask)
                x, y, w, h = ann['bbox']
                assert (x, y) == (xs.min(), ys.min())
                assert (x + w, y + h) == (xs.max() + 1, ys.max() + 1)
                union += mask
            assert union.max() == 1  # occlusion cut the masks: disjoint


def test_segmentation_matches_detection(data_root):
    coco = COCO(
        osp.join(data_root, 'det', 'annotations', 'instances_val.json'))
    assert [c['name'] for c in coco.loadCats(coco.getCatIds())] == \
        list(SHAPE_CLASSES)
    for img_id in coco.getImgIds():
        name = coco.loadImgs(img_id)[0]['file_name']
        seg = np.asarray(
            Image.open(osp.join(data_root, 'seg', 'ann_dir', 'val', name)))
        assert seg.dtype == np.uint8 and seg.shape == (64, 64)
        assert seg.max() <= len(SHAPE_CLASSES)
        for ann in coco.loadAnns(coco.getAnnIds(imgIds=img_id)):
            mask = mask_utils.decode(ann['segmentation']).astype(bool)
            assert (seg[mask] == ann['category_id']).all()
        with open(osp.join(data_root, 'seg', 'img_dir', 'val', name),
                  'rb') as f1, open(
                      osp.join(data_root, 'det', 'images', 'val', name),
                      'rb') as f2:
            assert f1.read() == f2.read()


def test_label_spaces(data_root):
    with open(osp.join(data_root, 'unidet', 'label_spaces.json')) as f:
        spaces = json.load(f)
    assert spaces['unified_classes'] == list(SHAPE_CLASSES)
    covered = {}
    for name, space in spaces['sources'].items():
        assert tuple(space['classes']) == \
            UNIDET_LABEL_SPACES[name]['classes']
        assert set(space['to_unified']) == set(space['classes'])
        covered[name] = {
            fine
            for fines in space['to_unified'].values()
            for fine in fines
        }
        assert covered[name] <= set(SHAPE_CLASSES)
        coco = COCO(
            osp.join(data_root, 'unidet', name, 'annotations',
                     'instances_train.json'))
        assert [c['name'] for c in coco.loadCats(coco.getCatIds())] == \
            space['classes']
    a, b = spaces['sources']['source_a'], spaces['sources']['source_b']
    # overlapping but different label spaces that together cover all
    assert covered['source_a'] & covered['source_b']
    assert covered['source_a'] - covered['source_b']
    assert covered['source_b'] - covered['source_a']
    assert covered['source_a'] | covered['source_b'] == set(SHAPE_CLASSES)
    assert set(a['classes']) != set(b['classes'])
    # B has a coarse class where A has fine ones, and a renamed class
    assert b['to_unified']['polygon'] == ['pentagon', 'hexagon']
    assert {'pentagon', 'hexagon'} <= set(a['classes'])
    assert b['to_unified']['disc'] == ['circle'] and 'circle' in a['classes']


def _make(args):
    root, seed = args
    meta = make_embedded_data(root, seed=seed, **SMALL)
    return meta['generated'], meta['created_at']


def test_concurrent_calls_generate_once(tmp_path):
    root = str(tmp_path / 'shared')
    with mp.get_context('fork').Pool(3) as pool:
        results = pool.map(_make, [(root, 3)] * 3)
    assert sum(generated for generated, _ in results) == 1
    assert len({created for _, created in results}) == 1
    assert not [p for p in os.listdir(root) if p.startswith('.tmp-')]


def test_regenerate_only_when_needed(tmp_path, monkeypatch):
    root = str(tmp_path / 'data')
    first = make_embedded_data(root, seed=0, **SMALL)
    assert first['generated']
    assert not make_embedded_data(root, seed=0, **SMALL)['generated']
    # any complete data set is accepted without arguments
    assert not ensure_embedded_data(root)['generated']
    assert make_embedded_data(root, seed=0, force=True, **SMALL)['generated']

    # a failing or interrupted generation leaves the old data set intact,
    # and readers see the old one while the new one is being written
    os.makedirs(osp.join(root, '.tmp-killed'))
    real_generate = embedded._generate

    def failing(out, params, show_progress):
        real_generate(out, params, show_progress)
        assert load_embedded_meta(root)['params']['seed'] == 0
        raise KeyboardInterrupt

    monkeypatch.setattr(embedded, '_generate', failing)
    with pytest.raises(KeyboardInterrupt):
        make_embedded_data(root, seed=5, **SMALL)
    assert load_embedded_meta(root)['params']['seed'] == 0
    assert not [
        p for p in os.listdir(root) if p.startswith('.') and p != '.lock'
    ]
    monkeypatch.setattr(embedded, '_generate', real_generate)

    changed = make_embedded_data(root, seed=5, **SMALL)
    assert changed['generated'] and changed['params']['seed'] == 5
    assert load_embedded_meta(root)['params']['seed'] == 5
    with pytest.raises(ValueError):
        make_embedded_data(root, num_train=0)
