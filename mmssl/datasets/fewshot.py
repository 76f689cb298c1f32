# Copyright (c) mmssl contributors. All rights reserved.
"""Few-shot sampling, base-to-novel class splits and CoOp's split files."""
import json
import math
import os.path as osp
import random
from collections import defaultdict
from typing import Callable, Dict, List, Optional, Sequence, Union

from mmengine.dataset import BaseDataset

from mmssl.registry import DATASETS
from mmssl.utils.validation import check_choice

__all__ = [
    'sample_few_shot', 'split_base_novel', 'FewShotDataset', 'CoOpSplitDataset'
]

_SUBSAMPLE = ('all', 'base', 'novel')


def sample_few_shot(labels: Sequence[int], num_shots: int,
                    seed: int) -> List[int]:
    """Indices of ``num_shots`` random items per class.

    Classes with fewer items keep all of them. The draw depends only on
    ``seed`` and on the labels (not on the global random state); as in
    CoOp, the items of each class are sampled without replacement in the
    order of the data set.

    Args:
        labels (Sequence[int]): the label of every item.
        num_shots (int): K shots per class; ``< 1`` keeps everything.
        seed (int): seed of the draw.

    Returns:
        list[int]: sorted indices into ``labels``.
    """
    if num_shots < 1:
        return list(range(len(labels)))
    rng = random.Random(seed)
    by_class: Dict[int, List[int]] = defaultdict(list)
    for i, label in enumerate(labels):
        by_class[int(label)].append(i)
    keep: List[int] = []
    for label in sorted(by_class):
        items = by_class[label]
        keep += items if len(items) <= num_shots else rng.sample(
            items, num_shots)
    return sorted(keep)


def split_base_novel(num_classes: int) -> int:
    """Base classes of CoCoOp's protocol: the first ``ceil(n / 2)`` label
    ids (e.g. DTD 47 -> 24 base, 23 novel)."""
    return math.ceil(num_classes / 2)


@DATASETS.register_module()
class FewShotDataset(BaseDataset):
    """K shots per class of another data set, and base / novel subsets.

    The inner data set is built (without its pipeline) and its items are
    filtered: first the classes (``subsample``: ``'all'``, ``'base'`` =
    labels below ``ceil(n / 2)``, ``'novel'`` = the rest, relabelled from
    0), then ``num_shots`` items per class drawn with ``seed``. The
    metainfo has ``classes`` (the kept ones), ``all_classes`` (with
    ``'base'``: every class, base first; else the kept ones) and
    ``num_base`` (with ``'base'``, else None), which
    :class:`mmssl.PromptClassNamesHook` hands to the model: a base-only
    training set makes it train on the base names and score all names.

    Args:
        dataset (dict): config of the inner data set (any with
            ``get_data_info`` items holding ``gt_label`` and a
            ``metainfo['classes']``).
        num_shots (int): shots per class; 0 keeps every item (test sets).
        seed (int): seed of the few-shot draw. Defaults to 1.
        subsample (str): ``'all'``, ``'base'`` or ``'novel'``.
        pipeline (Sequence[dict | Callable]): transforms of each item.
        **kwargs: other arguments of :class:`mmengine.dataset.BaseDataset`.
    """

    def __init__(self,
                 dataset: dict,
                 num_shots: int = 0,
                 seed: int = 1,
                 subsample: str = 'all',
                 pipeline: Sequence[Union[dict, Callable]] = (),
                 **kwargs) -> None:
        check_choice(subsample, 'subsample', type(self).__name__, _SUBSAMPLE)
        self.inner_cfg = dict(dataset)
        self.num_shots, self.seed, self.subsample = num_shots, seed, subsample
        super().__init__(pipeline=pipeline, **kwargs)

    def load_data_list(self) -> List[dict]:
        cfg = dict(self.inner_cfg, pipeline=[])
        inner = DATASETS.build(cfg)
        names = list(inner.metainfo['classes'])
        num_base = split_base_novel(len(names))
        items = [inner.get_data_info(i) for i in range(len(inner))]
        offset = 0
        if self.subsample == 'base':
            items = [it for it in items if int(it['gt_label']) < num_base]
            kept = names[:num_base]
        elif self.subsample == 'novel':
            items = [it for it in items if int(it['gt_label']) >= num_base]
            kept, offset = names[num_base:], num_base
        else:
            kept = names
        keep = sample_few_shot([int(it['gt_label']) for it in items],
                               self.num_shots, self.seed)
        data_list = []
        for i in keep:
            item = {
                k: v
                for k, v in items[i].items() if k not in ('sample_idx', )
            }
            item['gt_label'] = int(item['gt_label']) - offset
            data_list.append(item)
        base = self.subsample == 'base'
        self._metainfo.update(
            classes=tuple(kept),
            all_classes=tuple(names if base else kept),
            num_base=num_base if base else None)
        return data_list


@DATASETS.register_module()
class CoOpSplitDataset(BaseDataset):
    """A data set read from CoOp's ``split_zhou_<Name>.json`` split files.

    The file maps ``train``/``val``/``test`` to lists of
    ``[relative image path, label, class name]`` (the splits CoOp, CoCoOp
    and SubPT report on; mmpretrain's default splits differ). Class names
    come from the file (``_`` becomes a space), or from a ``classnames.txt``
    with one ``<folder> <name ...>`` a line (CoOp's ImageNet, which has no
    split file: then ``ann_file`` is a ``<path> <label>`` list).

    Args:
        data_root (str): the data set folder, e.g. ``data/oxford_pets``.
        split_file (str, optional): the split json, relative to
            ``data_root``.
        split (str): ``'train'``, ``'val'`` or ``'test'``.
        img_dir (str): image folder relative to ``data_root``.
        ann_file (str): ``<path> <label>`` list (when no split file).
        classnames_file (str, optional): CoOp's ``classnames.txt``, or
            FGVC-Aircraft's ``variants.txt``.
        ann_format (str): ``'list'`` (``<path> <label>`` lines) or
            ``'fgvc'`` (FGVC-Aircraft's ``<image id> <variant>`` lines,
            images ``<id>.jpg``, classes one variant a line).
        pipeline (Sequence[dict | Callable]): transforms.
        **kwargs: other arguments of :class:`mmengine.dataset.BaseDataset`.
    """

    def __init__(self,
                 data_root: str,
                 split_file: Optional[str] = None,
                 split: str = 'train',
                 img_dir: str = 'images',
                 ann_file: str = '',
                 classnames_file: Optional[str] = None,
                 ann_format: str = 'list',
                 pipeline: Sequence[Union[dict, Callable]] = (),
                 **kwargs) -> None:
        name = type(self).__name__
        self.ann_format = check_choice(ann_format, 'ann_format', name,
                                       ('list', 'fgvc'))
        check_choice(split, 'split', name, ('train', 'val', 'test'))
        if split_file is None and not (ann_file and classnames_file):
            raise ValueError('CoOpSplitDataset needs split_file, or '
                             'ann_file and classnames_file')
        self.split_file, self.split = split_file, split
        self.img_dir, self.classnames_file = img_dir, classnames_file
        super().__init__(
            data_root=data_root,
            ann_file=ann_file,
            pipeline=pipeline,
            serialize_data=False,
            **kwargs)

    def _path(self, rel: str) -> str:
        return osp.join(self.data_root, rel)

    def _missing(self, path: str) -> FileNotFoundError:
        return FileNotFoundError(
            f'{path!r} does not exist: put the data set and CoOp\'s split '
            'files as described in configs/subpt/README.md (CoOp\'s '
            'DATASETS.md lists the download of each data set)')

    def load_data_list(self) -> List[dict]:
        names: Dict[int, str] = {}
        data_list = []
        if self.split_file is not None:
            path = self._path(self.split_file)
            if not osp.isfile(path):
                raise self._missing(path)
            with open(path) as f:
                entries = json.load(f)[self.split]
            for rel, label, name in entries:
                names[int(label)] = name.replace('_', ' ')
                data_list.append(
                    dict(
                        img_path=osp.join(self.data_root, self.img_dir, rel),
                        gt_label=int(label)))
        else:
            cpath = self._path(self.classnames_file)
            if not osp.isfile(cpath):
                raise self._missing(cpath)
            fgvc = self.ann_format == 'fgvc'
            with open(cpath) as f:
                for i, line in enumerate(x for x in f if x.strip()):
                    names[i] = line.strip() if fgvc else \
                        line.strip().split(' ', 1)[-1]
            to_label = {n: i for i, n in names.items()}
            if not osp.isfile(self.ann_file):
                raise self._missing(self.ann_file)
            with open(self.ann_file) as f:
                for line in f:
                    if not line.strip():
                        continue
                    if fgvc:
                        img_id, variant = line.strip().split(' ', 1)
                        rel, label = f'{img_id}.jpg', to_label[variant]
                    else:
                        rel, label = line.strip().rsplit(' ', 1)
                    data_list.append(
                        dict(
                            img_path=osp.join(self.data_root, self.img_dir,
                                              rel),
                            gt_label=int(label)))
        if sorted(names) != list(range(len(names))):
            raise ValueError(f'{self.split_file}: labels are not 0..K-1')
        self._metainfo['classes'] = tuple(names[i] for i in range(len(names)))
        return data_list
