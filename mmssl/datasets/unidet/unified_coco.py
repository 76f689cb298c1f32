# Copyright (c) mmssl contributors. All rights reserved.
"""mmdet data sets in a unified label space (universal detection).

* :class:`UnifiedCocoDataset`: one source's annotations remapped to unified
  ids (written by ``tools/dataset_converters/unify_label_space.py``), read by
  mmdet's :class:`~mmdet.datasets.CocoDataset` with the unified classes as
  ``metainfo['classes']``; every sample carries its ``source`` name.
* :class:`EmbeddedUniDetDataset`: the same for a source of the embedded data
  set, building the embedded unified label space on first use.
* :class:`UnifiedConcatDataset`: mmengine's ``ConcatDataset`` plus the
  ``get_cat_ids`` accessor mmdet's ``ClassAwareSampler`` (and
  ``ClassBalancedDataset``) query, delegated through ``RepeatDataset``.
"""
import copy
import json
import os.path as osp
from typing import List, Optional

import numpy as np
from mmdet.datasets import CocoDataset
from mmengine.dataset import Compose, ConcatDataset, RepeatDataset

from mmssl.registry import DATASETS
from mmssl.utils.validation import check_choice
from ..embedded import ensure_embedded_data
from .unify import EMBEDDED_UNIFIED_DIR, prepare_embedded_unidet

__all__ = [
    'UnifiedCocoDataset', 'EmbeddedUniDetDataset', 'UnifiedConcatDataset',
    'unified_palette'
]


def unified_palette(num: int, seed: int = 0) -> List[tuple]:
    """A fixed random RGB palette of ``num`` colours (visualisation)."""
    rng = np.random.default_rng(seed)
    cols = rng.integers(40, 256, size=(num, 3))
    return [tuple(int(v) for v in c) for c in cols]


def _sources(path: str) -> List[str]:
    """Source names of a label-space JSON."""
    with open(path) as f:
        return list(json.load(f)['sources'])


def _classes(label_space: str) -> tuple:
    """Unified class names of a label-space JSON (without the matrices)."""
    if not osp.isfile(label_space):
        raise FileNotFoundError(
            f'label space file {label_space!r} does not exist; build it with '
            'tools/dataset_converters/unify_label_space.py')
    with open(label_space) as f:
        return tuple(json.load(f)['classes'])


@DATASETS.register_module()
class UnifiedCocoDataset(CocoDataset):
    """One source data set, remapped to the unified label space.

    Args:
        label_space (str): the ``label_space.json`` of the unified space
            (relative paths are taken under ``data_root``).
        source (str): the source's name in the label space (``'coco'``,
            ``'oid'``, ``'mvd'``, ``'source_a'``...). Recorded as
            ``data_info['source']``; add ``'source'`` to ``PackDetInputs``'
            ``meta_keys`` so that per-source metrics can see it.
        **kwargs: arguments of :class:`mmdet.datasets.CocoDataset`
            (``ann_file`` = the remapped annotation file, ``data_root``,
            ``data_prefix``, ``pipeline``...).
    """

    def __init__(self, label_space: str, source: str, **kwargs) -> None:
        data_root = kwargs.get('data_root') or ''
        if not osp.isabs(label_space) and not osp.isfile(label_space):
            label_space = osp.join(data_root, label_space)
        self.label_space, self.source = label_space, source
        classes = _classes(label_space)
        metainfo = dict(classes=classes, palette=unified_palette(len(classes)))
        metainfo.update(kwargs.pop('metainfo', None) or {})
        super().__init__(metainfo=metainfo, **kwargs)

    def parse_data_info(self, raw_data_info: dict) -> dict:
        """mmdet's parsing plus ``source`` (the source data set's name)."""
        info = super().parse_data_info(raw_data_info)
        info['source'] = self.source
        return info


@DATASETS.register_module()
class EmbeddedUniDetDataset(UnifiedCocoDataset):
    """A source of the embedded data set in the embedded unified space.

    On first use the embedded data are generated (if missing) and the
    unified label space is built from ``unidet/label_spaces.json`` under
    ``<data_root>/unidet/unified/`` (see
    :func:`mmssl.datasets.unidet.prepare_embedded_unidet`).

    Args:
        source (str): ``'source_a'`` or ``'source_b'``.
        split (str): ``'train'`` or ``'val'``. Defaults to ``'train'``.
        data_root (str): the embedded data folder.
            Defaults to ``'data/embedded'``.
        embedded_cfg (dict, optional): arguments of
            :func:`mmssl.datasets.make_embedded_data` the data must have.
        **kwargs: other arguments of :class:`UnifiedCocoDataset`.
    """

    def __init__(self,
                 source: str,
                 split: str = 'train',
                 data_root: str = 'data/embedded',
                 embedded_cfg: Optional[dict] = None,
                 **kwargs) -> None:
        check_choice(split, 'split', type(self).__name__, ('train', 'val'))
        ensure_embedded_data(data_root, **(embedded_cfg or {}))
        path = prepare_embedded_unidet(data_root)
        sources = _sources(path)
        if source not in sources:
            raise ValueError(
                f'EmbeddedUniDetDataset: unknown source {source!r}, expected '
                f'one of {sources}')
        self.split = split
        kwargs.setdefault(
            'ann_file', f'{EMBEDDED_UNIFIED_DIR}/{source}/instances_{split}'
            '.json')
        kwargs.setdefault('data_prefix',
                          dict(img=f'unidet/{source}/images/{split}/'))
        super().__init__(
            label_space=path, source=source, data_root=data_root, **kwargs)


@DATASETS.register_module()
class UnifiedConcatDataset(ConcatDataset):
    """Concatenation of sources in one unified label space.

    Same as mmengine's ``ConcatDataset`` (the first data set's ``metainfo``;
    all must share ``classes``), plus :meth:`get_cat_ids`, which mmdet's
    ``ClassAwareSampler`` calls for every index to build its per-class
    image lists; it looks through ``RepeatDataset`` wrappers, so repeat
    factors also re-weight the sources inside each class.

    Args:
        datasets (list[dict | BaseDataset]): the sources, wrappers
            (``RepeatDataset``...) included, or their configs.
        pipeline (list[dict], optional): one data pipeline for all sources,
            applied to what the sources return (give the sources no
            pipeline then). mmdet's ``DetInferencer`` reads the test
            pipeline from here (``test_dataloader.dataset.pipeline``).
        test_mode (bool): with ``pipeline``: a sample the pipeline drops is
            an error instead of being replaced by a random other one.
        max_refetch (int): replacements tried in training.
        lazy_init (bool): as ``mmengine.dataset.ConcatDataset``.
        ignore_keys (str | list[str], optional): accepted for compatibility;
            the data sets must share ``classes``.
    """

    def __init__(self,
                 datasets,
                 pipeline: Optional[list] = None,
                 test_mode: bool = False,
                 max_refetch: int = 100,
                 lazy_init: bool = False,
                 ignore_keys=None) -> None:
        # mmengine's ConcatDataset takes BaseDataset instances or configs;
        # built wrappers (RepeatDataset, ...) are accepted here too
        from mmengine.registry import DATASETS as ROOT_DATASETS
        built = [
            ROOT_DATASETS.build(d) if isinstance(d, dict) else d
            for d in datasets
        ]
        for d in built:
            if not hasattr(d, 'metainfo') or not hasattr(d, '__getitem__'):
                raise TypeError('UnifiedConcatDataset: elements must be data '
                                f'sets or their configs, got {type(d)}')
        classes = [tuple(d.metainfo.get('classes', ())) for d in built]
        if any(c != classes[0] for c in classes):
            raise ValueError('UnifiedConcatDataset: the data sets do not '
                             'share one label space (metainfo classes '
                             'differ)')
        self.datasets = built
        self.pipeline = Compose(pipeline) if pipeline else None
        self.test_mode, self.max_refetch = test_mode, max_refetch
        self.ignore_keys = [ignore_keys] if isinstance(
            ignore_keys, str) else list(ignore_keys or [])
        self._metainfo = built[0].metainfo
        self._fully_initialized = False
        if not lazy_init:
            self.full_init()

    def __getitem__(self, idx: int) -> dict:
        data = super().__getitem__(idx)
        if self.pipeline is None:
            return data
        for _ in range(self.max_refetch + 1):
            out = self.pipeline(copy.deepcopy(data))
            if out is not None:
                return out
            if self.test_mode:
                raise RuntimeError(f'UnifiedConcatDataset: the pipeline '
                                   f'dropped test sample {idx}')
            idx = int(np.random.randint(len(self)))
            data = super().__getitem__(idx)
        raise RuntimeError('UnifiedConcatDataset: the pipeline dropped '
                           f'{self.max_refetch + 1} samples in a row')

    @staticmethod
    def _cat_ids(dataset, idx: int) -> List[int]:
        if isinstance(dataset, RepeatDataset):
            return UnifiedConcatDataset._cat_ids(
                dataset.dataset, dataset._get_ori_dataset_idx(idx))
        if isinstance(dataset, ConcatDataset):
            d, i = dataset._get_ori_dataset_idx(idx)
            return UnifiedConcatDataset._cat_ids(dataset.datasets[d], i)
        return list(dataset.get_cat_ids(idx))

    def get_cat_ids(self, idx: int) -> List[int]:
        """Unified labels of the instances of sample ``idx``.

        Args:
            idx (int): index in the concatenation.

        Returns:
            list[int]: mmdet labels (0-based unified ids), one per instance.
        """
        # mmengine's ``_get_ori_dataset_idx`` runs ``full_init`` first
        dataset_idx, sample_idx = self._get_ori_dataset_idx(idx)
        return self._cat_ids(self.datasets[dataset_idx], sample_idx)
