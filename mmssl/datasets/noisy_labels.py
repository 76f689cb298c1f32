# Copyright (c) mmssl contributors. All rights reserved.
"""Learning with noisy labels: a wrapper data set that serves synthetic
noisy labels next to the clean ones, and CIFAR-format copies of data sets.

:class:`NoisyLabelDataset` (``mmssl.NoisyLabelDataset``) wraps any labelled
data set, replaces ``gt_label`` with a noisy label drawn by
:mod:`mmssl.datasets.label_noise` and keeps the clean one as
``gt_label_clean``; every item also has ``sample_idx``, its index in the
wrapper, so that a model can keep a per-sample buffer (e.g. the label
quality of each training image). mmpretrain's ``PackInputs`` keeps
``sample_idx`` by default but not ``gt_label_clean``; a config that wants
both in the data samples' metainfo says::

    dict(type='PackInputs',
         meta_keys=('sample_idx', 'img_path', 'ori_shape', 'img_shape',
                    'scale_factor', 'flip', 'flip_direction',
                    'gt_label_clean'))

(:data:`NOISY_META_KEYS` holds that tuple.)

:func:`make_cifar_copy` writes any labelled data set in the CIFAR-10 python
layout; :class:`CIFARFormatDataset` (``mmssl.CIFARFormatDataset``) reads it
with mmpretrain's CIFAR-10 loader (whose md5 checks only accept the
original CIFAR-10 files).
"""
import hashlib
import json
import os
import os.path as osp
import pickle
from typing import (Any, Callable, Dict, List, Mapping, Optional, Sequence,
                    Tuple, Union)

import numpy as np
from mmengine.dataset import BaseDataset
from mmengine.logging import print_log
from mmpretrain.datasets import CIFAR10
from mmpretrain.datasets.categories import (CIFAR10_CATEGORIES,
                                            CIFAR100_CATEGORIES)
from mmpretrain.datasets.transforms import PackInputs

from mmssl.registry import DATASETS
from mmssl.utils.validation import check_choice, check_float, check_int
from .label_noise import (CIFAR10_ASYM_MAPPING, CIFAR100_ASYM_MAPPING,
                          MappingLike, _check_labels, _check_rate,
                          asymmetric_noise, image_features, instance_noise,
                          noise_rate, read_rgb, resolve_mapping,
                          symmetric_noise, transition_matrix)
from .subsets import labelled_items

__all__ = [
    'NOISE_TYPES', 'NOISY_META_KEYS', 'NoisyLabelDataset', 'make_cifar_copy',
    'CIFARFormatDataset'
]

NOISE_TYPES = ('symmetric', 'asymmetric', 'instance', 'none')

#: ``PackInputs.meta_keys`` that keep ``sample_idx`` and ``gt_label_clean``.
NOISY_META_KEYS = tuple(PackInputs.DEFAULT_META_KEYS) + ('gt_label_clean', )

_FILE_FORMAT = 'mmssl.NoisyLabelDataset/1'


def _labels_sha1(labels: np.ndarray) -> str:
    return hashlib.sha1(labels.astype('<i8').tobytes()).hexdigest()


@DATASETS.register_module()
class NoisyLabelDataset(BaseDataset):
    """A labelled data set with synthetic label noise.

    The inner data set is built without its pipeline; every item keeps its
    fields, gets the noisy label as ``gt_label`` and the clean one as
    ``gt_label_clean``; ``sample_idx`` (added by mmengine when an item is
    fetched) is the index in this data set, for per-sample buffers. The
    noise is drawn once from ``seed`` (see :func:`symmetric_noise`,
    :func:`asymmetric_noise`, :func:`instance_noise`), so both networks of
    a co-training method and every rerun see the same labels; with
    ``noise_file`` the labels are also cached as JSON: written if the file
    is missing, read if present and checked against this data set and
    these settings. Unlike the reference code, which reads any file of
    the expected name without checks, a file made with other settings
    (rate, type, seed, mapping) or for another data set (length, clean
    labels) is refused. A plain JSON list of labels (the reference's
    format) is accepted after a check of its length and label range.

    When loaded, the realised noise rate and the transition matrix are
    logged (the full matrix up to 20 classes, its diagonal range above)
    and kept as :attr:`realised_noise_rate`, :attr:`transition`,
    :attr:`clean_labels`, :attr:`noisy_labels`, and in the metainfo
    (``noise_type``, ``noise_rate``, ``realised_noise_rate``,
    ``transition_matrix``).

    Instance noise needs the images: ``img`` arrays of the items
    (mmpretrain ``CIFAR10``/``CIFAR100``) or their ``img_path`` files
    (folder data sets), read at ``image_size`` (:func:`image_features`;
    the N x 3 * image_size^2 float32 features are held in memory while the
    noise is drawn, about 600 MB for CIFAR's 50000 images at 32).

    To keep ``gt_label_clean`` in the data samples, ``PackInputs`` needs it
    in ``meta_keys`` (:data:`NOISY_META_KEYS`); ``sample_idx`` is kept by
    the default keys.

    Args:
        dataset (dict): config of the inner data set (items with
            ``gt_label``).
        noise_type (str): ``'symmetric'``, ``'asymmetric'``, ``'instance'``
            or ``'none'`` (clean labels, ``noise_rate`` ignored; still adds
            ``gt_label_clean``). Defaults to ``'symmetric'``.
        noise_rate (float): in [0, 1): share of redrawn labels (symmetric),
            flip probability of the mapped classes (asymmetric), mean flip
            rate (instance). Defaults to 0.
        seed (int): seed of the noise. Defaults to 0.
        mapping (dict | list, optional): asymmetric ``{source: target}`` or
            ``[(source, target), ...]``, classes as indices or names of the
            inner metainfo. None: :data:`CIFAR10_ASYM_MAPPING` or
            :data:`CIFAR100_ASYM_MAPPING` when the inner classes are
            CIFAR-10's or CIFAR-100's, otherwise an error.
        exclude_true (bool): symmetric noise draws from the other classes
            only. Defaults to False (DivideMix).
        noise_file (str, optional): JSON cache of the noisy labels.
        image_size (int): side of the images for instance-noise features.
            Defaults to 32.
        norm_std (float): std of the instance-noise flip rates. Defaults to
            0.1.
        pipeline (Sequence[dict | Callable]): transforms of each item.
        **kwargs: other arguments of :class:`mmengine.dataset.BaseDataset`.
    """

    def __init__(self,
                 dataset: dict,
                 noise_type: str = 'symmetric',
                 noise_rate: float = 0.,
                 seed: int = 0,
                 mapping: Optional[MappingLike] = None,
                 exclude_true: bool = False,
                 noise_file: Optional[str] = None,
                 image_size: int = 32,
                 norm_std: float = 0.1,
                 pipeline: Sequence[Union[dict, Callable]] = (),
                 **kwargs) -> None:
        owner = type(self).__name__
        if not isinstance(dataset, dict) or 'type' not in dataset:
            raise ValueError(
                f'{owner}: dataset must be the config dict of the labelled '
                f'data set to add noise to, got {dataset!r}')
        self.inner_cfg = dict(dataset)
        self.noise_type = check_choice(noise_type, 'noise_type', owner,
                                       NOISE_TYPES)
        self.noise_rate = _check_rate(noise_rate, owner, 'noise_rate')
        self.seed = check_int(seed, 'seed', owner, minimum=0)
        if mapping is not None and not isinstance(mapping,
                                                  (Mapping, list, tuple)):
            raise ValueError(f'{owner}: mapping must be a dict or a list of '
                             f'(source, target) pairs, got {mapping!r}')
        self.mapping_cfg = mapping
        self.exclude_true = bool(exclude_true)
        self.noise_file = noise_file
        self.image_size = check_int(image_size, 'image_size', owner)
        self.norm_std = check_float(
            norm_std, 'norm_std', owner, low=0., inclusive=(False, True))
        self.noise_mapping: Optional[Dict[int, int]] = None
        self.num_classes: Optional[int] = None
        self.clean_labels: Optional[np.ndarray] = None
        self.noisy_labels: Optional[np.ndarray] = None
        self.realised_noise_rate: Optional[float] = None
        self.transition: Optional[np.ndarray] = None
        super().__init__(pipeline=pipeline, **kwargs)

    # -- settings recorded in the noise file ---------------------------------

    def _settings(self) -> dict:
        settings = dict(
            noise_type=self.noise_type,
            noise_rate=self.noise_rate,
            seed=self.seed)
        if self.noise_type == 'symmetric':
            settings['exclude_true'] = self.exclude_true
        elif self.noise_type == 'asymmetric':
            settings['mapping'] = [[s, t]
                                   for s, t in self.noise_mapping.items()]
        elif self.noise_type == 'instance':
            settings.update(image_size=self.image_size, norm_std=self.norm_std)
        return settings

    def _resolve_mapping(self, classes: Optional[Sequence[str]],
                         num_classes: int) -> Dict[int, int]:
        owner = type(self).__name__
        if self.mapping_cfg is not None:
            return resolve_mapping(self.mapping_cfg, num_classes, classes,
                                   owner)
        names = tuple(classes) if classes is not None else None
        if names == tuple(CIFAR10_CATEGORIES):
            return dict(CIFAR10_ASYM_MAPPING)
        if names == tuple(CIFAR100_CATEGORIES):
            return dict(CIFAR100_ASYM_MAPPING)
        raise ValueError(
            f"{owner}: noise_type='asymmetric' needs mapping (source -> "
            'target classes) unless the inner data set has the CIFAR-10 or '
            f'CIFAR-100 classes; its classes are {names}')

    def _draw(self, clean: np.ndarray, num_classes: int,
              items: List[dict]) -> np.ndarray:
        if self.noise_type == 'none':
            return clean.copy()
        if self.noise_type == 'symmetric':
            return symmetric_noise(clean, num_classes, self.noise_rate,
                                   self.seed, self.exclude_true)
        if self.noise_type == 'asymmetric':
            return asymmetric_noise(clean, num_classes, self.noise_rate,
                                    self.noise_mapping, self.seed)
        if self.noise_rate == 0:
            return clean.copy()
        feats = image_features(items, self.image_size)
        return instance_noise(clean, feats, num_classes, self.noise_rate,
                              self.seed, self.norm_std)

    def _read_noise_file(self, path: str, clean: np.ndarray,
                         num_classes: int) -> np.ndarray:
        owner = type(self).__name__
        with open(path) as f:
            content = json.load(f)
        if isinstance(content, list):  # the reference's plain list
            labels = content
            print_log(
                f'{owner}: {path} is a plain list of labels; only its '
                'length and label range are checked',
                logger='current')
        elif isinstance(content, dict) and 'noisy_labels' in content:
            labels = content['noisy_labels']
            expected = dict(
                self._settings(),
                num_samples=len(clean),
                num_classes=num_classes,
                clean_labels_sha1=_labels_sha1(clean))
            for key, want in expected.items():
                have = content.get(key)
                if have != want:
                    raise ValueError(
                        f'{owner}: noise_file {path} does not match: it has '
                        f'{key}={have!r}, this data set needs {want!r}; '
                        'delete the file or set another noise_file')
        else:
            raise ValueError(f'{owner}: noise_file {path} does not match: it '
                             'is neither a noise file of this class nor a '
                             'JSON list of labels')
        if len(labels) != len(clean):
            raise ValueError(
                f'{owner}: noise_file {path} does not match: it has '
                f'{len(labels)} labels, the data set {len(clean)} items')
        try:
            return _check_labels(
                np.asarray(labels, dtype=np.int64), num_classes, owner)
        except (ValueError, TypeError) as err:
            raise ValueError(f'{owner}: noise_file {path} does not match: '
                             f'{err}') from err

    def _write_noise_file(self, path: str, clean: np.ndarray,
                          noisy: np.ndarray, num_classes: int) -> None:
        content = dict(
            format=_FILE_FORMAT,
            **self._settings(),
            num_samples=len(clean),
            num_classes=num_classes,
            clean_labels_sha1=_labels_sha1(clean),
            noisy_labels=noisy.tolist())
        folder = osp.dirname(osp.abspath(path))
        os.makedirs(folder, exist_ok=True)
        tmp = f'{path}.{os.getpid()}.tmp'
        with open(tmp, 'w') as f:
            json.dump(content, f)
        os.replace(tmp, path)  # atomic: ranks writing at once are safe
        print_log(
            f'{type(self).__name__}: wrote the noisy labels to {path}',
            logger='current')

    def load_data_list(self) -> List[dict]:
        owner = type(self).__name__
        items, metainfo = labelled_items(
            self.inner_cfg, owner, 'label noise needs a labelled data set')
        self._metainfo.update(metainfo)
        classes = metainfo.get('classes')
        clean = np.array([int(it['gt_label']) for it in items], dtype=np.int64)
        num_classes = len(classes) if classes else int(clean.max()) + 1
        num_classes = max(num_classes, 2)
        _check_labels(clean, num_classes, owner)
        if self.noise_type == 'asymmetric':
            self.noise_mapping = self._resolve_mapping(classes, num_classes)
        if self.noise_file and osp.isfile(self.noise_file):
            noisy = self._read_noise_file(self.noise_file, clean, num_classes)
        else:
            noisy = self._draw(clean, num_classes, items)
            if self.noise_file:
                self._write_noise_file(self.noise_file, clean, noisy,
                                       num_classes)
        self.num_classes = num_classes
        data_list = []
        for item, y_clean, y in zip(items, clean, noisy):
            item = {k: v for k, v in item.items() if k != 'sample_idx'}
            item['gt_label'] = int(y)
            item['gt_label_clean'] = int(y_clean)
            data_list.append(item)
        return data_list

    def full_init(self) -> None:
        """Load the items, then record (and log) the realised noise of the
        items this data set serves (after ``indices``, if given)."""
        if self._fully_initialized:
            return
        # read the labels before mmengine serialises (and drops) the items
        serialize, self.serialize_data = self.serialize_data, False
        try:
            super().full_init()
        finally:
            self.serialize_data = serialize
        self.clean_labels = np.array(
            [it['gt_label_clean'] for it in self.data_list], dtype=np.int64)
        self.noisy_labels = np.array([it['gt_label'] for it in self.data_list],
                                     dtype=np.int64)
        if serialize:
            self.data_bytes, self.data_address = self._serialize_data()
        self.realised_noise_rate = noise_rate(self.clean_labels,
                                              self.noisy_labels)
        self.transition = transition_matrix(self.clean_labels,
                                            self.noisy_labels,
                                            self.num_classes)
        self._metainfo.update(
            noise_type=self.noise_type,
            noise_rate=self.noise_rate,
            realised_noise_rate=self.realised_noise_rate,
            transition_matrix=self.transition.tolist())
        self._log_noise()

    def _log_noise(self) -> None:
        owner = type(self).__name__
        msg = (f'{owner}: {self.noise_type} noise, requested rate '
               f'{self.noise_rate:g}, realised noise rate '
               f'{self.realised_noise_rate:.4f} over {len(self)} items')
        if self.noise_type == 'asymmetric':
            msg += f', mapping {self.noise_mapping}'
        if self.num_classes <= 20:
            matrix = np.array2string(
                self.transition,
                precision=3,
                suppress_small=True,
                max_line_width=200)
            msg += f'\ntransition matrix (rows: clean, columns: noisy):\n' \
                f'{matrix}'
        else:
            diag = np.diag(self.transition)
            msg += (f'; transition matrix diagonal in [{diag.min():.3f}, '
                    f'{diag.max():.3f}], mean {diag.mean():.3f}')
        print_log(msg, logger='current')

    def get_gt_labels(self) -> np.ndarray:
        """(N,) noisy labels, the ones training sees."""
        self.full_init()
        return self.noisy_labels.copy()

    def get_clean_labels(self) -> np.ndarray:
        """(N,) clean labels, for analysis."""
        self.full_init()
        return self.clean_labels.copy()

    @property
    def noisy_mask(self) -> np.ndarray:
        """(N,) bool, True where the label was corrupted."""
        self.full_init()
        return self.clean_labels != self.noisy_labels


# -- CIFAR-format copies ------------------------------------------------------

_CIFAR_FOLDER = 'cifar-10-batches-py'
_NUM_TRAIN_BATCHES = 5


def _dump(path: str, obj: dict) -> None:
    with open(path, 'wb') as f:
        pickle.dump(obj, f, protocol=2)


def _cifar_batch(items: Sequence[dict], size: int,
                 label: str) -> Dict[str, Any]:
    data = np.empty((len(items), 3 * size * size), dtype=np.uint8)
    names = []
    for i, info in enumerate(items):
        # rows hold the red, green and blue planes, as in CIFAR-10
        data[i] = read_rgb(info, size).transpose(2, 0, 1).reshape(-1)
        path = info.get('img_path')
        names.append(osp.basename(path) if path else f'img_{i:06d}.png')
    return dict(
        batch_label=label,
        labels=[int(it['gt_label']) for it in items],
        data=data,
        filenames=names)


def _items_of(cfg: dict, key: str) -> Tuple[List[dict], Optional[tuple]]:
    if not isinstance(cfg, dict) or 'type' not in cfg:
        raise ValueError(f'make_cifar_copy: {key} must be a data set config '
                         f'dict, got {cfg!r}')
    ds = DATASETS.build(dict(cfg, pipeline=[]))
    items = [ds.get_data_info(i) for i in range(len(ds))]
    if any('gt_label' not in it for it in items):
        raise ValueError(f'make_cifar_copy: the data set of {key} '
                         f"({cfg['type']}) has items without gt_label; a "
                         'labelled data set is needed')
    classes = ds.metainfo.get('classes')
    return items, tuple(classes) if classes else None


def make_cifar_copy(src_dataset_cfg: dict,
                    out_dir: str,
                    size: int = 32,
                    test_dataset_cfg: Optional[dict] = None) -> str:
    """Write a labelled data set in the CIFAR-10 python layout.

    ``<out_dir>/cifar-10-batches-py/`` gets ``data_batch_1`` ...
    ``data_batch_5`` (the items of ``src_dataset_cfg`` in order, split into
    five near-equal parts), ``test_batch`` (the items of
    ``test_dataset_cfg``, or none) and ``batches.meta`` (``label_names``,
    ``num_cases_per_batch``, ``num_vis``): pickles of ``data`` (N, 3*S*S)
    uint8 rows of RGB planes, ``labels``, ``filenames``, ``batch_label``.
    The images are resized to ``size`` x ``size`` (area interpolation when
    shrinking). Read the copy with
    ``dict(type='mmssl.CIFARFormatDataset', data_root=out_dir)``; the
    plain ``mmpretrain.CIFAR10`` refuses it because it checks the md5 sums
    of the original files.

    Args:
        src_dataset_cfg (dict): config of the training split, e.g.
            ``dict(type='mmssl.EmbeddedClsDataset', data_root=
            'data/embedded', split='train')``.
        out_dir (str): the ``data_root`` of the copy.
        size (int): image side. Defaults to 32 (CIFAR's).
        test_dataset_cfg (dict, optional): config of the test split.

    Returns:
        str: the ``cifar-10-batches-py`` folder.
    """
    size = check_int(size, 'size', 'make_cifar_copy')
    items, classes = _items_of(src_dataset_cfg, 'src_dataset_cfg')
    test_items, test_classes = ([], None) if test_dataset_cfg is None else \
        _items_of(test_dataset_cfg, 'test_dataset_cfg')
    if classes and test_classes and classes != test_classes:
        raise ValueError('make_cifar_copy: the training and test data sets '
                         f'have different classes ({classes} vs '
                         f'{test_classes})')
    classes = classes or test_classes
    top = max(int(it['gt_label']) for it in items + test_items)
    if classes is None:
        classes = tuple(str(i) for i in range(top + 1))
    elif top >= len(classes):
        raise ValueError(f'make_cifar_copy: label {top} is outside the '
                         f'{len(classes)} classes {classes}')
    folder = osp.join(out_dir, _CIFAR_FOLDER)
    os.makedirs(folder, exist_ok=True)
    parts = np.array_split(np.arange(len(items)), _NUM_TRAIN_BATCHES)
    for k, idx in enumerate(parts, 1):
        _dump(
            osp.join(folder, f'data_batch_{k}'),
            _cifar_batch([items[i] for i in idx], size,
                         f'training batch {k} of {_NUM_TRAIN_BATCHES}'))
    _dump(
        osp.join(folder, 'test_batch'),
        _cifar_batch(test_items, size, 'testing batch 1 of 1'))
    _dump(
        osp.join(folder, 'batches.meta'),
        dict(
            label_names=list(classes),
            num_cases_per_batch=int(max(len(p) for p in parts)),
            num_vis=3 * size * size))
    return folder


@DATASETS.register_module()
class CIFARFormatDataset(CIFAR10):
    """A data set in the CIFAR-10 python layout, e.g. written by
    :func:`make_cifar_copy`, read with mmpretrain's CIFAR-10 loader.

    mmpretrain's ``CIFAR10`` checks each file against the md5 sum of the
    original CIFAR-10 and would download CIFAR-10 when they differ; this
    subclass skips the md5 checks (``None`` sums), never downloads, takes
    the class names from ``batches.meta`` and reads square images of any
    side (``num_vis`` of ``batches.meta``; 32 goes through mmpretrain's own
    loader). Items hold ``img`` ((S, S, 3) uint8 RGB) and ``gt_label``.

    Args:
        data_root (str): the folder holding ``cifar-10-batches-py``.
        split (str): ``'train'`` or ``'test'``. Defaults to ``'train'``.
        **kwargs: other arguments of ``mmpretrain.CIFAR10`` except
            ``download``.
    """

    train_list = [[f'data_batch_{k}', None]
                  for k in range(1, _NUM_TRAIN_BATCHES + 1)]
    test_list = [['test_batch', None]]
    meta = {'filename': 'batches.meta', 'key': 'label_names', 'md5': None}
    METAINFO: dict = {}

    def __init__(self,
                 data_root: str = '',
                 split: str = 'train',
                 download: bool = False,
                 **kwargs) -> None:
        if download:
            raise ValueError(f'{type(self).__name__}: download must be '
                             'False; a CIFAR-format copy cannot be '
                             'downloaded (write it with make_cifar_copy)')
        super().__init__(
            data_root=data_root, split=split, download=False, **kwargs)

    def _load_meta(self) -> None:
        super()._load_meta()
        self._metainfo['classes'] = tuple(self._metainfo['classes'])

    def _side(self) -> int:
        path = osp.join(self.data_prefix['root'], self.base_folder,
                        self.meta['filename'])
        if not osp.isfile(path):
            raise RuntimeError(
                f'{type(self).__name__}: {path} does not exist; write the '
                'data set with mmssl.datasets.make_cifar_copy')
        with open(path, 'rb') as f:
            meta = pickle.load(f, encoding='latin1')
        side = int(round((meta.get('num_vis', 3072) / 3)**0.5))
        if 3 * side * side != meta.get('num_vis', 3072):
            raise RuntimeError(f'{path}: num_vis={meta["num_vis"]} is not '
                               '3 * side * side')
        return side

    def load_data_list(self) -> List[dict]:
        side = self._side()
        data_list = super().load_data_list() if side == 32 else \
            self._load_side(side)
        if not data_list:
            raise ValueError(
                f'{type(self).__name__}: the {self.split} split under '
                f"{osp.join(self.data_prefix['root'], self.base_folder)} has "
                'no items (make_cifar_copy without test_dataset_cfg writes an '
                'empty test_batch)')
        return data_list

    def _load_side(self, side: int) -> List[dict]:
        """mmpretrain's loader for square images of ``side`` != 32."""
        if not self._check_integrity():
            raise RuntimeError(
                f'{type(self).__name__}: missing files under '
                f"{osp.join(self.data_prefix['root'], self.base_folder)}")
        files = self.train_list if self.split == 'train' else self.test_list
        imgs, labels = [], []
        for name, _ in files:
            path = osp.join(self.data_prefix['root'], self.base_folder, name)
            with open(path, 'rb') as f:
                entry = pickle.load(f, encoding='latin1')
            imgs.append(entry['data'].reshape(-1, 3, side, side))
            labels += entry['labels']
        if self.CLASSES is None:
            self._load_meta()
        imgs = np.concatenate(imgs).transpose(0, 2, 3, 1)
        return [{
            'img': img,
            'gt_label': int(y)
        } for img, y in zip(imgs, labels)]
