# Copyright (c) mmssl contributors. All rights reserved.
"""A folder of the user's own unlabelled images, for pretraining."""
import logging
import multiprocessing
import os
import os.path as osp
from multiprocessing.context import get_spawning_popen
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import numpy as np
from mmengine.logging import print_log
from mmpretrain.datasets import BaseDataset
from PIL import Image

from mmssl.registry import DATASETS
from mmssl.utils.validation import check_choice

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


class SkipRecord:
    """Which samples were skipped, shared by all data-loader workers.

    One byte per sample in shared memory (``multiprocessing.RawArray``),
    made in the process that builds the data set, so that the workers
    started from it (forked, or spawned: the array travels with the data
    set) mark the same bytes and the main process reads their total. A copy
    made outside the start of a worker (``copy.deepcopy``, a pickle written
    to disk) gets its own bytes. There is no lock (a lock would tie the
    record to one start method): two workers meeting the same file at the
    same instant may both report it, the count stays right.

    Args:
        size (int): number of samples.
    """

    def __init__(self, size: int) -> None:
        self.size = int(size)
        self._flags = multiprocessing.RawArray('b', max(self.size, 1))

    def _view(self) -> np.ndarray:
        return np.frombuffer(self._flags, dtype=np.int8)[:self.size]

    def mark(self, idx: int) -> Optional[int]:
        """Mark sample ``idx``: the total so far, ``None`` if marked before.
        """
        if self._flags[idx]:
            return None
        self._flags[idx] = 1
        return len(self)

    def indices(self) -> List[int]:
        """The marked samples, in index order."""
        return np.flatnonzero(self._view()).tolist()

    def __len__(self) -> int:
        return int(np.count_nonzero(self._view()))

    def __getstate__(self) -> Dict[str, Any]:
        if get_spawning_popen() is not None:  # starting a worker: share
            return dict(size=self.size, flags=self._flags)
        return dict(size=self.size, marked=self.indices())

    def __setstate__(self, state: Dict[str, Any]) -> None:
        self.size = state['size']
        if 'flags' in state:
            self._flags = state['flags']
            return
        self._flags = multiprocessing.RawArray('b', max(self.size, 1))
        for idx in state['marked']:
            self._flags[idx] = 1

    def __deepcopy__(self, memo) -> 'SkipRecord':
        new = SkipRecord.__new__(SkipRecord)
        new.__setstate__(dict(size=self.size, marked=self.indices()))
        return new


@DATASETS.register_module()
class UnlabeledImageFolder(BaseDataset):
    """All images under a folder, found recursively, without labels.

    Point ``data_root`` at any folder of images (sub-folders are searched,
    file names are sorted) to pretrain on your own data; samples carry only
    ``img_path``. While searching:

    * symbolic links to folders and files are followed, but every folder
      and every file is used once, compared by their real path: a link loop
      (``a/up -> ..``) or a second link to the same folder adds nothing, and
      a link to an image found already is not a second sample;
    * names starting with ``.`` are skipped: hidden files and folders, and
      the ``._name.jpg`` metadata files macOS writes beside images on
      foreign disks (which have an image extension but are no image);
    * links that lead nowhere are skipped.

    What was left out is logged once, in one line, when the data set is
    built.

    Unreadable files are found lazily: only when the pipeline raises is the
    file itself decoded with PIL. If it decodes, the error is the pipeline's
    own and is raised unchanged. If it does not, ``on_corrupt='error'``
    raises an error naming the file, and ``on_corrupt='skip'`` returns
    another sample (in test mode the next readable one, so no index fails)
    and records the file in a :class:`SkipRecord` shared by all data-loader
    workers: each unreadable file is logged once, by the worker that meets
    it first, with the total skipped so far over all workers; later
    meetings (other epochs, other workers) are silent. :attr:`num_corrupt`
    and :attr:`corrupt_files` read that total in any process, the main one
    included.

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
        name = type(self).__name__
        check_choice(on_corrupt, 'on_corrupt', name, _ON_CORRUPT)
        if not extensions:
            raise ValueError('UnlabeledImageFolder: extensions is empty')
        self.extensions = tuple(
            sorted({('.' + e.lstrip('.')).lower()
                    for e in extensions}))
        self.on_corrupt = on_corrupt
        self._skipped: Optional[SkipRecord] = None
        super().__init__(
            ann_file='',
            data_root=data_root,
            data_prefix='',
            pipeline=pipeline,
            **kwargs)

    def full_init(self) -> None:
        """Load the file list, then make the shared record of skips."""
        if self._fully_initialized:
            return
        super().full_init()
        self._skipped = SkipRecord(len(self))

    def get_subset(self, indices: Union[Sequence[int], int]):
        """A subset, with its own record of skipped files."""
        subset = super().get_subset(indices)
        subset._skipped = SkipRecord(len(subset))
        return subset

    @property
    def num_corrupt(self) -> int:
        """How many unreadable files were skipped so far, by all workers."""
        return len(self._skipped) if self._skipped is not None else 0

    @property
    def corrupt_files(self) -> List[str]:
        """The unreadable files skipped so far, by all workers."""
        if self._skipped is None:
            return []
        return [
            self.get_data_info(i)['img_path'] for i in self._skipped.indices()
        ]

    def _how_to_fix(self) -> str:
        return ('Set `data_root` in the dataset config (e.g. '
                '`train_dataloader.dataset.data_root`, or '
                '`--cfg-options train_dataloader.dataset.data_root=/path`) '
                'to a folder holding images with one of the extensions '
                f'{", ".join(self.extensions)} (sub-folders are searched), '
                'or change `extensions`.')

    def _find_images(self, root: str) -> List[str]:
        """Image paths under ``root`` in walk order, and a log of the rest.

        Depth first: a folder's files (sorted), then its sub-folders
        (sorted), as ``os.walk`` does; folders and files are compared by
        real path so each is used once.
        """
        paths: List[str] = []
        seen_dirs, seen_files = set(), set()
        left_out = dict(hidden=0, repeated_dirs=0, duplicates=0, broken=0)
        stack = [root]
        while stack:
            folder = stack.pop()
            real = osp.realpath(folder)
            if real in seen_dirs:
                left_out['repeated_dirs'] += 1
                continue
            seen_dirs.add(real)
            try:
                entries = sorted(os.scandir(folder), key=lambda e: e.name)
            except OSError:
                left_out['broken'] += 1
                continue
            subdirs = []
            for entry in entries:
                is_image = entry.name.lower().endswith(self.extensions)
                try:
                    is_dir = entry.is_dir()  # follows links
                except OSError:
                    is_dir = False
                if entry.name.startswith('.'):
                    left_out['hidden'] += int(is_dir or is_image)
                    continue
                if is_dir:
                    subdirs.append(entry.path)
                    continue
                if not is_image:
                    continue
                try:
                    is_file = entry.is_file()  # False for a broken link
                except OSError:
                    is_file = False
                if not is_file:
                    left_out['broken'] += 1
                    continue
                real_file = osp.realpath(entry.path)
                if real_file in seen_files:
                    left_out['duplicates'] += 1
                    continue
                seen_files.add(real_file)
                paths.append(entry.path)
            stack.extend(reversed(subdirs))
        notes = [
            f'{n} {what}' for n, what in (
                (left_out['hidden'], 'hidden files or folders (names '
                 "starting with '.', e.g. '._x.jpg')"),
                (left_out['repeated_dirs'], 'folders reached again through '
                 'symbolic links (loops or second links)'),
                (left_out['duplicates'], 'links to images found already'),
                (left_out['broken'], 'broken links or unreadable folders'),
            ) if n
        ]
        if notes:
            print_log(
                f"UnlabeledImageFolder: {len(paths)} images under '{root}'; "
                'left out: ' + ', '.join(notes),
                logger='current',
                level=logging.INFO)
        return paths

    def load_data_list(self) -> List[dict]:
        """Find the image files under ``data_root`` (see the class doc)."""
        root = self.data_root
        if not root or not osp.isdir(root):
            raise FileNotFoundError(
                'UnlabeledImageFolder: the image folder `data_root` = '
                f"'{root}' does not exist or is not a folder. " +
                self._how_to_fix())
        paths = self._find_images(root)
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
            if self._skipped is None:  # not fully initialised (cannot be)
                self._skipped = SkipRecord(len(self))
            total = self._skipped.mark(idx)
            if total is not None:  # the first meeting, in any worker
                print_log(
                    f"UnlabeledImageFolder: skipping unreadable image '{path}'"
                    f' ({type(err).__name__}: {err}); {total} of '
                    f'{len(self)} images skipped so far (all data-loader '
                    'workers together).',
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
