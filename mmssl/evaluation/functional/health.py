# Copyright (c) mmssl contributors. All rights reserved.
"""Representation health: signs of collapse in a set of features.

Two numbers that need no labels:

* the per-dimension std of L2-normalised features (SimSiam, Chen & He 2021):
  near 0 when every input maps to the same direction (complete collapse),
  about ``1 / sqrt(C)`` when the features spread uniformly over the sphere;
* the effective rank (Roy & Vetterli, 2007) of the centred features, the
  exponential of the Shannon entropy of the normalised singular values
  (RankMe, Garrido et al. 2023): 1 when the features vary along a single
  direction (dimensional collapse), C when they vary equally along C.
"""
from typing import Dict

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ['effective_rank', 'representation_health']


def effective_rank(x: Tensor, center: bool = False) -> float:
    """Effective rank of a matrix (Roy & Vetterli, 2007).

    ``erank = exp(-sum_i p_i log p_i)`` with ``p_i = s_i / sum_j s_j`` over
    the singular values ``s`` of ``x``.

    Args:
        x (Tensor): (N, C) matrix, e.g. N features of width C.
        center (bool): Subtract the column mean first. Defaults to False.

    Returns:
        float: A value in ``[1, min(N, C)]``; 0 for an all-zero matrix.
    """
    if x.dim() != 2:
        raise ValueError(f'x must be 2-D (N, C), got {tuple(x.shape)}')
    x = x.detach().double()
    if center:
        x = x - x.mean(dim=0)
    s = torch.linalg.svdvals(x)
    total = s.sum()
    if total <= 0:
        return 0.0
    p = s / total
    p = p[p > 0]
    return torch.exp(-(p * p.log()).sum()).item()


def representation_health(feats: Tensor) -> Dict[str, float]:
    """Collapse diagnostics of a set of features.

    Args:
        feats (Tensor): (N, C) features, N >= 2.

    Returns:
        dict[str, float]:

        - ``std_mean``: mean over dimensions of the std (over samples) of the
          L2-normalised features; reference ``1 / sqrt(C)`` for a uniform
          spread, 0 for complete collapse.
        - ``std_min``: the smallest of those per-dimension stds.
        - ``effective_rank``: effective rank of the centred features.
        - ``rank_ratio``: ``effective_rank / min(N - 1, C)``, the fraction of
          the largest rank N centred features of width C can have.
    """
    if feats.dim() != 2:
        raise ValueError(f'feats must be 2-D (N, C), got {tuple(feats.shape)}')
    num, channels = feats.shape
    if num < 2:
        raise ValueError('representation health needs at least 2 features')
    normed = F.normalize(feats.detach().double(), dim=1)
    std = normed.std(dim=0, unbiased=False)  # (C, )
    erank = effective_rank(feats, center=True)
    return dict(
        std_mean=std.mean().item(),
        std_min=std.min().item(),
        effective_rank=erank,
        rank_ratio=erank / min(num - 1, channels))
