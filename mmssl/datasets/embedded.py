# Copyright (c) mmssl contributors. All rights reserved.
"""The embedded data set: small shape images in the hosts' own file formats.

:func:`make_embedded_data` draws, deterministically from a seed, scenes of
geometric shapes (see :mod:`.embedded_shapes`) and writes them under ``root``
in the formats mmpretrain, mmdet and mmseg already read::

    root/
      meta.json                     generator version, parameters, counts
      cls/classes.txt               one class name a line
      cls/meta/{train,val}.txt      "<class>/<name>.png <label>"
      cls/{train,val}/<class>/<name>.png
      det/images/{train,val}/<id>.png
      det/annotations/instances_{train,val}.json       COCO, RLE masks
      seg/img_dir/{train,val}/<id>.png                 the det/ scenes
      seg/ann_dir/{train,val}/<id>.png                 uint8, 0 = background
      unidet/label_spaces.json      both label spaces and their mapping
      unidet/source_{a,b}/images/{train,val}/<id>.png
      unidet/source_{a,b}/annotations/instances_{train,val}.json

Classification images hold one large main object (the label) and 0 to 2
small distractors of other classes; detection images hold 1 to 3 objects of
comparable sizes. ``det/`` and ``seg/`` have ``num_train // 2`` training and
``num_val // 2`` validation images, each ``unidet`` source ``num_train // 4``
and ``num_val // 4``.

The data set is made once: a later call with the same parameters returns at
once. Several processes (DDP ranks) may call it together: generation holds a
file lock on ``root/.lock`` and writes into a temporary folder that is moved
into place before ``meta.json`` is written last, so a reader never sees a
half-written data set.
"""
import contextlib
import json
import os
import os.path as osp
import shutil
import tempfile
import time
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
from mmengine.utils import ProgressBar
from PIL import Image
from pycocotools import mask as mask_utils

from mmssl.utils.validation import check_int
from .embedded_shapes import (SHAPE_CLASSES, SHAPE_HIERARCHY, SHAPE_PARENT,
                              render_scene, sample_cls_scene, sample_det_scene)

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no inter-process lock
    fcntl = None

__all__ = [
    'EMBEDDED_VERSION', 'SHAPE_CLASSES', 'SHAPE_HIERARCHY', 'SHAPE_PARENT',
    'UNIDET_LABEL_SPACES', 'make_embedded_data', 'ensure_embedded_data',
    'load_embedded_meta'
]

#: Bumped whenever the generator's output changes; a different version on
#: disk makes :func:`make_embedded_data` regenerate.
EMBEDDED_VERSION = '1.0'

#: Label spaces of the two universal-detection source data sets. Source A
#: names a subset of the fine classes as they are; source B overlaps it with
#: a synonym ('disc' = circle), a coarse class ('polygon' = pentagon or
#: hexagon) and classes A lacks. ``to_unified`` maps each source class to the
#: fine classes it covers; a source's images hold only objects it labels.
UNIDET_LABEL_SPACES: Dict[str, dict] = {
    'source_a': {
        'classes':
        ('circle', 'ellipse', 'triangle', 'square', 'pentagon', 'hexagon'),
        'to_unified': {
            'circle': ['circle'],
            'ellipse': ['ellipse'],
            'triangle': ['triangle'],
            'square': ['square'],
            'pentagon': ['pentagon'],
            'hexagon': ['hexagon'],
        },
    },
    'source_b': {
        'classes':
        ('disc', 'half_disc', 'triangle', 'polygon', 'star', 'cross'),
        'to_unified': {
            'disc': ['circle'],
            'half_disc': ['semicircle'],
            'triangle': ['triangle'],
            'polygon': ['pentagon', 'hexagon'],
            'star': ['star'],
            'cross': ['cross'],
        },
    },
}

_SPLITS = ('train', 'val')
_PARTS = ('cls', 'det', 'seg', 'unidet', 'preview.png')
_STREAM = {'cls': 0, 'det': 1, 'source_a': 2, 'source_b': 3}
# an instance whose visible part is below this share of its own area, or
# below _MIN_AREA pixels, is treated as hidden and not annotated
_MIN_VISIBLE = 0.2
_MIN_AREA = 4


def _rng(seed: int, stream: str, split: str, idx: int) -> np.random.Generator:
    """Independent generator of one image (unchanged by the split sizes)."""
    return np.random.default_rng(
        [seed, _STREAM[stream],
         _SPLITS.index(split), idx])


def _save_png(path: str, array: np.ndarray) -> None:
    os.makedirs(osp.dirname(path), exist_ok=True)
    Image.fromarray(array).save(path, format='PNG', compress_level=6)


def _write_json(path: str, obj: dict) -> None:
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        json.dump(obj, f)


def _instances(inst_map: np.ndarray, objects: List[dict],
               full_area: np.ndarray) -> List[Tuple[int, np.ndarray]]:
    """``(object index, visible mask (H, W) bool)`` of the kept objects."""
    kept = []
    for k in range(len(objects)):
        mask = inst_map == k + 1
        area = int(mask.sum())
        if area >= max(_MIN_AREA, _MIN_VISIBLE * full_area[k]):
            kept.append((k, mask))
    return kept


def _coco_annotation(mask: np.ndarray, ann_id: int, img_id: int,
                     cat_id: int) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle['counts'] = rle['counts'].decode('ascii')
    return dict(
        id=ann_id,
        image_id=img_id,
        category_id=cat_id,
        bbox=[float(v) for v in mask_utils.toBbox(rle)],
        area=float(mask_utils.area(rle)),
        iscrowd=0,
        segmentation=rle)


def _coco_categories(classes: Sequence[str], parents: Dict[str,
                                                           str]) -> List[dict]:
    return [
        dict(id=i + 1, name=name, supercategory=parents.get(name, name))
        for i, name in enumerate(classes)
    ]


def _write_cls(out: str, seed: int, split: str, num: int, img_size: int,
               tick) -> None:
    lines = []
    for idx in range(num):
        label = idx % len(SHAPE_CLASSES)
        rng = _rng(seed, 'cls', split, idx)
        img, _, _ = render_scene(rng, sample_cls_scene(rng, label, img_size),
                                 img_size)
        rel = f'{SHAPE_CLASSES[label]}/{split}_{idx:05d}.png'
        _save_png(osp.join(out, 'cls', split, rel), img)
        lines.append(f'{rel} {label}\n')
        tick()
    os.makedirs(osp.join(out, 'cls', 'meta'), exist_ok=True)
    with open(osp.join(out, 'cls', 'meta', f'{split}.txt'), 'w') as f:
        f.writelines(lines)


def _write_det(out: str, stream: str, seed: int, split: str, num: int,
               img_size: int, fine_to_cat: Dict[int, int],
               categories: List[dict], with_seg: bool, tick) -> int:
    """Write one COCO split (and optionally its mmseg twin).

    ``out`` is the folder holding ``images/`` and ``annotations/``;
    ``fine_to_cat`` maps the fine labels that may be drawn to the category
    id they are annotated with. Returns the number of annotations.
    """
    images, anns = [], []
    pool = sorted(fine_to_cat)
    seg_root = osp.join(osp.dirname(out), 'seg')
    for idx in range(num):
        rng = _rng(seed, stream, split, idx)
        objects = sample_det_scene(rng, pool, img_size)
        img, inst_map, full_area = render_scene(rng, objects, img_size)
        name = f'{idx:06d}.png'
        _save_png(osp.join(out, 'images', split, name), img)
        images.append(
            dict(id=idx + 1, file_name=name, width=img_size, height=img_size))
        seg_map = np.zeros(inst_map.shape, dtype=np.uint8)
        for k, mask in _instances(inst_map, objects, full_area):
            label = objects[k]['label']
            anns.append(
                _coco_annotation(mask,
                                 len(anns) + 1, idx + 1, fine_to_cat[label]))
        if with_seg:
            for k, obj in enumerate(objects):
                seg_map[inst_map == k + 1] = obj['label'] + 1
            shutil.copyfile(
                osp.join(out, 'images', split, name),
                _mkparent(osp.join(seg_root, 'img_dir', split, name)))
            _save_png(osp.join(seg_root, 'ann_dir', split, name), seg_map)
        tick()
    _write_json(
        osp.join(out, 'annotations', f'instances_{split}.json'),
        dict(
            info=dict(
                description=f'mmssl embedded shapes ({split})',
                version=EMBEDDED_VERSION),
            images=images,
            annotations=anns,
            categories=categories))
    return len(anns)


def _mkparent(path: str) -> str:
    os.makedirs(osp.dirname(path), exist_ok=True)
    return path


def _label_spaces_json() -> dict:
    return dict(
        unified_classes=list(SHAPE_CLASSES),
        hierarchy={
            k: list(v)
            for k, v in SHAPE_HIERARCHY.items()
        },
        sources={
            name:
            dict(
                classes=list(space['classes']),
                to_unified={
                    k: list(v)
                    for k, v in space['to_unified'].items()
                })
            for name, space in UNIDET_LABEL_SPACES.items()
        })


def _generate(out: str, params: dict, show_progress: bool) -> dict:
    """Write the whole data set into the empty folder ``out``."""
    seed, size = params['seed'], params['img_size']
    n_tr, n_val = params['num_train'], params['num_val']
    n_det = {'train': max(1, n_tr // 2), 'val': max(1, n_val // 2)}
    n_src = {'train': max(1, n_tr // 4), 'val': max(1, n_val // 4)}
    total = n_tr + n_val + sum(n_det.values()) + 2 * sum(n_src.values())
    bar = ProgressBar(total) if show_progress else None

    def tick():
        if bar is not None:
            bar.update()

    counts = {'cls': {'train': n_tr, 'val': n_val}, 'det': n_det}
    with open(_mkparent(osp.join(out, 'cls', 'classes.txt')), 'w') as f:
        f.writelines(name + '\n' for name in SHAPE_CLASSES)
    for split, num in (('train', n_tr), ('val', n_val)):
        _write_cls(out, seed, split, num, size, tick)

    det_cats = _coco_categories(SHAPE_CLASSES, SHAPE_PARENT)
    fine_to_cat = {i: i + 1 for i in range(len(SHAPE_CLASSES))}
    counts['det_instances'] = {}
    for split in _SPLITS:
        counts['det_instances'][split] = _write_det(
            osp.join(out, 'det'), 'det', seed, split, n_det[split], size,
            fine_to_cat, det_cats, True, tick)

    _write_json(
        osp.join(out, 'unidet', 'label_spaces.json'), _label_spaces_json())
    for source, space in UNIDET_LABEL_SPACES.items():
        cats = _coco_categories(space['classes'], {})
        to_cat = {}
        for cat_id, name in enumerate(space['classes'], start=1):
            for fine in space['to_unified'][name]:
                to_cat[SHAPE_CLASSES.index(fine)] = cat_id
        counts[source] = dict(n_src)
        for split in _SPLITS:
            _write_det(
                osp.join(out, 'unidet', source), source, seed, split,
                n_src[split], size, to_cat, cats, False, tick)
    if bar is not None:
        print()
    return dict(
        generator='mmssl.datasets.embedded',
        params=params,
        counts=counts,
        classes=list(SHAPE_CLASSES),
        hierarchy={
            k: list(v)
            for k, v in SHAPE_HIERARCHY.items()
        },
        created_at=time.time())


def load_embedded_meta(root: str) -> Optional[dict]:
    """``root/meta.json`` of a complete embedded data set, else ``None``."""
    root = osp.expanduser(root)
    try:
        with open(osp.join(root, 'meta.json')) as f:
            meta = json.load(f)
    except (OSError, ValueError):
        return None
    if not all(osp.isdir(osp.join(root, p)) for p in _PARTS[:-1]):
        return None
    return meta


@contextlib.contextmanager
def _file_lock(root: str) -> Iterator[None]:
    """Exclusive inter-process lock on ``root/.lock`` (blocks until free)."""
    with open(osp.join(root, '.lock'), 'a+') as f:
        if fcntl is not None:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _install(root: str, tmp: str) -> None:
    """Move the finished data set in ``tmp`` into ``root`` (lock held)."""
    meta_path = osp.join(root, 'meta.json')
    if osp.exists(meta_path):
        os.remove(meta_path)  # from here on readers see "not ready"
    trash = tempfile.mkdtemp(prefix='.old-', dir=root)
    for part in _PARTS:
        if osp.lexists(osp.join(root, part)):
            os.rename(osp.join(root, part), osp.join(trash, part))
        if osp.lexists(osp.join(tmp, part)):
            os.rename(osp.join(tmp, part), osp.join(root, part))
    os.replace(osp.join(tmp, 'meta.json'), meta_path)
    shutil.rmtree(trash, ignore_errors=True)


def make_embedded_data(root: str,
                       seed: int = 0,
                       img_size: int = 64,
                       num_train: int = 2000,
                       num_val: int = 500,
                       force: bool = False,
                       show_progress: bool = False) -> dict:
    """Write the embedded data set under ``root`` unless it is already there.

    Args:
        root (str): output folder (created if missing).
        seed (int): seed of every image. Defaults to 0.
        img_size (int): image side in pixels. Defaults to 64.
        num_train (int): classification training images; the detection
            and segmentation splits get half, each universal-detection
            source a quarter. Defaults to 2000.
        num_val (int): classification validation images (same ratios).
            Defaults to 500.
        force (bool): regenerate even if ``root`` holds the same data set.
            Concurrent forced calls regenerate once. Defaults to False.
        show_progress (bool): show a progress bar. Defaults to False.

    Returns:
        dict: the content of ``root/meta.json`` (``params``, ``counts``,
        ``classes``, ``hierarchy``) plus ``root`` and ``generated`` (whether
        this call wrote the data).
    """
    check_int(img_size, 'img_size', 'make_embedded_data', minimum=8)
    check_int(num_train, 'num_train', 'make_embedded_data')
    check_int(num_val, 'num_val', 'make_embedded_data')
    root = osp.abspath(osp.expanduser(root))
    params = dict(
        version=EMBEDDED_VERSION,
        seed=int(seed),
        img_size=int(img_size),
        num_train=int(num_train),
        num_val=int(num_val))
    called_at = time.time()

    def up_to_date(meta: Optional[dict]) -> bool:
        if meta is None or meta.get('params') != params:
            return False
        return not force or meta.get('created_at', 0) >= called_at

    meta = load_embedded_meta(root)
    if up_to_date(meta):
        return dict(meta, root=root, generated=False)
    os.makedirs(root, exist_ok=True)
    with _file_lock(root):
        meta = load_embedded_meta(root)  # another process may have made it
        if up_to_date(meta):
            return dict(meta, root=root, generated=False)
        for stale in os.listdir(root):  # left by killed writers
            if stale.startswith(('.tmp-', '.old-')):
                shutil.rmtree(osp.join(root, stale), ignore_errors=True)
        tmp = tempfile.mkdtemp(prefix='.tmp-', dir=root)
        try:
            meta = _generate(tmp, params, show_progress)
            _write_json(osp.join(tmp, 'meta.json'), meta)
            _install(root, tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return dict(meta, root=root, generated=True)


def ensure_embedded_data(root: str, **kwargs) -> dict:
    """Make sure an embedded data set exists under ``root``.

    Without keyword arguments any complete data set of the current generator
    version is accepted (e.g. a smaller one made with
    ``tools/misc/make_embedded_data.py``), and the default one is made if
    there is none. With keyword arguments this is
    :func:`make_embedded_data` with them.

    Args:
        root (str): the data set folder.
        **kwargs: arguments of :func:`make_embedded_data`.

    Returns:
        dict: the data set's meta information (see
        :func:`make_embedded_data`).
    """
    if not kwargs:
        meta = load_embedded_meta(root)
        if meta is not None and \
                meta.get('params', {}).get('version') == EMBEDDED_VERSION:
            return dict(
                meta, root=osp.abspath(osp.expanduser(root)), generated=False)
    return make_embedded_data(root, **kwargs)
