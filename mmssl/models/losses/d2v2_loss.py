# Copyright (c) mmssl contributors. All rights reserved.
"""Regression loss of data2vec 2.0 (fairseq
``Data2VecMultiModel.d2v_loss``)."""
import math
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmssl.registry import MODELS
from mmssl.utils.validation import check_choice, check_float

REDUCTIONS = ('mean', 'sum', 'none')


def d2v2_regression_loss(pred: torch.Tensor,
                         target: torch.Tensor,
                         beta: float = 0.,
                         scale: Optional[float] = None,
                         reduction: str = 'mean') -> torch.Tensor:
    """Scaled L2 (or Smooth-L1) regression, summed over channels.

    ``loss_t = s * sum_d l(pred_td - target_td)`` with ``l(e) = e^2`` for
    ``beta = 0`` and Smooth-L1 with that beta otherwise, and
    ``s = scale`` or ``1 / sqrt(C)`` when ``scale`` is None.

    Args:
        pred (Tensor): (T, C) predictions (any leading shape, last dim C).
        target (Tensor): Same shape as ``pred``; no gradient needed.
        beta (float): 0 for L2, > 0 for Smooth-L1. Defaults to 0.
        scale (float, optional): Loss scale; 1/sqrt(C) if None.
        reduction (str): ``'mean'`` = sum over everything divided by the
            number of rows T (the reference's division by the number of
            masked tokens), ``'sum'``, or ``'none'`` for the (T, ) per-row
            losses. Defaults to ``'mean'``.

    Returns:
        Tensor: scalar, or (T, ) for ``'none'``; float32.
    """
    check_choice(reduction, 'reduction', choices=REDUCTIONS)
    if pred.shape != target.shape:
        raise ValueError(f'pred {tuple(pred.shape)} and target '
                         f'{tuple(target.shape)} differ in shape')
    C = pred.shape[-1]
    pred = pred.reshape(-1, C).float()
    target = target.reshape(-1, C).float()
    if beta == 0:
        err = F.mse_loss(pred, target, reduction='none')
    else:
        err = F.smooth_l1_loss(pred, target, reduction='none', beta=beta)
    s = 1 / math.sqrt(C) if scale is None else scale
    per_row = err.sum(dim=-1) * s
    if reduction == 'none':
        return per_row
    total = per_row.sum()
    if reduction == 'sum':
        return total
    return total / max(per_row.shape[0], 1)


@MODELS.register_module()
class D2V2RegressionLoss(nn.Module):
    """Module wrapper of :func:`d2v2_regression_loss`.

    Args:
        beta (float): 0 for L2 (the image / text default), > 0 for
            Smooth-L1. Defaults to 0.
        scale (float, optional): Loss scale; 1/sqrt(C) if None (images),
            1 for text. Defaults to None.
        loss_weight (float): Multiplier. Defaults to 1.
    """

    def __init__(self,
                 beta: float = 0.,
                 scale: Optional[float] = None,
                 loss_weight: float = 1.) -> None:
        super().__init__()
        check_float(beta, 'beta', type(self).__name__, low=0)
        self.beta = float(beta)
        self.scale = scale
        self.loss_weight = loss_weight

    def forward(self,
                pred: torch.Tensor,
                target: torch.Tensor,
                reduction: str = 'mean') -> torch.Tensor:
        """(T, C) predictions and targets -> loss (see the function)."""
        return self.loss_weight * d2v2_regression_loss(pred, target, self.beta,
                                                       self.scale, reduction)
