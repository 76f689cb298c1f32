# Copyright (c) mmssl contributors. All rights reserved.
"""The embedded data generator: determinism, formats, label spaces, locks."""
import hashlib
import inspect
import json
import multiprocessing as mp
import os
import os.path as osp
import shutil
import time

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

import mmssl.datasets.embedded as embedded
from mmssl.datasets import (SHAPE_CLASSES, SHAPE_HIERARCHY,
                            UNIDET_LABEL_SPACES, ensure_embedded_data,
                            load_embedded_meta, make_embedded_data)
from mmssl.datasets.embedded_shapes import render_scene, sample_det_scene

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


def _digest(root):
    """sha1 of every file but ``meta.json``: PNGs by their decoded pixels
    (independent of the PNG encoder), the rest byte for byte."""
    sha = hashlib.sha1()
    for rel, data in sorted(_files(root).items()):
        sha.update(rel.encode())
        if rel.endswith('.png'):
            with Image.open(osp.join(root, rel)) as img:
                pixels = np.asarray(img)
            sha.update(str(pixels.shape).encode() + pixels.tobytes())
        else:
            sha.update(data)
    return sha.hexdigest()


def test_output_is_pinned_to_the_generator_version(data_root):
    """The version contract: results recorded on the embedded data are
    comparable only while its content is. A change of this digest is a
    change of the data set: bump ``EMBEDDED_VERSION`` with it."""
    assert embedded.EMBEDDED_VERSION == '1.0'
    assert _digest(data_root) == EMBEDDED_1_0_DIGEST, (
        'the embedded data changed: bump EMBEDDED_VERSION and re-pin')


EMBEDDED_1_0_DIGEST = '8a6524c01acc410bc2836decb0a3c80ce6c56299'


def test_image_streams_are_independent():
    first = {
        stream: embedded._rng(0, stream, 'train', 0).uniform()
        for stream in ('cls', 'det', 'source_a', 'source_b')
    }
    assert len(set(first.values())) == 4
    assert embedded._rng(0, 'det', 'val', 0).uniform() != first['det']
    assert embedded._rng(0, 'det', 'train', 1).uniform() != first['det']
    assert embedded._rng(1, 'det', 'train', 0).uniform() != first['det']


def test_hidden_instances_are_not_annotated():
    """An object is annotated if at least 4 pixels and a fifth of its own
    area are visible."""
    cases = [  # (visible pixels, full area, kept)
        (4, 10., True), (3, 10., False), (3, 1., False), (20, 100., True),
        (19, 100., False), (39, 200., False), (40, 200., True)
    ]
    for visible, full, kept in cases:
        inst = np.zeros((20, 20), dtype=np.int64)
        inst.flat[:visible] = 2
        objects = [dict(label=0), dict(label=1)]
        out = embedded._instances(inst, objects, np.array([5., full]))
        assert [k for k, _ in out] == ([1] if kept else []), (visible, full)
        if kept:
            assert out[0][1].dtype == bool and out[0][1].sum() == visible
    # the kept objects of a drawn scene: what the annotations hold
    rng = np.random.default_rng(3)
    objects = sample_det_scene(rng, range(9), 32)
    _, inst, full = render_scene(rng, objects, 32)
    kept = embedded._instances(inst, objects, full)
    for k, mask in kept:
        assert (mask == (inst == k + 1)).all()


@pytest.mark.parametrize('folder', ['det', 'unidet/source_b'])
def test_annotation_and_image_ids(data_root, folder):
    with open(
            osp.join(data_root, folder, 'annotations',
                     'instances_train.json')) as f:
        coco = json.load(f)
    assert [a['id'] for a in coco['annotations']] == \
        list(range(1, len(coco['annotations']) + 1))
    assert [i['id'] for i in coco['images']] == \
        list(range(1, len(coco['images']) + 1))
    assert [i['file_name'] for i in coco['images']] == \
        [f'{i:06d}.png' for i in range(len(coco['images']))]
    assert coco['info']['version'] == embedded.EMBEDDED_VERSION
    # only the detection folder has a segmentation twin
    assert sorted(os.listdir(osp.join(data_root, 'unidet'))) == \
        ['label_spaces.json', 'source_a', 'source_b']


def test_smallest_data_set_and_progress(tmp_path, capsys, monkeypatch):
    """One image a split: every derived split still gets one; the
    progress bar counts every image written."""
    with pytest.raises(ValueError, match='img_size'):
        make_embedded_data(
            str(tmp_path / 'tiny'), img_size=7, num_train=1, num_val=1)
    bars = []

    class Bar:

        def __init__(self, task_num):
            self.task_num, self.completed = task_num, 0
            bars.append(self)

        def update(self):
            self.completed += 1

    monkeypatch.setattr(embedded, 'ProgressBar', Bar)
    capsys.readouterr()
    meta = make_embedded_data(
        str(tmp_path / 'tiny'), img_size=8, num_train=1, num_val=1)
    assert bars == [] and capsys.readouterr().out == ''  # unless asked
    assert meta['counts']['cls'] == {'train': 1, 'val': 1}
    assert meta['counts']['det'] == {'train': 1, 'val': 1}
    assert meta['counts']['source_a'] == {'train': 1, 'val': 1}
    assert meta['counts']['source_b'] == {'train': 1, 'val': 1}
    make_embedded_data(
        str(tmp_path / 'shown'), num_train=8, num_val=4, show_progress=True)
    total = 8 + 4 + (4 + 2) + 2 * (2 + 1)
    assert [(b.task_num, b.completed) for b in bars] == [(total, total)]
    assert capsys.readouterr().out == '\n'  # the line after the bar


def test_a_missing_part_is_not_a_data_set(tmp_path):
    root = str(tmp_path / 'data')
    make_embedded_data(root, seed=0, **SMALL)
    for part in ('cls', 'det', 'seg', 'unidet'):
        os.rename(osp.join(root, part), osp.join(root, 'moved'))
        assert load_embedded_meta(root) is None, part
        os.rename(osp.join(root, 'moved'), osp.join(root, part))
        assert load_embedded_meta(root) is not None
    shutil.rmtree(osp.join(root, 'seg'))
    assert make_embedded_data(root, seed=0, **SMALL)['generated']
    assert load_embedded_meta(root) is not None


def _try_lock(path, queue):
    import fcntl
    with open(path, 'a+') as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            queue.put('held')
        else:
            queue.put('free')


def test_file_lock_excludes_other_processes(tmp_path):
    ctx = mp.get_context('fork')
    queue = ctx.Queue()
    lock = str(tmp_path / '.lock')

    def other():
        proc = ctx.Process(target=_try_lock, args=(lock, queue))
        proc.start()
        proc.join(30)
        return queue.get(timeout=30)

    with embedded._file_lock(str(tmp_path)):
        assert other() == 'held'
        # a process forked meanwhile shares the open lock file ...
        child = ctx.Process(target=time.sleep, args=(20, ))
        child.start()
    try:
        # ... and does not keep the lock once it is given back
        assert other() == 'free'
    finally:
        child.terminate()
        child.join()


def test_ensure_makes_the_default_when_missing_or_stale(tmp_path, monkeypatch):
    made = []
    monkeypatch.setattr(embedded, 'make_embedded_data',
                        lambda root, **kw: made.append((root, kw)) or {})
    root = str(tmp_path / 'data')
    ensure_embedded_data(root)  # nothing there: the default data set
    assert made == [(root, {})]
    ensure_embedded_data(root, seed=3)  # arguments: always made
    assert made[-1] == (root, dict(seed=3))
    monkeypatch.undo()
    make_embedded_data(root, **SMALL)
    monkeypatch.setattr(embedded, 'make_embedded_data',
                        lambda root, **kw: made.append((root, kw)) or {})
    made.clear()
    kept = ensure_embedded_data(root)
    assert made == [] and not kept['generated']
    assert kept['root'] == osp.abspath(root)
    with open(osp.join(root, 'meta.json')) as f:
        meta = json.load(f)
    meta['params']['version'] = '0.9'
    with open(osp.join(root, 'meta.json'), 'w') as f:
        json.dump(meta, f)
    ensure_embedded_data(root)
    assert made == [(root, {})]


def test_defaults():
    params = inspect.signature(make_embedded_data).parameters
    assert {
        k: p.default
        for k, p in params.items() if k != 'root'
    } == dict(
        seed=0,
        img_size=64,
        num_train=2000,
        num_val=500,
        force=False,
        show_progress=False)
