# Copyright (c) mmssl contributors. All rights reserved.
"""Batch norm with per-group training statistics (single-process
shuffle-BN)."""
import torch
import torch.nn as nn
import torch.nn.functional as F

from mmssl.registry import MODELS
from mmssl.utils.validation import check_int


@MODELS.register_module()
class SplitBatchNorm(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics come from ``num_splits`` groups.

    In training, a batch of n images is normalised as ``num_splits`` groups
    of n / num_splits images, each with its own mean and variance, as n
    images spread over ``num_splits`` processes with plain (not synchronised)
    BN would be; group ``j`` holds images ``j, j + s, j + 2s, ...``. The
    running statistics are updated with the average over the groups. In
    eval mode, or when ``num_splits`` does not divide the batch into groups
    of at least two images, it is ``nn.BatchNorm2d``; its parameters and
    buffers have BN's names and shapes, so checkpoints are those of a BN
    network. It takes (N, C), (N, C, L) and (N, C, H, W) inputs.

    This is how MoCo's single-GPU CIFAR-10 demo emulates shuffle-BN (its
    ``SplitBatchNorm``): with the in-batch permutation that
    :func:`mmpretrain.models.utils.batch_shuffle_ddp` makes in one process,
    the key of an image is normalised with a different group of images than
    its query, so the BN statistics of a group cannot tell the positive key
    from the negatives.

    Args:
        num_features (int): Channels C.
        num_splits (int): Groups per batch. Defaults to 8.
        **kwargs: Other ``nn.BatchNorm2d`` arguments (eps, momentum, ...).
    """

    def __init__(self,
                 num_features: int,
                 num_splits: int = 8,
                 **kwargs) -> None:
        check_int(num_splits, 'num_splits', type(self).__name__)
        super().__init__(num_features, **kwargs)
        self.num_splits = num_splits

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() not in (2, 3, 4, 5):
            raise ValueError(f'expected a 2D to 5D input, got {x.dim()}D')

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.num_splits
        n = x.shape[0]
        if not self.training or s == 1 or n % s or n == s:
            return super().forward(x)
        c = x.shape[1]
        momentum = 0.0 if self.momentum is None else self.momentum
        mean = var = None
        if self.track_running_stats:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:  # cumulative average
                momentum = 1.0 / float(self.num_batches_tracked)
            mean = self.running_mean.repeat(s)
            var = self.running_var.repeat(s)
        weight = None if self.weight is None else self.weight.repeat(s)
        bias = None if self.bias is None else self.bias.repeat(s)
        out = F.batch_norm(
            x.reshape(n // s, c * s, *x.shape[2:]), mean, var, weight, bias,
            True, momentum, self.eps)
        if self.track_running_stats:
            with torch.no_grad():
                self.running_mean.copy_(mean.view(s, c).mean(0))
                self.running_var.copy_(var.view(s, c).mean(0))
        return out.view_as(x)
