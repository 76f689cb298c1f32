# Copyright (c) mmssl contributors. All rights reserved.
"""Weighted k-nearest-neighbour classification on frozen features.

The protocol of InstDisc (Wu et al., 2018) as used by DINO (Caron et al.,
2021): features are L2-normalised, the ``k`` training features with the
highest cosine similarity to a test feature vote for their labels, and each
vote weighs ``exp(sim / T)``. The class with the largest summed weight wins.
"""
import torch
import torch.nn.functional as F
from torch import Tensor

from mmssl.utils.validation import check_float, check_int

__all__ = ['knn_classify', 'knn_accuracy']


def _check_inputs(train_feats: Tensor, train_labels: Tensor,
                  test_feats: Tensor, num_classes: int, k: int,
                  temperature: float) -> None:
    if train_feats.dim() != 2 or test_feats.dim() != 2:
        raise ValueError('features must be 2-D (N, C), got '
                         f'{tuple(train_feats.shape)} and '
                         f'{tuple(test_feats.shape)}')
    if train_feats.shape[1] != test_feats.shape[1]:
        raise ValueError('train and test features differ in width: '
                         f'{train_feats.shape[1]} vs {test_feats.shape[1]}')
    if train_labels.shape != (train_feats.shape[0], ):
        raise ValueError(f'train_labels must have shape '
                         f'({train_feats.shape[0]},), got '
                         f'{tuple(train_labels.shape)}')
    if train_feats.shape[0] == 0:
        raise ValueError('kNN needs at least one training feature')
    check_int(num_classes, 'num_classes', 'knn_classify')
    check_int(k, 'k', 'knn_classify')
    check_float(
        temperature, 'temperature', 'knn_classify', low=0, inclusive=False)


def knn_classify(train_feats: Tensor,
                 train_labels: Tensor,
                 test_feats: Tensor,
                 num_classes: int,
                 k: int = 20,
                 temperature: float = 0.07,
                 chunk_size: int = 1024) -> Tensor:
    """Predict labels by a temperature-weighted vote of cosine neighbours.

    Args:
        train_feats (Tensor): (N, C) features of the labelled set.
        train_labels (Tensor): (N, ) integer labels in ``[0, num_classes)``.
        test_feats (Tensor): (M, C) features to classify.
        num_classes (int): Number of classes.
        k (int): Number of neighbours; clipped to N. Defaults to 20.
        temperature (float): Vote weight is ``exp(cos_sim / temperature)``.
            Defaults to 0.07.
        chunk_size (int): Test features handled at once, to bound the
            (chunk, N) similarity matrix. Defaults to 1024.

    Returns:
        Tensor: (M, ) int64 predicted labels. Ties go to the lower class
        index.
    """
    _check_inputs(train_feats, train_labels, test_feats, num_classes, k,
                  temperature)
    k = min(k, train_feats.shape[0])
    train_n = F.normalize(train_feats.float(), dim=1)
    test_n = F.normalize(test_feats.float(), dim=1)
    labels = train_labels.long().to(train_n.device)
    preds = []
    for start in range(0, test_n.shape[0], chunk_size):
        sim = test_n[start:start + chunk_size] @ train_n.t()  # (m, N)
        top_sim, top_idx = sim.topk(k, dim=1)  # (m, k)
        weights = (top_sim / temperature).exp()
        votes = torch.zeros(
            sim.shape[0],
            num_classes,
            dtype=weights.dtype,
            device=weights.device)
        votes.scatter_add_(1, labels[top_idx], weights)  # (m, num_classes)
        preds.append(votes.argmax(dim=1))
    if not preds:
        return torch.zeros(0, dtype=torch.long, device=train_n.device)
    return torch.cat(preds)


def knn_accuracy(train_feats: Tensor,
                 train_labels: Tensor,
                 test_feats: Tensor,
                 test_labels: Tensor,
                 num_classes: int,
                 k: int = 20,
                 temperature: float = 0.07) -> float:
    """Top-1 accuracy of :func:`knn_classify`, in percent.

    Args:
        train_feats (Tensor): (N, C) features of the labelled set.
        train_labels (Tensor): (N, ) labels of ``train_feats``.
        test_feats (Tensor): (M, C) features to classify.
        test_labels (Tensor): (M, ) ground-truth labels of ``test_feats``.
        num_classes (int): Number of classes.
        k (int): Number of neighbours. Defaults to 20.
        temperature (float): Vote temperature. Defaults to 0.07.

    Returns:
        float: Percentage of test features whose prediction is correct.
    """
    if test_labels.shape != (test_feats.shape[0], ):
        raise ValueError(f'test_labels must have shape '
                         f'({test_feats.shape[0]},), got '
                         f'{tuple(test_labels.shape)}')
    if test_feats.shape[0] == 0:
        raise ValueError('kNN accuracy needs at least one test feature')
    preds = knn_classify(train_feats, train_labels, test_feats, num_classes, k,
                         temperature)
    correct = (preds == test_labels.long().to(preds.device)).float()
    return correct.mean().item() * 100.0
