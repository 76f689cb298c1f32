# Copyright (c) mmssl contributors. All rights reserved.
"""The embedded classification data as a CIFAR-format data set, written on
first use (the small stand-in of CIFAR in the noisy-label configs)."""
import json
import os
import os.path as osp
import shutil
import tempfile

from mmssl.registry import DATASETS
from mmssl.utils.validation import check_int
from .embedded import _file_lock, ensure_embedded_data
from .noisy_labels import CIFARFormatDataset, make_cifar_copy

__all__ = ['ensure_embedded_cifar', 'EmbeddedCIFARDataset']

_FOLDER = 'cifar-10-batches-py'
_SOURCE = 'source.json'


def _wanted(source_root: str, size: int) -> dict:
    meta = ensure_embedded_data(source_root)
    return dict(
        generator='mmssl.datasets.embedded_cifar',
        embedded_params=meta.get('params'),
        size=size)


def ensure_embedded_cifar(root: str = 'data/embedded_cifar',
                          source_root: str = 'data/embedded',
                          size: int = 64) -> str:
    """Make sure ``root`` holds the CIFAR-format copy of the embedded
    classification data (``cls`` train and val splits, ``size`` px).

    The copy (:func:`mmssl.datasets.make_cifar_copy`: the training images
    in file order as ``data_batch_1..5``, the validation images as
    ``test_batch``) is written once, under a file lock and into a temporary
    folder moved into place, so several processes may call this together.
    ``root/source.json`` records the embedded data's parameters and the
    size; a copy made from other ones is refused.

    Returns:
        str: ``root``.
    """
    size = check_int(size, 'size', 'ensure_embedded_cifar', minimum=8)
    want = _wanted(source_root, size)
    os.makedirs(root, exist_ok=True)
    source = osp.join(root, _SOURCE)

    def check() -> bool:
        if not (osp.isfile(source)
                and osp.isfile(osp.join(root, _FOLDER, 'batches.meta'))):
            return False
        with open(source) as f:
            have = json.load(f)
        if have != want:
            raise ValueError(
                f'EmbeddedCIFARDataset: {root} holds a copy made with '
                f'{have}, this config needs {want}; delete {root} or set '
                'another data_root')
        return True

    if check():
        return root
    with _file_lock(root):
        if check():  # another process made it meanwhile
            return root
        tmp = tempfile.mkdtemp(prefix='.tmp-', dir=root)
        try:
            src = dict(type='mmssl.EmbeddedClsDataset', data_root=source_root)
            make_cifar_copy(
                dict(src, split='train'),
                tmp,
                size=size,
                test_dataset_cfg=dict(src, split='val'))
            if osp.lexists(osp.join(root, _FOLDER)):
                shutil.rmtree(osp.join(root, _FOLDER))
            os.rename(osp.join(tmp, _FOLDER), osp.join(root, _FOLDER))
            with open(osp.join(tmp, _SOURCE), 'w') as f:
                json.dump(want, f)
            os.replace(osp.join(tmp, _SOURCE), source)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return root


@DATASETS.register_module()
class EmbeddedCIFARDataset(CIFARFormatDataset):
    """The embedded shapes (9 classes) as a CIFAR-format data set, made on
    first use by :func:`ensure_embedded_cifar` (2000 training and 500 test
    images of ``size`` px by default; items hold ``img`` arrays, so
    loading needs no image files).

    Args:
        data_root (str): folder of the copy. Defaults to
            ``'data/embedded_cifar'``.
        split (str): ``'train'`` or ``'test'`` (the embedded ``val``).
        source_root (str): the embedded data set (made there on first use
            too). Defaults to ``'data/embedded'``.
        size (int): image side. Defaults to 64.
        **kwargs: other arguments of ``mmssl.CIFARFormatDataset``.
    """

    def __init__(self,
                 data_root: str = 'data/embedded_cifar',
                 split: str = 'train',
                 source_root: str = 'data/embedded',
                 size: int = 64,
                 **kwargs) -> None:
        ensure_embedded_cifar(data_root, source_root, size)
        super().__init__(data_root=data_root, split=split, **kwargs)
