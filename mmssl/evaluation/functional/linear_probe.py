# Copyright (c) mmssl contributors. All rights reserved.
"""Linear probe: a logistic-regression head trained on frozen features.

The features are standardised with the training set's per-dimension mean and
std (the role of the affine-free BatchNorm in the MAE linear probe), then an
L2-regularised softmax regression is fitted by full-batch L-BFGS from zero.
The problem is convex and the solver deterministic and free of a learning
rate, so the result depends on the features only, not on their scale or on
a seed; first-order optimisers with few steps, by contrast, weigh noisy
dimensions as much as informative ones (Adam) or depend on the scale (SGD).
"""
from typing import Dict, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from mmssl.utils.validation import check_float, check_int

__all__ = ['standardize_features', 'topk_accuracy', 'linear_probe']


def standardize_features(train_feats: Tensor,
                         test_feats: Tensor,
                         eps: float = 1e-6) -> Tuple[Tensor, Tensor]:
    """Standardise both sets with the statistics of the training set.

    Args:
        train_feats (Tensor): (N, C) training features.
        test_feats (Tensor): (M, C) test features.
        eps (float): Lower bound of the std, so constant dimensions map to 0.
            Defaults to 1e-6.

    Returns:
        tuple[Tensor, Tensor]: (N, C) and (M, C) float32 features,
        ``(x - mean_train) / std_train``.
    """
    train_feats = train_feats.float()
    mean = train_feats.mean(dim=0)  # (C, )
    std = train_feats.std(dim=0, unbiased=False).clamp_min(eps)
    return (train_feats - mean) / std, (test_feats.float() - mean) / std


def topk_accuracy(logits: Tensor, labels: Tensor, k: int = 1) -> float:
    """Percentage of rows whose label is among the ``k`` highest scores.

    Args:
        logits (Tensor): (M, K) class scores.
        labels (Tensor): (M, ) integer labels.
        k (int): Number of top classes counted as a hit. Defaults to 1.

    Returns:
        float: Top-k accuracy in percent.
    """
    k = min(k, logits.shape[1])
    top = logits.topk(k, dim=1).indices  # (M, k)
    hit = (top == labels.long().view(-1, 1)).any(dim=1).float()
    return hit.mean().item() * 100.0


def linear_probe(train_feats: Tensor,
                 train_labels: Tensor,
                 test_feats: Tensor,
                 test_labels: Tensor,
                 num_classes: int,
                 standardize: bool = True,
                 max_iter: int = 100,
                 weight_decay: float = 1e-3,
                 chunk_size: int = 8192) -> Dict[str, float]:
    """Train a softmax-regression head on frozen features and test it.

    Minimises ``mean cross-entropy + weight_decay / 2 * ||W||^2`` over a
    (C, K) weight ``W`` and a bias, from zero, with full-batch L-BFGS and a
    strong-Wolfe line search. The gradient of each step is accumulated over
    chunks of ``chunk_size`` features, so memory stays bounded while the
    result does not depend on the chunking (up to float rounding).

    Args:
        train_feats (Tensor): (N, C) features of the training set.
        train_labels (Tensor): (N, ) integer labels in ``[0, num_classes)``.
        test_feats (Tensor): (M, C) features of the test set.
        test_labels (Tensor): (M, ) integer labels of the test set.
        num_classes (int): Number of classes K.
        standardize (bool): Standardise features with the training mean and
            std first. Defaults to True.
        max_iter (int): Maximum L-BFGS iterations. Defaults to 100.
        weight_decay (float): L2 penalty on ``W`` (not the bias), relative
            to the mean loss. Defaults to 1e-3.
        chunk_size (int): Features per forward/backward chunk. Defaults to
            8192.

    Returns:
        dict[str, float]: ``top1`` (and ``top5`` when K >= 5) test accuracy
        in percent, ``train_top1`` in percent and the final training
        cross-entropy ``train_loss`` (without the penalty).
    """
    if train_feats.dim() != 2 or test_feats.dim() != 2:
        raise ValueError('features must be 2-D (N, C)')
    if train_feats.shape[1] != test_feats.shape[1]:
        raise ValueError('train and test features differ in width: '
                         f'{train_feats.shape[1]} vs {test_feats.shape[1]}')
    if train_labels.shape != (train_feats.shape[0], ) or \
            test_labels.shape != (test_feats.shape[0], ):
        raise ValueError('labels must be 1-D and match the features')
    if train_feats.shape[0] == 0 or test_feats.shape[0] == 0:
        raise ValueError('linear probe needs non-empty train and test sets')
    check_int(num_classes, 'num_classes', 'linear_probe', minimum=2)
    check_int(max_iter, 'max_iter', 'linear_probe')
    check_int(chunk_size, 'chunk_size', 'linear_probe')
    check_float(weight_decay, 'weight_decay', 'linear_probe', low=0)

    device = train_feats.device
    if standardize:
        x_train, x_test = standardize_features(train_feats, test_feats)
    else:
        x_train, x_test = train_feats.float(), test_feats.float()
    x_test = x_test.to(device)
    y_train = train_labels.long().to(device)
    y_test = test_labels.long().to(device)

    num_train, channels = x_train.shape
    weight = torch.zeros(
        channels, num_classes, device=device, requires_grad=True)
    bias = torch.zeros(num_classes, device=device, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias],
                                  lr=1.0,
                                  max_iter=max_iter,
                                  history_size=10,
                                  tolerance_grad=1e-7,
                                  tolerance_change=1e-9,
                                  line_search_fn='strong_wolfe')

    def closure() -> Tensor:
        optimizer.zero_grad()
        total = 0.
        for start in range(0, num_train, chunk_size):
            xs = x_train[start:start + chunk_size]
            ys = y_train[start:start + chunk_size]
            loss = F.cross_entropy(xs @ weight + bias, ys, reduction='sum')
            (loss / num_train).backward()
            total += loss.item()
        penalty = 0.5 * weight_decay * weight.pow(2).sum()
        penalty.backward()
        return torch.tensor(total / num_train + penalty.item())

    with torch.enable_grad():
        optimizer.step(closure)

    with torch.no_grad():
        train_logits = x_train @ weight + bias
        test_logits = x_test @ weight + bias
        results = dict(
            top1=topk_accuracy(test_logits, y_test, 1),
            train_top1=topk_accuracy(train_logits, y_train, 1),
            train_loss=F.cross_entropy(train_logits, y_train).item())
        if num_classes >= 5:
            results['top5'] = topk_accuracy(test_logits, y_test, 5)
    return results
