# Copyright (c) mmssl contributors. All rights reserved.
"""Tiny DenseCL configs and a DenseCL step function for tests."""
import copy
from typing import Dict, Optional

import torch
import torch.distributed as torch_dist


def tiny_densecl_cfg(depth: int = 18,
                     base_channels: int = 8,
                     feat_dim: int = 16,
                     queue_len: int = 16,
                     temperature: float = 0.2,
                     loss_lambda: float = 0.5,
                     norm_cfg: Optional[dict] = None,
                     scope: str = 'mmssl') -> dict:
    """A tiny DenseCL config dict: a narrow ResNet (``depth``,
    ``base_channels`` wide; 64 px inputs give a 2 x 2 grid), a
    ``DenseCLNeck`` to ``feat_dim`` and two queues of ``queue_len``.

    ``norm_cfg`` defaults to BN (GN makes the model independent of how the
    batch is split across processes). ``scope='mmpretrain'`` builds
    mmpretrain's ``DenseCL`` with its ``ContrastiveHead``.
    """
    if scope not in ('mmssl', 'mmpretrain'):
        raise ValueError(f'scope must be mmssl or mmpretrain, got {scope!r}')
    width = base_channels * 8 * (4 if depth >= 50 else 1)
    head = dict(type='mmssl.DenseCLLoss', temperature=temperature)
    if scope == 'mmpretrain':
        head = dict(
            type='mmpretrain.ContrastiveHead',
            loss=dict(type='mmpretrain.CrossEntropyLoss'),
            temperature=temperature)
    return copy.deepcopy(
        dict(
            type=f'{scope}.DenseCL',
            queue_len=queue_len,
            feat_dim=feat_dim,
            momentum=0.001,
            loss_lambda=loss_lambda,
            data_preprocessor=dict(
                type='mmpretrain.SelfSupDataPreprocessor',
                mean=[123.675, 116.28, 103.53],
                std=[58.395, 57.12, 57.375],
                to_rgb=True),
            backbone=dict(
                type='mmpretrain.ResNet',
                depth=depth,
                stem_channels=base_channels,
                base_channels=base_channels,
                norm_cfg=norm_cfg or dict(type='BN'),
                zero_init_residual=False),
            neck=dict(
                type='mmpretrain.DenseCLNeck',
                in_channels=width,
                hid_channels=width,
                out_channels=feat_dim,
                num_grid=None),
            head=head))


def _all_reduce_mean_grads(model: torch.nn.Module) -> None:
    """What DDP does to the gradients (no-op in one process)."""
    if not torch_dist.is_initialized():
        return
    for p in model.parameters():
        if p.grad is not None:
            torch_dist.all_reduce(p.grad)
            p.grad /= torch_dist.get_world_size()


def densecl_model_step(x1: torch.Tensor,
                       x2: torch.Tensor) -> Dict[str, torch.Tensor]:
    """Two training steps of a seeded tiny GN ``mmssl.DenseCL`` (K = 16) on
    (n, 3, 64, 64) views, with SGD and DDP-style gradient averaging in
    between, so that the second step sees a moved key encoder and a queue
    holding the first step's keys.

    Returns:
        dict: per step ``s`` (1, 2) the loss terms ``s.loss_single``,
        ``s.loss_dense`` and the parameter gradients ``s.grad.<name>``;
        the queues ``queue``, ``queue2`` and pointers after step 2, and the
        key encoder's parameters ``encoder_k.<name>``.
    """
    from mmssl.registry import MODELS
    torch.manual_seed(0)
    model = MODELS.build(
        tiny_densecl_cfg(norm_cfg=dict(type='GN', num_groups=4)))
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    out = {}
    for step in (1, 2):
        opt.zero_grad()
        losses = model.loss([x1, x2], [])
        sum(losses.values()).backward()
        _all_reduce_mean_grads(model)
        out.update({f'{step}.{k}': v.detach() for k, v in losses.items()})
        out.update({
            f'{step}.grad.{n}': p.grad.clone()
            for n, p in model.named_parameters() if p.grad is not None
        })
        opt.step()
    out.update(
        queue=model.queue.clone(),
        queue2=model.queue2.clone(),
        queue_ptr=model.queue_ptr.double(),
        queue2_ptr=model.queue2_ptr.double())
    out.update({
        f'encoder_k.{n}': p.detach().clone()
        for n, p in model.encoder_k.named_parameters()
    })
    return out
