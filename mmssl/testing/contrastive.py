# Copyright (c) mmssl contributors. All rights reserved.
"""Tiny SimCLR configs and contrastive step functions for tests."""
import copy
from typing import Dict, Optional

import torch
import torch.distributed as torch_dist

from mmssl.models.losses.nt_xent import nt_xent_loss


def tiny_simclr_cfg(depth: int = 18,
                    base_channels: int = 8,
                    out_channels: int = 16,
                    temperature: float = 0.5,
                    norm_cfg: Optional[dict] = None) -> dict:
    """A tiny ``mmssl.SimCLR`` config dict: a narrow ResNet (``depth``,
    ``base_channels`` wide), a 2-layer ``NonLinearNeck`` and NT-Xent.
    ``norm_cfg`` defaults to BN (GN makes the model independent of how the
    batch is split across processes)."""
    norm_cfg = norm_cfg or dict(type='BN')
    neck_norm = dict(norm_cfg, type='BN1d') if norm_cfg['type'] == 'BN' \
        else norm_cfg
    feat = base_channels * 8 * (4 if depth >= 50 else 1)
    return copy.deepcopy(
        dict(
            type='mmssl.SimCLR',
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
                norm_cfg=norm_cfg,
                zero_init_residual=True),
            neck=dict(
                type='mmpretrain.NonLinearNeck',
                in_channels=feat,
                hid_channels=feat,
                out_channels=out_channels,
                num_layers=2,
                with_avg_pool=True,
                norm_cfg=neck_norm),
            head=dict(type='mmssl.NTXentLoss', temperature=temperature)))


def _linear_projection(x1: torch.Tensor, x2: torch.Tensor):
    """A seeded Linear(6, 4) applied to both views; returns it too."""
    g = torch.Generator().manual_seed(0)
    proj = torch.nn.Linear(x1.shape[1], 4).double()
    with torch.no_grad():
        proj.weight.copy_(torch.randn(proj.weight.shape, generator=g))
        proj.bias.copy_(torch.randn(proj.bias.shape, generator=g))
    return proj, proj(x1.double()), proj(x2.double())


def _grads(proj, loss) -> Dict[str, torch.Tensor]:
    loss.backward()
    return dict(
        loss=loss.detach(),
        weight=proj.weight.grad.clone(),
        bias=proj.bias.grad.clone())


def ntxent_linear_step(x1: torch.Tensor,
                       x2: torch.Tensor) -> Dict[str, torch.Tensor]:
    """NT-Xent (mmssl gather) of a linear projection of (n, d) views:
    loss and parameter gradients."""
    proj, z1, z2 = _linear_projection(x1, x2)
    return _grads(proj, nt_xent_loss(z1, z2, temperature=0.5, gather=True))


def _naive_gather(x: torch.Tensor):
    """All-gather without gradient, local slice put back (grad flows only
    to this rank's own keys)."""
    out = [torch.zeros_like(x) for _ in range(torch_dist.get_world_size())]
    torch_dist.all_gather(out, x.detach().contiguous())
    out[torch_dist.get_rank()] = x
    return out


def ntxent_linear_step_naive_gather(
        x1: torch.Tensor, x2: torch.Tensor) -> Dict[str, torch.Tensor]:
    """As :func:`ntxent_linear_step` with a non-differentiable gather."""
    proj, z1, z2 = _linear_projection(x1, x2)
    gather = _naive_gather if torch_dist.is_initialized() else False
    return _grads(proj, nt_xent_loss(z1, z2, temperature=0.5, gather=gather))


def ntxent_linear_step_mmpretrain_gather(
        x1: torch.Tensor, x2: torch.Tensor) -> Dict[str, torch.Tensor]:
    """mmpretrain's SimCLR scheme: ``GatherLayer`` then the full global
    loss on every rank."""
    from mmpretrain.models.selfsup.simclr import GatherLayer
    proj, z1, z2 = _linear_projection(x1, x2)
    if torch_dist.is_initialized():
        parts = [p.chunk(2) for p in GatherLayer.apply(torch.cat([z1, z2]))]
        z1 = torch.cat([p[0] for p in parts])
        z2 = torch.cat([p[1] for p in parts])
    return _grads(proj, nt_xent_loss(z1, z2, temperature=0.5))


def simclr_model_step(x1: torch.Tensor,
                      x2: torch.Tensor) -> Dict[str, torch.Tensor]:
    """Loss and parameter gradients of a seeded tiny GN ``mmssl.SimCLR`` on
    (n, 3, H, W) view batches."""
    from mmssl.registry import MODELS
    torch.manual_seed(0)
    model = MODELS.build(
        tiny_simclr_cfg(norm_cfg=dict(type='GN', num_groups=4)))
    model.init_weights()
    loss = model.loss([x1, x2], [])['loss']
    loss.backward()
    out = dict(loss=loss.detach())
    out.update({
        n: p.grad.clone()
        for n, p in model.named_parameters() if p.grad is not None
    })
    return out
