# Copyright (c) mmssl contributors. All rights reserved.
"""Targets and loss of data2vec 2.0 (fairseq ``make_targets`` and the loss
part of ``Data2VecMultiModel.forward``)."""
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule

from mmssl.registry import MODELS
from mmssl.utils.validation import check_float, check_int


@torch.no_grad()
def d2v2_targets(layer_outputs: Sequence[torch.Tensor],
                 top_k: Optional[int] = None,
                 instance_norm: bool = True,
                 layer_norm: bool = True) -> torch.Tensor:
    """Contextualised targets: ``LN(mean_l IN(a_l))`` over the top-K layers.

    Args:
        layer_outputs (Sequence[Tensor]): Teacher layer outputs a_l, each
            (B, N, C) (patch tokens only), shallowest first.
        top_k (int, optional): Average the last K of them; all if None.
        instance_norm (bool): Normalise each layer over the N tokens, per
            sample and channel (no affine, eps 1e-5). Defaults to True.
        layer_norm (bool): LayerNorm over channels (no affine, eps 1e-5) of
            the average. Defaults to True.

    Returns:
        Tensor: (B, N, C) float32 targets, no gradient.
    """
    if not len(layer_outputs):
        raise ValueError('no teacher layer outputs to build targets from')
    k = len(layer_outputs) if top_k is None else top_k
    if not 1 <= k <= len(layer_outputs):
        raise ValueError(f'top_k={top_k} with {len(layer_outputs)} layers')
    layers = [t.float() for t in layer_outputs[-k:]]
    if instance_norm:
        layers = [
            F.instance_norm(t.transpose(1, 2)).transpose(1, 2) for t in layers
        ]
    y = torch.stack(layers).mean(dim=0)
    if layer_norm:
        y = F.layer_norm(y, y.shape[-1:])
    return y


def feature_std(x: torch.Tensor,
                weight: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Std over rows averaged over channels (fairseq's ``compute_var``).

    Args:
        x (Tensor): (..., C) features; every leading position is a row.
        weight (Tensor, optional): (...) 0/1 (or bool) row selection, the
            same as ``x[weight.bool()]`` but without boolean indexing, so
            the sizes stay static under ``torch.compile``. All rows if
            None.

    Returns:
        Tensor: scalar, float32, no gradient; 0 for fewer than two rows.
    """
    x = x.detach().float().reshape(-1, x.shape[-1])
    if weight is None:
        if x.shape[0] < 2:
            return x.new_zeros(())
        return torch.sqrt(x.var(dim=0) + 1e-6).mean()
    w = weight.detach().reshape(-1, 1).to(x.dtype)
    n = w.sum()
    mean = (x * w).sum(dim=0) / n.clamp(min=1)
    var = ((x - mean)**2 * w).sum(dim=0) / (n - 1).clamp(min=1)
    std = torch.sqrt(var + 1e-6).mean()
    return torch.where(n < 2, torch.zeros_like(std), std)


@MODELS.register_module()
class D2V2Head(BaseModule):
    """data2vec 2.0 head: builds targets and computes the losses.

    ``L = L_reg + L_cls`` with

    * ``L_reg = loss(pred[masked], y[masked])`` averaged over masked tokens
      (the regression loss sums over channels and scales by 1/sqrt(C));
    * ``L_cls = cls_loss_weight * sum over the B * M clones of
      loss(z_cls, mean_t y)``: as in fairseq, where the CLS loss is
      multiplied by the number of masked tokens before the common division,
      this term is a *sum* over clones, not a mean.

    Args:
        top_k (int): Teacher blocks averaged, K. Defaults to 10.
        instance_norm (bool): Instance-normalise each layer. Defaults to
            True.
        layer_norm (bool): LayerNorm the average. Defaults to True.
        cls_loss_weight (float): lambda_cls; 0 disables the CLS term.
            Defaults to 0.01.
        loss (dict): The regression loss. Defaults to
            ``dict(type='mmssl.D2V2RegressionLoss')``.
    """

    def __init__(self,
                 top_k: int = 10,
                 instance_norm: bool = True,
                 layer_norm: bool = True,
                 cls_loss_weight: float = 0.01,
                 loss: dict = dict(type='mmssl.D2V2RegressionLoss'),
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        name = type(self).__name__
        self.top_k = check_int(
            top_k, 'model.head.top_k', name, note='teacher blocks averaged')
        check_float(cls_loss_weight, 'model.head.cls_loss_weight', name, low=0)
        self.instance_norm = instance_norm
        self.layer_norm = layer_norm
        self.cls_loss_weight = float(cls_loss_weight)
        self.loss_module = MODELS.build(loss)

    def build_targets(self, layer_outputs: List[torch.Tensor]) -> torch.Tensor:
        """(B, N, C) targets from the teacher's last K FFN outputs."""
        return d2v2_targets(layer_outputs, self.top_k, self.instance_norm,
                            self.layer_norm)

    def loss(
            self,
            pred: torch.Tensor,
            targets: torch.Tensor,
            mask: torch.Tensor,
            cls_pred: Optional[torch.Tensor] = None
    ) -> Dict[str, torch.Tensor]:
        """Losses of one batch of B images x M clones.

        Args:
            pred (Tensor): (B * M, N, C) decoder predictions.
            targets (Tensor): (B, N, C) teacher targets, computed once per
                image; clone m of image b is row ``b * M + m``.
            mask (Tensor): (B * M, N) bool, True = removed (regressed).
            cls_pred (Tensor, optional): (B * M, C) student CLS outputs.

        Returns:
            dict: ``loss_reg`` (and ``loss_cls``), plus ``target_std`` and
            ``pred_std`` to watch for collapse.
        """
        B = targets.shape[0]
        if pred.shape[0] % B or mask.shape[0] != pred.shape[0]:
            raise ValueError(
                f'{pred.shape[0]} predictions / {mask.shape[0]} masks do not '
                f'split into clones of {B} images')
        M = pred.shape[0] // B
        mask = mask.bool()
        y = targets.repeat_interleave(M, dim=0)
        # the masked positions by weight, not boolean indexing: the same
        # sum over masked tokens / their count, with static sizes
        w = mask.to(torch.float32)
        per_token = self.loss_module(pred, y, reduction='none')
        losses = dict(
            loss_reg=(per_token * w.flatten()).sum() / w.sum().clamp(min=1))
        if self.cls_loss_weight > 0 and cls_pred is not None:
            cls_target = targets.mean(dim=1).repeat_interleave(M, dim=0)
            losses['loss_cls'] = self.cls_loss_weight * self.loss_module(
                cls_pred, cls_target, reduction='sum')
        losses['target_std'] = feature_std(y, w)
        losses['pred_std'] = feature_std(pred, w)
        return losses
