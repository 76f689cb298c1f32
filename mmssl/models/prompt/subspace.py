# Copyright (c) mmssl contributors. All rights reserved.
"""SubPT's low-rank subspace of the early prompt trajectory."""
import torch

__all__ = ['compute_subspace', 'project_onto_subspace']


def compute_subspace(snapshots: torch.Tensor, rank: int) -> torch.Tensor:
    """Top-``rank`` principal directions of a prompt trajectory.

    The rows are centred (the mean snapshot subtracted) and the top right
    singular vectors kept, i.e. the PCA components of the trajectory (the
    reference uses sklearn's PCA with a full SVD). The span of the centred
    snapshots holds every epoch-to-epoch displacement.

    Args:
        snapshots (torch.Tensor): ``(T, D)`` flattened prompts after epochs
            ``1..T``.
        rank (int): r, with ``1 <= r < T`` (centring removes one dimension).

    Returns:
        torch.Tensor: ``(r, D)`` float32 with orthonormal rows ``U``.
    """
    if snapshots.dim() != 2:
        raise ValueError(f'snapshots must be (T, D), got '
                         f'{tuple(snapshots.shape)}')
    t = snapshots.shape[0]
    if not 1 <= rank < t:
        raise ValueError(f'rank must be in [1, {t - 1}] for {t} snapshots '
                         f'(centring removes one dimension), got {rank}')
    w = snapshots.double()
    w = w - w.mean(0, keepdim=True)
    _, s, vh = torch.linalg.svd(w, full_matrices=False)
    if s[rank - 1] <= s[0] * 1e-10:
        raise ValueError(f'the trajectory has numerical rank below {rank} '
                         f'(singular values {s.tolist()})')
    return vh[:rank].float().contiguous()


def project_onto_subspace(grad: torch.Tensor,
                          basis: torch.Tensor) -> torch.Tensor:
    """``U^T (U g)``: the part of a gradient inside the subspace.

    Args:
        grad (torch.Tensor): a gradient of any shape with D elements.
        basis (torch.Tensor): ``(r, D)`` orthonormal rows ``U``.

    Returns:
        torch.Tensor: the projected gradient, same shape and dtype as
        ``grad``.
    """
    g = grad.reshape(-1).to(basis.dtype)
    return (basis.t() @ (basis @ g)).reshape(grad.shape).to(grad.dtype)
