# Copyright (c) mmssl contributors. All rights reserved.
"""Subsets of a labelled data set: a class-balanced fraction of the labels
and the folds of k-fold cross-validation (SubTuning's label-scarce runs and
its greedy search on a held-out part of the training split)."""
import random
from collections import defaultdict
from typing import Callable, Dict, List, Sequence, Tuple, Union

from mmengine.dataset import BaseDataset

from mmssl.registry import DATASETS
from mmssl.utils.validation import check_choice, check_float, check_int

__all__ = [
    'sample_fraction', 'kfold_indices', 'LabelFractionDataset', 'KFoldDataset'
]


def sample_fraction(labels: Sequence[int], fraction: float,
                    seed: int) -> List[int]:
    """Indices of a class-balanced ``fraction`` of the items.

    Each class keeps ``max(1, round(fraction * n_c))`` of its ``n_c`` items,
    drawn without replacement with ``seed`` (not the global random state).

    Args:
        labels (Sequence[int]): the label of every item.
        fraction (float): in (0, 1]; 1 keeps everything.
        seed (int): seed of the draw.

    Returns:
        list[int]: sorted indices into ``labels``.
    """
    if fraction >= 1:
        return list(range(len(labels)))
    rng = random.Random(seed)
    by_class: Dict[int, List[int]] = defaultdict(list)
    for i, label in enumerate(labels):
        by_class[int(label)].append(i)
    keep: List[int] = []
    for label in sorted(by_class):
        items = by_class[label]
        keep += rng.sample(items, max(1, round(fraction * len(items))))
    return sorted(keep)


def kfold_indices(num_items: int, num_folds: int, fold: int, part: str,
                  seed: int) -> List[int]:
    """Indices of one part of a k-fold split.

    The items are shuffled once with ``seed`` and cut into ``num_folds``
    contiguous folds (sizes differ by at most one); ``part='val'`` is fold
    ``fold``, ``part='train'`` the other folds. The folds of one seed are
    disjoint and cover every item (unlike the reference code's unseeded
    shuffle per fold).

    Returns:
        list[int]: sorted indices.
    """
    order = list(range(num_items))
    random.Random(seed).shuffle(order)
    bounds = [num_items * k // num_folds for k in range(num_folds + 1)]
    held = set(order[bounds[fold]:bounds[fold + 1]])
    if part == 'val':
        return sorted(held)
    return [i for i in range(num_items) if i not in held]


def labelled_items(inner_cfg: dict,
                   owner: str,
                   need: str = 'a labelled data set is needed'
                   ) -> Tuple[List[dict], dict]:
    """The data infos and metainfo of a labelled data set, built from its
    config without its pipeline.

    Raises:
        ValueError: the data set is empty or has items without
            ``gt_label`` (the message names ``owner`` and the data set).
    """
    inner = DATASETS.build(dict(inner_cfg, pipeline=[]))
    items = [inner.get_data_info(i) for i in range(len(inner))]
    if not items:
        raise ValueError(f'{owner}: the data set {inner_cfg["type"]} has '
                         'no items')
    if any('gt_label' not in it for it in items):
        raise ValueError(f'{owner}: the data set {inner_cfg["type"]} has '
                         f'items without gt_label; {need}')
    return items, dict(inner.metainfo)


class _SubsetDataset(BaseDataset):
    """Items of an inner data set (built without its pipeline), chosen by
    :meth:`select`; the metainfo is the inner one's."""

    def __init__(self,
                 dataset: dict,
                 pipeline: Sequence[Union[dict, Callable]] = (),
                 **kwargs) -> None:
        if not isinstance(dataset, dict) or 'type' not in dataset:
            raise ValueError(
                f'{type(self).__name__}: dataset must be the config dict of '
                f'the data set to take items from, got {dataset!r}')
        self.inner_cfg = dict(dataset)
        super().__init__(pipeline=pipeline, **kwargs)

    def select(self, labels: List[int]) -> List[int]:
        raise NotImplementedError

    def load_data_list(self) -> List[dict]:
        items, metainfo = labelled_items(self.inner_cfg, type(self).__name__)
        self._metainfo.update(metainfo)
        keep = self.select([int(it['gt_label']) for it in items])
        return [{
            k: v
            for k, v in items[i].items() if k != 'sample_idx'
        } for i in keep]


@DATASETS.register_module()
class LabelFractionDataset(_SubsetDataset):
    """A class-balanced fraction of a labelled data set.

    Each class keeps ``round(fraction * n_c)`` (at least one) of its items,
    drawn with ``seed``: the same seed gives the same images, whatever the
    training seed.

    Args:
        dataset (dict): config of the inner data set (items with
            ``gt_label``).
        fraction (float): share of the items to keep, in (0, 1].
        seed (int): seed of the draw. Defaults to 0.
        pipeline (Sequence[dict | Callable]): transforms of each item.
        **kwargs: other arguments of :class:`mmengine.dataset.BaseDataset`.
    """

    def __init__(self,
                 dataset: dict,
                 fraction: float = 1.0,
                 seed: int = 0,
                 pipeline: Sequence[Union[dict, Callable]] = (),
                 **kwargs) -> None:
        owner = type(self).__name__
        self.fraction = check_float(
            fraction,
            'fraction',
            owner,
            low=0.,
            high=1.,
            inclusive=(False, True))
        self.seed = check_int(seed, 'seed', owner, minimum=0)
        super().__init__(dataset, pipeline=pipeline, **kwargs)

    def select(self, labels: List[int]) -> List[int]:
        return sample_fraction(labels, self.fraction, self.seed)


@DATASETS.register_module()
class KFoldDataset(_SubsetDataset):
    """One part of a k-fold split of a labelled data set.

    ``part='val'`` is fold ``fold`` of ``num_folds``, ``part='train'`` the
    other folds; the shuffle uses ``seed`` (42 in the reference's VTAB
    search), so the folds are disjoint and cover the data set.

    Args:
        dataset (dict): config of the inner data set.
        num_folds (int): k >= 2. Defaults to 5.
        fold (int): held-out fold, in [0, num_folds). Defaults to 0.
        part (str): ``'train'`` or ``'val'``. Defaults to ``'train'``.
        seed (int): seed of the shuffle. Defaults to 42.
        pipeline (Sequence[dict | Callable]): transforms of each item.
        **kwargs: other arguments of :class:`mmengine.dataset.BaseDataset`.
    """

    def __init__(self,
                 dataset: dict,
                 num_folds: int = 5,
                 fold: int = 0,
                 part: str = 'train',
                 seed: int = 42,
                 pipeline: Sequence[Union[dict, Callable]] = (),
                 **kwargs) -> None:
        owner = type(self).__name__
        self.num_folds = check_int(num_folds, 'num_folds', owner, minimum=2)
        self.fold = check_int(
            fold, 'fold', owner, minimum=0, maximum=self.num_folds - 1)
        self.part = check_choice(part, 'part', owner, ('train', 'val'))
        self.seed = check_int(seed, 'seed', owner, minimum=0)
        super().__init__(dataset, pipeline=pipeline, **kwargs)

    def select(self, labels: List[int]) -> List[int]:
        if len(labels) < self.num_folds:
            raise ValueError(
                f'{type(self).__name__}: {len(labels)} items cannot make '
                f'{self.num_folds} folds; lower num_folds')
        return kfold_indices(
            len(labels), self.num_folds, self.fold, self.part, self.seed)
