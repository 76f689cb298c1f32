# Copyright (c) mmssl contributors. All rights reserved.
"""The labelled data of a backbone evaluation (kNN, linear probe, finetune).

A ``frozen_eval`` dict names the two loaders::

    frozen_eval = dict(
        train_dataloader=dict(batch_size=64, num_workers=2, dataset=dict(...)),
        val_dataloader=dict(batch_size=64, num_workers=2, dataset=dict(...)),
        num_classes=None)  # optional; else read from the data set

It comes from a config (:func:`frozen_eval_cfg`: a data config wins over the
pretraining config's own key) or is made for an ImageNet-style folder of
labelled images (:func:`folder_frozen_eval`). :func:`describe_data` says
what a built pair of loaders reads, for the log and the results file. The
errors name the command-line options of ``tools/analysis_tools/
eval_frozen.py``, which is where these inputs come from. (This module
imports nothing of :mod:`mmssl.engine`, the floor above: the engine's hooks
import the evaluation protocols.)
"""
import inspect
import os
import os.path as osp
from typing import List, Optional, Tuple

import numpy as np
from mmengine.config import Config
from mmpretrain.datasets import CustomDataset

from mmssl.utils.config import read_config

#: the image extensions mmpretrain's CustomDataset reads by default (the
#: folder checks count what the data set will find)
IMG_EXTENSIONS = tuple(
    inspect.signature(CustomDataset).parameters['extensions'].default)


class EvalDataError(ValueError):
    """The evaluation data are missing or not laid out as expected.

    The message says what to fix; ``eval_frozen.py`` prints it as a user
    error (``error: ...``, exit status 2).
    """


def _has_frozen_eval(frozen) -> bool:
    return frozen is not None and 'train_dataloader' in frozen \
        and 'val_dataloader' in frozen


def frozen_eval_cfg(cfg: Config,
                    data_cfg: Optional[str],
                    config_path: str = 'CONFIG') -> Tuple[dict, str]:
    """The ``frozen_eval`` dict to use and where it comes from.

    ``--data-cfg`` wins over CONFIG's own ``frozen_eval``.

    Returns:
        tuple[dict, str]: the ``frozen_eval`` dict and its source, e.g.
        ``"the frozen_eval of --data-cfg 'data.py'"``.

    Raises:
        EvalDataError: neither has ``train_dataloader`` and ``val_dataloader``.
        FileNotFoundError: ``data_cfg`` (or one of its ``_base_`` files)
            does not exist.
    """
    if data_cfg is not None:
        frozen = read_config(data_cfg).get('frozen_eval')
        if not _has_frozen_eval(frozen):
            raise EvalDataError(
                f'--data-cfg {data_cfg!r} has no `frozen_eval = dict('
                'train_dataloader=..., val_dataloader=...)`: add it, or give '
                'a labelled image folder with --data-root FOLDER')
        source = f'the frozen_eval of --data-cfg {data_cfg!r}'
        if cfg.get('frozen_eval') is not None:
            source += f' (it replaces the one of {config_path!r})'
        return frozen, source
    frozen = cfg.get('frozen_eval')
    if not _has_frozen_eval(frozen):
        raise EvalDataError(
            f'no evaluation data: {config_path!r} has no `frozen_eval = '
            'dict(train_dataloader=..., val_dataloader=...)`; add it to the '
            'config or to a file given with --data-cfg, or give a labelled '
            'image folder with --data-root FOLDER (one sub-folder per class)')
    return frozen, f'the frozen_eval of {config_path!r}'


# --------------------------------------------------------------------------
# --data-root: a labelled image folder
# --------------------------------------------------------------------------
def _count_images(folder: str) -> int:
    count = 0
    for _, _, files in os.walk(folder, followlinks=True):
        count += sum(f.lower().endswith(IMG_EXTENSIONS) for f in files)
    return count


def _class_folders(folder: str) -> List[str]:
    """Sorted class sub-folders of ``folder``, each checked to hold images.

    The sub-folders are listed as ``CustomDataset`` lists them (all of them,
    hidden ones included), since each becomes a class.

    Raises:
        EvalDataError: no sub-folders, fewer than two, or one without images.
    """
    classes = sorted(
        entry.name for entry in os.scandir(folder) if entry.is_dir())
    if not classes:
        loose = _count_images(folder)
        raise EvalDataError(
            f'--data-root: {folder!r} has no class sub-folders' +
            (f' ({loose} images lie directly in it)' if loose else '') +
            '; put the images of each class in a sub-folder named after it '
            '(FOLDER/<class>/*.jpg, or FOLDER/train/<class>/... and '
            'FOLDER/val/<class>/...)')
    empty = [c for c in classes if not _count_images(osp.join(folder, c))]
    if empty:
        raise EvalDataError(
            '--data-root: the class sub-folder(s) ' +
            ', '.join(repr(c) for c in empty) + f' of {folder!r} hold no '
            f'images ({", ".join(IMG_EXTENSIONS)}); every sub-folder is a '
            'class: remove them or add images')
    if len(classes) < 2:
        raise EvalDataError(
            f'--data-root: {folder!r} has one class sub-folder '
            f'({classes[0]!r}); classification needs at least two')
    return classes


#: training-pipeline steps whose size is the image size, in the order of
#: preference: the crops, then a resize
_SIZE_STEPS = (('RandomResizedCrop', 'CenterCrop', 'RandomCrop'), ('Resize', ))


def train_image_size(cfg: Config) -> Optional[int]:
    """The image size a config trains at, ``None`` if it names none.

    The backbone's ``img_size``; else the size of the first crop of the
    training pipeline (``RandomResizedCrop`` / ``RandomCrop`` /
    ``CenterCrop``, their ``scale`` or ``crop_size``); else of its first
    ``Resize``. Of a (height, width) pair the height.
    """

    def get(node, *keys):
        for key in keys:
            if not isinstance(node, (dict, Config)) or key not in node:
                return None
            node = node[key]
        return node

    size = get(cfg, 'model', 'backbone', 'img_size')
    pipeline = get(cfg, 'train_dataloader', 'dataset', 'pipeline') or []
    for kinds in _SIZE_STEPS:
        if size is not None:
            break
        for step in pipeline:
            name = str(step.get('type', '')).split('.')[-1] \
                if isinstance(step, dict) else ''
            if name in kinds:
                size = step.get('scale', step.get('crop_size'))
                break
    if isinstance(size, (list, tuple)) and size:
        size = size[0]
    return int(size) if isinstance(size, (int, float)) else None


def default_img_size(cfg: Config) -> int:
    """:func:`train_image_size`, else 224."""
    return train_image_size(cfg) or 224


def folder_frozen_eval(root: str,
                       img_size: int,
                       batch_size: int = 64,
                       num_workers: int = 2,
                       val_fraction: float = 0.2,
                       seed: int = 0) -> Tuple[dict, str]:
    """A ``frozen_eval`` dict for a labelled ImageNet-style folder.

    Args:
        root (str): ``root/train/<class>/...`` and ``root/val/<class>/...``
            (the same classes in both), or ``root/<class>/...``, split per
            class.
        img_size (int): resize (short edge) and centre-crop size.
        batch_size (int): images per batch.
        num_workers (int): data-loader workers.
        val_fraction (float): share of each class held out when ``root``
            has no ``train/`` and ``val/`` (at least one image per class).
        seed (int): seed of that split.

    Returns:
        tuple[dict, str]: the ``frozen_eval`` dict and its source.

    Raises:
        EvalDataError: the folder is missing or not laid out as above.
    """
    if not osp.isdir(root):
        raise EvalDataError(f'--data-root {root!r} does not exist or is not a '
                            'folder')
    pipeline = [
        dict(type='mmpretrain.LoadImageFromFile'),
        dict(
            type='mmpretrain.ResizeEdge',
            scale=img_size,
            edge='short',
            backend='pillow',
            interpolation='bicubic'),
        dict(type='mmpretrain.CenterCrop', crop_size=img_size),
        dict(type='mmpretrain.PackInputs')
    ]

    def loader(folder, **dataset_kwargs):
        return dict(
            batch_size=batch_size,
            num_workers=num_workers,
            dataset=dict(
                type='mmpretrain.CustomDataset',
                data_root=folder,
                pipeline=pipeline,
                **dataset_kwargs))

    train_dir, val_dir = osp.join(root, 'train'), osp.join(root, 'val')
    if osp.isdir(train_dir) or osp.isdir(val_dir):
        if not (osp.isdir(train_dir) and osp.isdir(val_dir)):
            have, lack = ('train', 'val') if osp.isdir(train_dir) else \
                ('val', 'train')
            raise EvalDataError(
                f'--data-root {root!r} has {have}/ but no {lack}/: give both '
                f'{root}/train/<class>/... and {root}/val/<class>/... (the '
                'same classes), or only class sub-folders, which are split '
                'by --val-fraction')
        train_classes = _class_folders(train_dir)
        val_classes = _class_folders(val_dir)
        if train_classes != val_classes:
            only_train = sorted(set(train_classes) - set(val_classes))
            only_val = sorted(set(val_classes) - set(train_classes))
            raise EvalDataError(
                f'--data-root {root!r}: train/ and val/ must have the same '
                'class sub-folders (labels are their sorted positions); '
                f'only in train/: {only_train or "none"}, only in val/: '
                f'{only_val or "none"}')
        frozen = dict(
            train_dataloader=loader(train_dir), val_dataloader=loader(val_dir))
        return frozen, f'--data-root {root!r} (train/ and val/)'

    _class_folders(root)
    labels = np.asarray(
        CustomDataset(data_root=root, pipeline=[]).get_gt_labels())
    rng = np.random.default_rng(seed)
    train_idx: List[int] = []
    val_idx: List[int] = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        if len(members) < 2:
            raise EvalDataError(
                f'--data-root {root!r}: class {int(label)} has one image; '
                'splitting needs at least two per class (or give train/ and '
                'val/ sub-folders)')
        members = rng.permutation(members)
        num_val = min(
            len(members) - 1, max(1, int(round(len(members) * val_fraction))))
        val_idx += members[:num_val].tolist()
        train_idx += members[num_val:].tolist()
    frozen = dict(
        train_dataloader=loader(root, indices=sorted(train_idx)),
        val_dataloader=loader(root, indices=sorted(val_idx)))
    return frozen, (f'--data-root {root!r} (split per class, '
                    f'--val-fraction {val_fraction}, seed {seed})')


def describe_split(loader) -> dict:
    """Where a built evaluation loader reads from and how much."""
    dataset = loader.dataset
    where = getattr(dataset, 'img_prefix', None) or getattr(
        dataset, 'data_root', None) or ''
    classes = (getattr(dataset, 'metainfo', None) or {}).get('classes')
    info = dict(
        dataset=type(dataset).__name__,
        folder=str(where).rstrip('/\\') or None,
        split=getattr(dataset, 'split', None),
        num_images=len(dataset))
    if classes:
        info['classes'] = [str(c) for c in classes]
    return info


def describe_data(source: str, train_loader, val_loader) -> dict:
    """The data of an evaluation, for the log and ``--out``."""
    return dict(
        source=source,
        train=describe_split(train_loader),
        val=describe_split(val_loader))


def format_data(data: dict) -> str:
    """One log line per split, naming the data set, folder and counts."""
    lines = [f'evaluation data: {data["source"]}']
    for name in ('train', 'val'):
        split = data[name]
        text = f'  {name}: {split["dataset"]}'
        if split.get('folder'):
            text += f' {split["folder"]!r}'
        if split.get('split'):
            text += f' split {split["split"]!r}'
        text += f', {split["num_images"]} images'
        classes = split.get('classes')
        if classes:
            shown = ', '.join(
                classes[:10]) + (f', ... ({len(classes) - 10} more)'
                                 if len(classes) > 10 else '')
            text += f', {len(classes)} classes ({shown})'
        lines.append(text)
    return '\n'.join(lines)
