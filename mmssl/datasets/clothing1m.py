# Copyright (c) mmssl contributors. All rights reserved.
"""Clothing1M (Xiao et al., CVPR 2015): 1M clothing images from shopping
sites with noisy labels from the surrounding text, and clean subsets."""
import os.path as osp
from typing import Callable, Dict, List, Sequence, Union

import numpy as np
from mmengine import list_from_file
from mmengine.dataset import BaseDataset

from mmssl.registry import DATASETS
from mmssl.utils.validation import check_choice

__all__ = ['CLOTHING1M_CLASSES', 'Clothing1M']

#: The 14 classes in the order of ``category_names_eng.txt``.
CLOTHING1M_CLASSES = ('T-Shirt', 'Shirt', 'Knitwear', 'Chiffon', 'Sweater',
                      'Hoodie', 'Windbreaker', 'Jacket', 'Downcoat', 'Suit',
                      'Shawl', 'Dress', 'Vest', 'Underwear')

#: split -> (key list, label file)
_SPLITS: Dict[str, tuple] = {
    'noisy_train': ('noisy_train_key_list.txt', 'noisy_label_kv.txt'),
    'clean_train': ('clean_train_key_list.txt', 'clean_label_kv.txt'),
    'clean_val': ('clean_val_key_list.txt', 'clean_label_kv.txt'),
    'clean_test': ('clean_test_key_list.txt', 'clean_label_kv.txt'),
}


def _read_kv(path: str) -> Dict[str, int]:
    labels = {}
    for n, line in enumerate(list_from_file(path), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2:
            raise ValueError(f'Clothing1M: line {n} of {path} must be '
                             f'"<key> <label>", got {line!r}')
        labels[parts[0]] = int(parts[1])
    return labels


@DATASETS.register_module()
class Clothing1M(BaseDataset):
    """Clothing1M in its released layout::

        data_root/
          images/0/00/<name>.jpg ...      keys are these relative paths
          noisy_label_kv.txt              "<key> <label>" (noisy labels)
          clean_label_kv.txt              "<key> <label>" (clean labels)
          noisy_train_key_list.txt        one key a line (1M images)
          clean_train_key_list.txt        (47,570; optional)
          clean_val_key_list.txt          (14,313)
          clean_test_key_list.txt         (10,526)
          category_names_eng.txt          the 14 class names (optional)

    ``split='noisy_train'`` serves the keys of ``noisy_train_key_list.txt``
    with their noisy labels as ``gt_label``; the ``clean_*`` splits their
    clean labels. Every item also has ``gt_label_clean``: the clean label
    where ``clean_label_kv.txt`` has the key, else -1 (unknown; most noisy
    training images have no clean label), so
    :class:`mmssl.LabelQualityHook` can measure its clean/noisy separation
    on the images that have both.

    Args:
        data_root (str): the folder above.
        split (str): ``'noisy_train'`` (default), ``'clean_train'``,
            ``'clean_val'`` or ``'clean_test'``.
        pipeline (Sequence[dict | Callable]): transforms of each item.
        **kwargs: other arguments of :class:`mmengine.dataset.BaseDataset`.
    """

    METAINFO = {'classes': CLOTHING1M_CLASSES}

    def __init__(self,
                 data_root: str,
                 split: str = 'noisy_train',
                 pipeline: Sequence[Union[dict, Callable]] = (),
                 **kwargs) -> None:
        self.split = check_choice(split, 'split',
                                  type(self).__name__, tuple(_SPLITS))
        super().__init__(data_root=data_root, pipeline=pipeline, **kwargs)

    def _file(self, name: str) -> str:
        path = osp.join(self.data_root, name)
        if not osp.isfile(path):
            raise FileNotFoundError(
                f'{type(self).__name__}: {path} does not exist; data_root '
                'must hold the Clothing1M annotation files (see the class '
                'docstring for the layout)')
        return path

    def _load_classes(self) -> None:
        path = osp.join(self.data_root, 'category_names_eng.txt')
        if not osp.isfile(path):
            return
        names = tuple(n.strip() for n in list_from_file(path) if n.strip())
        if len(names) != len(CLOTHING1M_CLASSES):
            raise ValueError(f'{type(self).__name__}: {path} names '
                             f'{len(names)} classes, Clothing1M has 14')
        self._metainfo['classes'] = names

    def load_data_list(self) -> List[dict]:
        self._load_classes()
        key_file, label_file = _SPLITS[self.split]
        keys = [
            k.strip() for k in list_from_file(self._file(key_file))
            if k.strip()
        ]
        labels = _read_kv(self._file(label_file))
        clean = labels if label_file == 'clean_label_kv.txt' else \
            _read_kv(self._file('clean_label_kv.txt'))
        missing = [k for k in keys if k not in labels]
        if missing:
            raise ValueError(
                f'{type(self).__name__}: {len(missing)} keys of {key_file} '
                f'have no label in {label_file}, e.g. {missing[0]!r}')
        num_classes = len(self._metainfo['classes'])
        data_list = []
        for key in keys:
            label = labels[key]
            if not 0 <= label < num_classes:
                raise ValueError(
                    f'{type(self).__name__}: {key} has label {label} in '
                    f'{label_file}, outside the {num_classes} classes')
            data_list.append(
                dict(
                    img_path=osp.join(self.data_root, key),
                    gt_label=label,
                    gt_label_clean=clean.get(key, -1)))
        return data_list

    def get_gt_labels(self) -> np.ndarray:
        """(N,) the labels training sees (noisy for ``noisy_train``)."""
        return np.array(
            [self.get_data_info(i)['gt_label'] for i in range(len(self))],
            dtype=np.int64)
