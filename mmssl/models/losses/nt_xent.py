# Copyright (c) mmssl contributors. All rights reserved.
"""NT-Xent, the contrastive loss of SimCLR (Chen et al., ICML 2020).

For the 2N views of N images and a positive pair (i, j)::

    l(i, j) = -log( exp(sim(z_i, z_j) / t)
                    / sum_{k != i} exp(sim(z_i, z_k) / t) )
    L = 1 / (2N) * sum_i l(i, pos(i))

with cosine similarity ``sim``: every anchor sees 1 positive and 2N - 2
negatives. This is mmpretrain's convention (mean over all 2N anchors); the
official TF code returns ``2 L``.
"""
from typing import Callable, List, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.dist import get_rank

from mmssl.registry import MODELS
from mmssl.utils.validation import check_choice, check_float
from ..utils.dist import all_gather_with_grad

REDUCTIONS = ('mean', 'sum', 'none')


def nt_xent_loss(z1: torch.Tensor,
                 z2: torch.Tensor,
                 temperature: float = 0.1,
                 gather: Union[bool, Callable[[torch.Tensor],
                                              List[torch.Tensor]]] = False,
                 reduction: str = 'mean') -> torch.Tensor:
    """NT-Xent (InfoNCE with cosine similarity and 2N - 2 negatives).

    Args:
        z1 (Tensor): (n, D) projections of the first view of n images.
        z2 (Tensor): (n, D) projections of the second view, row i of ``z2``
            is the positive of row i of ``z1``. Both are l2-normalised here.
        temperature (float): Softmax temperature t > 0. Defaults to 0.1.
        gather (bool | callable): In distributed runs, gather the views of
            all ranks (with :func:`all_gather_with_grad`) so that every
            local anchor sees the 2N - 2 negatives of the global batch of
            N images. Each rank then returns the loss of its own 2n
            anchors; the mean over ranks (what DDP's gradient averaging
            optimises) is the global loss, with the exact gradient. Without
            a process group this is the same as ``False``. A callable
            ``x -> list of W tensors`` replaces that gather (to compare
            gathers). Defaults to False.
        reduction (str): ``'mean'`` over the 2n local anchors, ``'sum'``,
            or ``'none'`` for the (2n, ) per-anchor losses, ordered
            ``[view 1 rows, view 2 rows]``. Defaults to ``'mean'``.

    Returns:
        Tensor: scalar, or (2n, ) for ``'none'``; float32 for half
        inputs.
    """
    check_choice(reduction, 'reduction', choices=REDUCTIONS)
    if not temperature > 0:
        raise ValueError(f'temperature must be > 0, got {temperature}')
    if z1.dim() != 2 or z1.shape != z2.shape:
        raise ValueError(f'z1 {tuple(z1.shape)} and z2 {tuple(z2.shape)} '
                         'must both be (n, D)')
    n = z1.shape[0]
    anchors = torch.cat([z1, z2])
    if anchors.dtype in (torch.float16, torch.bfloat16):
        anchors = anchors.float()
    anchors = F.normalize(anchors, dim=1)  # (2n, D)
    offset = 0
    keys = anchors
    if gather:
        gather_fn = gather if callable(gather) else all_gather_with_grad
        gathered = gather_fn(anchors)
        if len(gathered) > 1:
            offset = get_rank() * 2 * n
            keys = torch.cat(gathered)  # (2N, D), rank-major
    logits = anchors @ keys.t() / temperature  # (2n, 2N)
    rows = torch.arange(2 * n, device=logits.device)
    self_idx = offset + rows
    pos_idx = offset + (rows + n) % (2 * n)
    logits = logits.masked_fill(
        F.one_hot(self_idx, keys.shape[0]).bool(), float('-inf'))
    loss = F.cross_entropy(logits, pos_idx, reduction='none')
    if reduction == 'none':
        return loss
    return loss.sum() if reduction == 'sum' else loss.mean()


@MODELS.register_module()
class NTXentLoss(nn.Module):
    """Module wrapper of :func:`nt_xent_loss`.

    Args:
        temperature (float): Softmax temperature. Defaults to 0.1.
        gather (bool): Negatives from all ranks. Defaults to True.
        reduction (str): ``'mean'``, ``'sum'`` or ``'none'``.
            Defaults to ``'mean'``.
        loss_weight (float): Multiplier. Defaults to 1.
    """

    def __init__(self,
                 temperature: float = 0.1,
                 gather: bool = True,
                 reduction: str = 'mean',
                 loss_weight: float = 1.) -> None:
        super().__init__()
        name = type(self).__name__
        check_float(temperature, 'temperature', name, low=0, inclusive=False)
        check_choice(reduction, 'reduction', name, REDUCTIONS)
        self.temperature = temperature
        self.gather = gather
        self.reduction = reduction
        self.loss_weight = loss_weight

    def forward(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        """Loss of (n, D) view projections ``z1`` and ``z2``."""
        return self.loss_weight * nt_xent_loss(z1, z2, self.temperature,
                                               self.gather, self.reduction)
