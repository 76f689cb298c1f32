# Copyright (c) mmssl contributors. All rights reserved.
"""A folder of the user's own unlabelled images, for pretraining."""
import logging
import os
import os.path as osp
from typing import Any, Callable, List, Optional, Sequence, Union

from mmengine.logging import print_log
from mmpretrain.datasets import BaseDataset
from PIL import Image

from mmssl.registry import DATASETS

#: Image file extensions found by default (compared case-insensitively).
IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.ppm', '.pgm', '.tif',
                  '.tiff', '.webp')
_ON_CORRUPT = ('error', 'skip')


def _decodes(path: str) -> bool:
    """Whether ``path`` is a complete image that PIL can decode."""
    try:
        with Image.open(path) as img:
            img.load()
        return True
    except Exception:
        return False


@DATASETS.register_module()
class UnlabeledImageFolder(BaseDataset):
    """All images under a folder, found recursively, without labels.

    Point ``data_root`` at any folder of images (sub-folders are searched,
    file names are sorted) to pretrain on your own data; samples carry only
    ``img_path``.

    Unreadable files are found lazily: only when the pipeline raises is the
    file itself decoded with PIL. If it decodes, the error is the pipeline's
    own and is raised unchanged. If it does not, ``on_corrupt='error'``
    raises an error naming the file, and ``on_corrupt='skip'`` logs a
    warning naming it, records it in :attr:`corrupt_files` and returns
    another sample (in test mode the next readable one, so no index fails).
    With ``num_workers > 0`` each data-loader worker keeps its own record.

    Args:
        data_root (str): folder of the images.
        pipeline (Sequence[dict | Callable]): transforms of each sample,
            e.g. ``LoadImageFromFile`` then the pretraining views.
        extensions (Sequence[str]): file extensions to use, compared
            case-insensitively. Defaults to :data:`IMG_EXTENSIONS`.
        on_corrupt (str): ``'error'`` or ``'skip'``. Defaults to
            ``'error'``.
        **kwargs: other arguments of :class:`mmpretrain.datasets.BaseDataset`
            (``test_mode``, ``indices``, ``lazy_init`` ...).
    """

    def __init__(self,
                 data_root: str,
                 pipeline: Sequence[Union[dict, Callable]] = (),
                 extensions: Sequence[str] = IMG_EXTENSIONS,
                 on_corrupt: str = 'error',
                 **kwargs) -> None:
        if on_corrupt not in _ON_CORRUPT:
            raise ValueError('UnlabeledImageFolder: on_corrupt must be one '
                             f'of {_ON_CORRUPT}, got {on_corrupt!r}')
        if not extensions:
            raise ValueError('UnlabeledImageFolder: extensions is empty')
        self.extensions = tuple(
            sorted({('.' + e.lstrip('.')).lower()
                    for e in extensions}))
        self.on_corrupt = on_corrupt
        self.corrupt_files: List[str] = []
        super().__init__(
            ann_file='',
            data_root=data_root,
            data_prefix='',
            pipeline=pipeline,
            **kwargs)

    @property
    def num_corrupt(self) -> int:
        """How many unreadable files were skipped so far."""
        return len(self.corrupt_files)

    def _how_to_fix(self) -> str:
        return ('Set `data_root` in the dataset config (e.g. '
                '`train_dataloader.dataset.data_root`, or '
                '`--cfg-options train_dataloader.dataset.data_root=/path`) '
                'to a folder holding images with one of the extensions '
                f'{", ".join(self.extensions)} (sub-folders are searched), '
                'or change `extensions`.')

    def load_data_list(self) -> List[dict]:
        """Find the image files under ``data_root``, sorted by path."""
        root = self.data_root
        if not root or not osp.isdir(root):
            raise FileNotFoundError(
                'UnlabeledImageFolder: the image folder `data_root` = '
                f"'{root}' does not exist or is not a folder. " +
                self._how_to_fix())
        paths = []
        for folder, dirs, files in os.walk(root, followlinks=True):
            dirs.sort()
            for name in sorted(files):
                if name.lower().endswith(self.extensions):
                    paths.append(osp.join(folder, name))
        if not paths:
            raise FileNotFoundError(
                f"UnlabeledImageFolder: `data_root` = '{root}' holds no "
                'image files. ' + self._how_to_fix())
        return [dict(img_path=path) for path in paths]

    def _prepare_one(self, idx: int) -> Optional[Any]:
        """Run the pipeline; ``None`` for a skipped unreadable file."""
        data_info = self.get_data_info(idx)
        path = data_info['img_path']
        try:
            return self.pipeline(data_info)
        except Exception as err:
            if _decodes(path):
                raise  # the file is fine: a genuine pipeline error
            if self.on_corrupt == 'error':
                raise RuntimeError(
                    f'UnlabeledImageFolder: cannot decode image file '
                    f"'{path}' ({type(err).__name__}: {err}). Remove or "
                    "replace the file, or set on_corrupt='skip' in the "
                    'dataset config to skip such files.') from err
            if path not in self.corrupt_files:
                self.corrupt_files.append(path)
                print_log(
                    f"UnlabeledImageFolder: skipping unreadable image '{path}'"
                    f' ({type(err).__name__}: {err}); '
                    f'{self.num_corrupt} skipped so far.',
                    logger='current',
                    level=logging.WARNING)
            return None

    def prepare_data(self, idx: int) -> Optional[Any]:
        """The pipeline's output for sample ``idx``.

        In training a skipped file gives ``None``, which makes
        :class:`~mmengine.dataset.BaseDataset` fetch a random other sample;
        in test mode the next readable sample is returned instead.
        """
        if not self.test_mode:
            return self._prepare_one(idx)
        for offset in range(len(self)):
            data = self._prepare_one((idx + offset) % len(self))
            if data is not None:
                return data
        raise RuntimeError(
            f"UnlabeledImageFolder: no readable image under '{self.data_root}'"
            f' ({self.num_corrupt} unreadable files).')
