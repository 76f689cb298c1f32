# Copyright (c) mmssl contributors. All rights reserved.
"""The losses of DenseCL (Wang et al., "Dense Contrastive Learning for
Self-Supervised Visual Pre-Training", CVPR 2021).

With temperature t, a queue Q of K unit vectors (one column each) and cross
entropy over ``[positive, negatives]``::

    L_q = -1/N       sum_n     log( exp(q_n . k_n / t)
                                    / (exp(q_n . k_n / t)
                                       + sum_j exp(q_n . Q_j / t)) )
    L_r = -1/(N S)   sum_n,s   the same with r_{n,s}, t+_{n,s} and Q2

``L_q`` is MoCo's global InfoNCE on the pooled projections; ``L_r`` the dense
one on the S cells of the projected feature maps, whose positive key cell
``t+_{n,s}`` is the key cell whose *backbone* feature is most cosine-similar
to that of query cell s (:func:`dense_correspondence`). DenseCL trains on
``(1 - lambda) L_q + lambda L_r``.
"""
from typing import Dict

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmssl.registry import MODELS
from mmssl.utils.validation import check_choice, check_float

REDUCTIONS = ('mean', 'sum', 'none')


def _flatten_grid(x: torch.Tensor, name: str) -> torch.Tensor:
    """(N, C, H, W) or (N, C, S) -> (N, C, S)."""
    if x.dim() == 4:
        return x.flatten(2)
    if x.dim() != 3:
        raise ValueError(f'{name} must be (N, C, S) or (N, C, H, W), got '
                         f'{tuple(x.shape)}')
    return x


@torch.no_grad()
def dense_correspondence(q_feat: torch.Tensor,
                         k_feat: torch.Tensor) -> torch.Tensor:
    """Match every query cell to its most similar key cell.

    ``match[n, s] = argmax_t cos(q_feat[n, :, s], k_feat[n, :, t])``; no
    gradient flows through it (the result is an index).

    Args:
        q_feat (Tensor): (N, C, S) or (N, C, H, W) query-view feature map,
            e.g. the backbone's last stage. Normalised here.
        k_feat (Tensor): (N, C, T) or (N, C, H', W') key-view feature map
            of the same images.

    Returns:
        Tensor: (N, S) long, the key cell in ``[0, T)`` matched to each
        query cell (row-major cell order).
    """
    q_feat = _flatten_grid(q_feat, 'q_feat')
    k_feat = _flatten_grid(k_feat, 'k_feat')
    if q_feat.shape[:2] != k_feat.shape[:2]:
        raise ValueError(f'q_feat {tuple(q_feat.shape)} and k_feat '
                         f'{tuple(k_feat.shape)} must share (N, C)')
    sim = torch.bmm(
        F.normalize(q_feat.detach(), dim=1).transpose(1, 2),
        F.normalize(k_feat.detach(), dim=1))  # (N, S, T)
    return sim.argmax(dim=2)


def queue_info_nce_loss(q: torch.Tensor,
                        k: torch.Tensor,
                        queue: torch.Tensor,
                        temperature: float = 0.2,
                        reduction: str = 'mean') -> torch.Tensor:
    """InfoNCE with one positive key per query and a queue of negatives.

    ``-log softmax([q.k, q.queue] / t)[0]`` per query (MoCo's loss, ``L_q``
    above). Inputs are used as given: pass unit vectors for cosine logits.

    Args:
        q (Tensor): (M, D) queries.
        k (Tensor): (M, D) positive keys, row i for query i (no gradient is
            stopped here; DenseCL's keys come without one).
        queue (Tensor): (D, K) negatives, one per column.
        temperature (float): t > 0. Defaults to 0.2.
        reduction (str): ``'mean'`` over the M queries, ``'sum'`` or
            ``'none'`` for the (M, ) per-query losses. Defaults to
            ``'mean'``.

    Returns:
        Tensor: scalar, or (M, ) for ``'none'``.
    """
    check_choice(reduction, 'reduction', choices=REDUCTIONS)
    if not temperature > 0:
        raise ValueError(f'temperature must be > 0, got {temperature}')
    if q.dim() != 2 or q.shape != k.shape:
        raise ValueError(f'q {tuple(q.shape)} and k {tuple(k.shape)} must '
                         'both be (M, D)')
    if queue.dim() != 2 or queue.shape[0] != q.shape[1]:
        raise ValueError(f'queue must be (D, K) with D = {q.shape[1]}, got '
                         f'{tuple(queue.shape)}')
    l_pos = (q * k).sum(dim=1, keepdim=True)  # (M, 1)
    l_neg = q @ queue.to(q.dtype)  # (M, K)
    logits = torch.cat([l_pos, l_neg], dim=1) / temperature
    labels = logits.new_zeros(logits.shape[0], dtype=torch.long)
    return F.cross_entropy(logits.float(), labels, reduction=reduction)


def dense_contrastive_loss(q_grid: torch.Tensor,
                           k_grid: torch.Tensor,
                           match: torch.Tensor,
                           queue: torch.Tensor,
                           temperature: float = 0.2,
                           reduction: str = 'mean') -> torch.Tensor:
    """DenseCL's dense InfoNCE ``L_r``.

    Query cell s of image n has the positive ``k_grid[n, :, match[n, s]]``
    and the negatives ``queue``.

    Args:
        q_grid (Tensor): (N, D, S) or (N, D, H, W) dense query vectors.
        k_grid (Tensor): (N, D, T) or (N, D, H', W') dense key vectors.
        match (Tensor): (N, S) long key cell of each query cell, e.g. from
            :func:`dense_correspondence` on the backbone features.
        queue (Tensor): (D, K) negatives (pooled dense keys of past images).
        temperature (float): t > 0. Defaults to 0.2.
        reduction (str): ``'mean'`` over the N * S cells, ``'sum'`` or
            ``'none'`` for the (N * S, ) losses, image-major. Defaults to
            ``'mean'``.

    Returns:
        Tensor: scalar, or (N * S, ) for ``'none'``.
    """
    q_grid = _flatten_grid(q_grid, 'q_grid')
    k_grid = _flatten_grid(k_grid, 'k_grid')
    n, d, s = q_grid.shape
    if k_grid.shape[:2] != (n, d):
        raise ValueError(f'q_grid {tuple(q_grid.shape)} and k_grid '
                         f'{tuple(k_grid.shape)} must share (N, D)')
    if match.shape != (n, s):
        raise ValueError(f'match must be (N, S) = {(n, s)}, got '
                         f'{tuple(match.shape)}')
    positives = torch.gather(k_grid, 2,
                             match.unsqueeze(1).expand(-1, d, -1))  # N, D, S
    return queue_info_nce_loss(
        q_grid.transpose(1, 2).reshape(n * s, d),
        positives.transpose(1, 2).reshape(n * s, d), queue, temperature,
        reduction)


@MODELS.register_module()
class DenseCLLoss(nn.Module):
    """The two DenseCL losses, :func:`queue_info_nce_loss` on the global
    projections and :func:`dense_contrastive_loss` on the dense ones.

    The weighting by ``lambda`` is left to the model (``loss_lambda``, which
    mmpretrain's ``DenseCLHook`` warms up).

    Args:
        temperature (float): t > 0 of both losses. Defaults to 0.2.
    """

    def __init__(self, temperature: float = 0.2) -> None:
        super().__init__()
        key, name = 'model.head.temperature', type(self).__name__
        check_float(temperature, key, name, low=0, inclusive=False)
        self.temperature = temperature

    def forward(self, q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor,
                q_grid: torch.Tensor, k_grid: torch.Tensor,
                match: torch.Tensor,
                queue2: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Unweighted losses.

        Args:
            q (Tensor): (N, D) unit global queries.
            k (Tensor): (N, D) unit global keys.
            queue (Tensor): (D, K) global negatives.
            q_grid (Tensor): (N, D, S) unit dense queries.
            k_grid (Tensor): (N, D, T) unit dense keys.
            match (Tensor): (N, S) key cell of each query cell.
            queue2 (Tensor): (D, K) dense negatives.

        Returns:
            dict: ``loss_single`` (L_q) and ``loss_dense`` (L_r), scalars.
        """
        return dict(
            loss_single=queue_info_nce_loss(q, k, queue, self.temperature),
            loss_dense=dense_contrastive_loss(q_grid, k_grid, match, queue2,
                                              self.temperature))
