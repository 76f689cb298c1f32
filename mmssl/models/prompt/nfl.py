# Copyright (c) mmssl contributors. All rights reserved.
"""The Novel Feature Learner (NFL) loss of SubPT."""
import torch
import torch.nn.functional as F

__all__ = ['nfl_loss']


def nfl_loss(features: torch.Tensor,
             targets: torch.Tensor,
             mode: str = 'cosine') -> torch.Tensor:
    """Pull learned-prompt text features toward zero-shot ones.

    Args:
        features (torch.Tensor): ``(N, E)`` text features of N class names
            made with the learned context.
        targets (torch.Tensor): ``(N, E)`` zero-shot (hand-written prompt)
            CLIP text features of the same names.
        mode (str): ``'cosine'``: ``mean_k (1 - cos(u_k, z_k))`` (default,
            the reference's ``CosineEmbeddingLoss`` with target 1);
            ``'mse'``: ``mean_k ||u_k - z_k||^2`` of the L2-normalised
            features (the reference's ``'l2'`` is ``nn.MSELoss``, i.e. this
            divided by E).

    Returns:
        torch.Tensor: scalar loss, >= 0, 0 when ``u_k = z_k``. The total
        loss of CoOp is ``L_ce + lambda * L_nfl``.
    """
    u = F.normalize(features, dim=-1)
    z = F.normalize(targets, dim=-1)
    if mode == 'cosine':
        return (1 - (u * z).sum(-1)).mean()
    if mode == 'mse':
        return (u - z).pow(2).sum(-1).mean()
    raise ValueError(f"NFL loss mode must be 'cosine' or 'mse', got {mode!r}")
