# Copyright (c) mmssl contributors. All rights reserved.
"""Hierarchy-aware sigmoid binary cross-entropy (Large-UniDet).

For ``N`` RoIs with logits ``z (N, C + 1)`` (last column = background) and
labels ``t (N,)`` in ``[0, C]`` (``C`` = background), the reference loss
(``hierarchy_loss.py`` of Large-UniDet, ``pos_parents='oid'``,
``ignore='child+'``) is::

    Y     = onehot(t) + onehot(t) @ P_pos          (N, C + 1) targets
    W     = (1 - M)[t]                              (N, C + 1) weights
    loss  = sum(W * BCEWithLogits(z, Y)) / N

``P_pos`` is an ancestor matrix (the class and all its ancestors are
positive) and ``M`` the "ignore" matrix, row-indexed by the label:

* ``'child'``:   ``M = Ch``                (descendants ignored)
* ``'child+'``:  ``M = P_full - P_base + Ch_full`` (descendants and the
  ancestors that exist only through the merge / insert edits ignored)
* ``'child++'``: ``M = P + Ch`` (meant for ``set_pos_parents=False``:
  ancestors ignored instead of positive)

``label_weights`` and ``avg_factor`` of mmdet's heads are ignored: the sum
is divided by ``N`` (as in the reference). Background rows of the matrices
are zero, so a background RoI has one positive column (the background) and
weight 1 everywhere. With ``set_pos_parents=False, ignore_children=False``
it is the plain multi-label sigmoid BCE on the same ``C + 1`` columns (the
"flat" baseline).
"""
import os.path as osp
from typing import Optional, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmssl.registry import MODELS
from mmssl.utils.validation import check_choice

__all__ = ['hierarchy_bce_loss', 'hierarchy_targets', 'HierarchyBCELoss']

_POS = {'base': 'base', 'oid': 'base', 'full': 'full', 'rvc': 'full'}
_IGNORE = ('child', 'child+', 'child++')


def hierarchy_targets(labels: Tensor,
                      num_columns: int,
                      pos_matrix: Optional[Tensor] = None) -> Tensor:
    """Multi-label targets: the class and (optionally) its ancestors.

    Args:
        labels (Tensor): ``(N,)`` int64 labels in ``[0, num_columns - 1]``
            (the last column is the background).
        num_columns (int): ``C + 1``.
        pos_matrix (Tensor, optional): ``(C + 1, C + 1)`` 0/1 ancestor
            matrix, ``pos_matrix[i, j] = 1`` if ``j`` is a positive for
            label ``i`` besides ``i`` itself. None: only the class.

    Returns:
        Tensor: ``(N, C + 1)`` float targets in {0, 1}.
    """
    onehot = F.one_hot(labels, num_columns).float()
    if pos_matrix is None:
        return onehot
    return (onehot + pos_matrix.float()[labels]).clamp_(max=1)


def hierarchy_bce_loss(cls_score: Tensor,
                       labels: Tensor,
                       pos_matrix: Optional[Tensor] = None,
                       ignore_matrix: Optional[Tensor] = None) -> Tensor:
    """Hierarchy-aware sigmoid BCE, normalised by the number of RoIs.

    Args:
        cls_score (Tensor): ``(N, C + 1)`` logits, last column background.
        labels (Tensor): ``(N,)`` int64 labels in ``[0, C]``, ``C`` =
            background.
        pos_matrix (Tensor, optional): ``(C + 1, C + 1)`` 0/1;
            ``pos_matrix[i, j] = 1`` makes ``j`` a positive of label ``i``
            (its ancestors). None: only the class is positive.
        ignore_matrix (Tensor, optional): ``(C + 1, C + 1)`` 0/1;
            ``ignore_matrix[i, j] = 1`` gives column ``j`` weight 0 for
            label ``i``. None: no column ignored.

    Returns:
        Tensor: scalar, ``sum(W * BCE(z, Y)) / N`` (0 for ``N = 0``).
    """
    if cls_score.dim() != 2 or labels.shape != cls_score.shape[:1]:
        raise ValueError('hierarchy_bce_loss: cls_score must be (N, C + 1) '
                         f'and labels (N,), got {tuple(cls_score.shape)} and '
                         f'{tuple(labels.shape)}')
    num, cols = cls_score.shape
    if num == 0:
        return cls_score.sum() * 0
    labels = labels.long()
    if pos_matrix is not None:
        pos_matrix = pos_matrix.to(cls_score.device)
    target = hierarchy_targets(labels, cols, pos_matrix).to(cls_score.dtype)
    loss = F.binary_cross_entropy_with_logits(
        cls_score, target, reduction='none')
    if ignore_matrix is not None:
        weight = 1 - ignore_matrix.to(cls_score.device,
                                      cls_score.dtype)[labels]
        loss = loss * weight
    return loss.sum() / num


@MODELS.register_module()
class HierarchyBCELoss(nn.Module):
    """Hierarchy-aware sigmoid BCE as an mmdet ``loss_cls``.

    It implements mmdet 3.x's custom classification protocol
    (``custom_cls_channels`` / ``custom_activation`` / ``custom_accuracy``),
    so ``BBoxHead`` builds ``C + 1`` output columns, and ``CascadeRoIHead``
    averages the stages' raw logits and applies :meth:`get_activation`
    (sigmoid) instead of a softmax at prediction time.

    Args:
        label_space (str | dict, optional): ``label_space.json`` written by
            ``tools/dataset_converters/unify_label_space.py`` (or the loaded
            dict). Needed unless both flags are False. A missing file is
            read at the first loss call (a data set may build it).
        set_pos_parents (bool): ancestors are positives. Defaults to True.
        ignore_children (bool): apply the ignore mask. Defaults to True.
        pos_parents (str): hierarchy giving the positives: ``'base'`` (the
            source hierarchy, alias ``'oid'``) or ``'full'`` (with the
            edits, alias ``'rvc'``). Defaults to ``'base'``.
        ignore (str): ``'child'``, ``'child+'`` or ``'child++'`` (see the
            module doc). Defaults to ``'child+'``.
        loss_weight (float): multiplier. Defaults to 1.0.
    """

    custom_cls_channels = True
    custom_activation = True
    custom_accuracy = True

    def __init__(self,
                 label_space: Union[str, dict, None] = None,
                 set_pos_parents: bool = True,
                 ignore_children: bool = True,
                 pos_parents: str = 'base',
                 ignore: str = 'child+',
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        name = type(self).__name__
        check_choice(pos_parents, 'pos_parents', name, sorted(_POS))
        check_choice(ignore, 'ignore', name, _IGNORE)
        self.uses_hierarchy = set_pos_parents or ignore_children
        if self.uses_hierarchy and label_space is None:
            raise ValueError('HierarchyBCELoss: label_space is required '
                             'unless set_pos_parents and ignore_children are '
                             'both False (flat sigmoid BCE)')
        self.label_space = label_space
        self.set_pos_parents, self.ignore_children = (set_pos_parents,
                                                      ignore_children)
        self.pos_parents, self.ignore = _POS[pos_parents], ignore
        self.loss_weight = loss_weight
        self._pos: Optional[Tensor] = None
        self._ignore: Optional[Tensor] = None
        if self.uses_hierarchy and (isinstance(label_space, dict)
                                    or osp.isfile(label_space)):
            self._load()

    def _load(self) -> None:
        """Turn the label space into the positive / ignore matrices."""
        from mmssl.datasets.unidet.label_space import load_label_space
        space = load_label_space(self.label_space)
        mats = {
            k: torch.as_tensor(space[k], dtype=torch.float32)
            for k in ('ancestors', 'descendants', 'ancestors_base',
                      'descendants_base')
        }
        sfx = '' if self.pos_parents == 'full' else '_base'
        anc, desc = mats['ancestors' + sfx], mats['descendants' + sfx]
        self._pos = anc if self.set_pos_parents else None
        if not self.ignore_children:
            self._ignore = None
        elif self.ignore == 'child':
            self._ignore = desc
        elif self.ignore == 'child+':
            self._ignore = (
                mats['ancestors'] - mats['ancestors_base'] +
                mats['descendants'])
        else:
            self._ignore = anc + desc
        if self._ignore is not None:
            self._ignore = self._ignore.clamp(0, 1)

    def get_cls_channels(self, num_classes: int) -> int:
        """Output columns of ``fc_cls``: ``num_classes + 1`` (background)."""
        return num_classes + 1

    def get_activation(self, cls_score: Tensor) -> Tensor:
        """Per-class sigmoid scores.

        Args:
            cls_score (Tensor): ``(N, C + 1)`` logits (for a cascade: the
                mean of the stages' logits).

        Returns:
            Tensor: ``(N, C + 1)`` scores; mmdet drops the last
            (background) column before NMS.
        """
        return cls_score.sigmoid()

    def get_accuracy(self, cls_score: Tensor, labels: Tensor) -> dict:
        """Top-1 accuracy: the highest column is one of the RoI's targets.

        Args:
            cls_score (Tensor): ``(N, C + 1)`` logits.
            labels (Tensor): ``(N,)`` labels, ``C`` = background.

        Returns:
            dict: ``acc`` (percent, scalar tensor).
        """
        if cls_score.numel() == 0:
            return dict(acc=cls_score.sum() * 0)
        pos = self._pos if self.uses_hierarchy else None
        target = hierarchy_targets(
            labels.long(), cls_score.shape[1],
            None if pos is None else pos.to(cls_score.device))
        hit = target.gather(1, cls_score.argmax(1, keepdim=True))
        return dict(acc=hit.float().mean() * 100)

    def forward(self,
                cls_score: Tensor,
                labels: Tensor,
                weight: Optional[Tensor] = None,
                avg_factor: Optional[float] = None,
                reduction_override: Optional[str] = None,
                **kwargs) -> Tensor:
        """Loss of ``N`` RoIs.

        Args:
            cls_score (Tensor): ``(N, C + 1)`` logits.
            labels (Tensor): ``(N,)`` labels in ``[0, C]``.
            weight, avg_factor, reduction_override: accepted for mmdet's
                heads and ignored (the reference normalises by ``N``).

        Returns:
            Tensor: scalar, ``loss_weight * hierarchy_bce_loss(...)``.
        """
        if self.uses_hierarchy and self._pos is None and \
                self._ignore is None:
            self._load()
        if self.uses_hierarchy:
            size = (self._pos
                    if self._pos is not None else self._ignore).shape[0]
            if size != cls_score.shape[1]:
                raise ValueError(
                    f'HierarchyBCELoss: the label space has {size - 1} '
                    f'classes but cls_score has {cls_score.shape[1]} '
                    'columns (num_classes + 1 expected)')
        loss = hierarchy_bce_loss(
            cls_score, labels, self._pos if self.uses_hierarchy else None,
            self._ignore if self.uses_hierarchy else None)
        return self.loss_weight * loss
