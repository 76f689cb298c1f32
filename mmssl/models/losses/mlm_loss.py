# Copyright (c) mmssl contributors. All rights reserved.
"""The masked-language-model loss of BERT / ALBERT.

Over the P prediction slots of each of B sequences (``max_predictions``,
padded with weight 0)::

    L_MLM = sum_{b,p} w_{b,p} * (-log softmax(logits_{b,p})[y_{b,p}])
            / (sum_{b,p} w_{b,p} + 1e-5)

as ``get_masked_lm_output`` of google-research/albert ``run_pretraining.py``:
a weighted mean over the real slots, where padding slots (w = 0) add nothing.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from mmssl.registry import MODELS
from mmssl.utils.validation import check_float

__all__ = ['masked_lm_loss', 'MaskedLMLoss']

#: added to the weight sum, as the reference
MLM_EPS = 1e-5


def masked_lm_loss(logits: torch.Tensor, labels: torch.Tensor,
                   weights: torch.Tensor) -> torch.Tensor:
    """Weighted mean cross-entropy of the masked positions.

    Args:
        logits (Tensor): (B, P, V) scores of the P prediction slots.
        labels (Tensor): (B, P) original token ids (any valid id, e.g. 0, on
            padding slots).
        weights (Tensor): (B, P) 1 for real slots, 0 for padding.

    Returns:
        Tensor: scalar, float32 for half inputs.
    """
    if logits.dim() != 3 or labels.shape != logits.shape[:2]:
        raise ValueError(f'masked_lm_loss: logits {tuple(logits.shape)} must '
                         f'be (B, P, V) and labels {tuple(labels.shape)} '
                         '(B, P)')
    if weights.shape != labels.shape:
        raise ValueError(f'masked_lm_loss: weights {tuple(weights.shape)} '
                         f'must have the shape of labels '
                         f'{tuple(labels.shape)}')
    nll = F.cross_entropy(
        logits.float().flatten(0, 1),
        labels.flatten().long(),
        reduction='none')  # (B * P, )
    w = weights.flatten().float()
    return (nll * w).sum() / (w.sum() + MLM_EPS)


@MODELS.register_module()
class MaskedLMLoss(nn.Module):
    """Module wrapper of :func:`masked_lm_loss`.

    Args:
        loss_weight (float): Multiplier. Defaults to 1.
    """

    def __init__(self, loss_weight: float = 1.) -> None:
        super().__init__()
        self.loss_weight = check_float(
            loss_weight, 'loss_weight', type(self).__name__, low=0)

    def forward(self, logits: torch.Tensor, labels: torch.Tensor,
                weights: torch.Tensor) -> torch.Tensor:
        """Loss of (B, P, V) ``logits`` against (B, P) ``labels`` with (B, P)
        ``weights``."""
        return self.loss_weight * masked_lm_loss(logits, labels, weights)
