# Copyright (c) mmssl contributors. All rights reserved.
"""All-gather for in-batch negatives that carries the true gradient.

mmpretrain's ``GatherLayer`` (``mmpretrain/models/selfsup/simclr.py``) sends
back, in its backward pass, only this rank's slice of this rank's incoming
gradient. When every rank also computes the full ``2N x 2N`` loss (as
mmpretrain's SimCLR does), each rank's parameter gradient is exact, and DDP's
average over ``W`` ranks then divides it by ``W``: the gradient is
``1 / world_size`` of the single-process one. When each rank computes only its
own anchor rows (no repeated work), the slice drops the gradient that the
other ranks' anchors send to this rank's keys, which is wrong in direction
too.

:func:`all_gather_with_grad` sums the incoming gradients of all ranks before
taking the local slice, which is the gradient of the sum of all ranks' losses.
With each rank computing the mean over its local anchors (against the gathered
keys), DDP's average then gives exactly the single-process gradient of the
global mean loss.
"""
from typing import Any, List, Tuple

import torch
import torch.distributed as torch_dist
from mmengine.dist import get_rank, get_world_size


def _is_distributed() -> bool:
    return (torch_dist.is_available() and torch_dist.is_initialized()
            and torch_dist.get_world_size() > 1)


class _AllGatherSumGrad(torch.autograd.Function):
    """All-gather whose backward all-reduces (sums) the gradients."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        out = [torch.zeros_like(x) for _ in range(get_world_size())]
        torch_dist.all_gather(out, x.contiguous())
        return tuple(out)

    @staticmethod
    def backward(ctx: Any, *grads: torch.Tensor) -> torch.Tensor:
        grad = torch.stack(grads).contiguous()
        torch_dist.all_reduce(grad, op=torch_dist.ReduceOp.SUM)
        return grad[get_rank()]


def all_gather_with_grad(x: torch.Tensor) -> List[torch.Tensor]:
    """Gather ``x`` from every rank, differentiably.

    Args:
        x (Tensor): (n, ...) this rank's tensor; every rank must pass the
            same shape.

    Returns:
        list[Tensor]: ``world_size`` tensors (n, ...), rank order; ``[x]``
        when not running distributed. The gradient that reaches ``x`` is the
        sum over ranks of the gradients of their outputs' slice of this rank.
    """
    if not _is_distributed():
        return [x]
    return list(_AllGatherSumGrad.apply(x))


def concat_all_gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """:func:`all_gather_with_grad` concatenated along dim 0: (W * n, ...)."""
    out = all_gather_with_grad(x)
    return out[0] if len(out) == 1 else torch.cat(out, dim=0)


@torch.no_grad()
def concat_all_gather(x: torch.Tensor) -> torch.Tensor:
    """All-gather without gradient (e.g. for queues and metrics).

    Args:
        x (Tensor): (n, ...) this rank's tensor, same shape on every rank.

    Returns:
        Tensor: (W * n, ...) detached, rank order.
    """
    if not _is_distributed():
        return x.detach()
    out = [torch.zeros_like(x) for _ in range(get_world_size())]
    torch_dist.all_gather(out, x.contiguous())
    return torch.cat(out, dim=0)
