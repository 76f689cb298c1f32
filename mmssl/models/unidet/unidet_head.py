# Copyright (c) mmssl contributors. All rights reserved.
"""Sigmoid-classification box head and Cascade R-CNN of Large-UniDet."""
from mmdet.models.detectors import CascadeRCNN
from mmdet.models.roi_heads.bbox_heads import Shared2FCBBoxHead

from mmssl.registry import MODELS

__all__ = ['UniDetBBoxHead', 'UniDetCascadeRCNN']


@MODELS.register_module()
class UniDetBBoxHead(Shared2FCBBoxHead):
    """``Shared2FCBBoxHead`` whose classifier is per-class sigmoid.

    ``fc_cls`` has ``C + 1`` outputs (background last); the loss must speak
    mmdet's custom classification protocol (``custom_cls_channels`` and
    ``custom_activation``, e.g. :class:`~mmssl.models.HierarchyBCELoss`),
    so that training uses the sigmoid loss, stage refinement takes the
    argmax of the sigmoid scores over the ``C`` foreground columns and
    prediction applies a sigmoid to the (stage-averaged) logits. A loss
    without that protocol (mmdet's ``CrossEntropyLoss(use_sigmoid=True)``)
    would be trained as a sigmoid but decoded with a softmax, so it is
    refused at construction.

    Args:
        loss_cls (dict): the classification loss. Defaults to a flat
            sigmoid BCE (``mmssl.HierarchyBCELoss`` without hierarchy).
        **kwargs: arguments of ``Shared2FCBBoxHead``.

    Shapes: ``forward`` returns ``cls_score (N, C + 1)`` logits and
    ``bbox_pred (N, 4)`` (class-agnostic) or ``(N, 4 C)``.
    """

    def __init__(self,
                 loss_cls: dict = dict(
                     type='mmssl.HierarchyBCELoss',
                     set_pos_parents=False,
                     ignore_children=False,
                     loss_weight=1.0),
                 **kwargs) -> None:
        super().__init__(loss_cls=loss_cls, **kwargs)
        if not (self.custom_cls_channels and self.custom_activation):
            raise ValueError(
                'UniDetBBoxHead needs a loss_cls with custom_cls_channels '
                'and custom_activation (a sigmoid classifier, e.g. '
                f'mmssl.HierarchyBCELoss); got {type(self.loss_cls).__name__}')


@MODELS.register_module()
class UniDetCascadeRCNN(CascadeRCNN):
    """mmdet's ``CascadeRCNN`` with an optionally frozen backbone.

    With ``freeze_backbone=True`` every backbone parameter has
    ``requires_grad=False`` and the backbone stays in eval mode (its
    normalisation statistics do not move), whatever the backbone type:
    only the neck and the heads train (Large-UniDet's "resource-efficient"
    setting with a frozen large backbone).

    Args:
        freeze_backbone (bool): freeze the whole backbone.
            Defaults to False.
        **kwargs: arguments of ``mmdet.models.CascadeRCNN``.
    """

    def __init__(self, *args, freeze_backbone: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.freeze_backbone = freeze_backbone
        if freeze_backbone:
            self._freeze()

    def _freeze(self) -> None:
        self.backbone.eval()
        for param in self.backbone.parameters():
            param.requires_grad = False

    def init_weights(self) -> None:
        """Initialise, then re-freeze (init may replace parameters)."""
        super().init_weights()
        if self.freeze_backbone:
            self._freeze()

    def train(self, mode: bool = True) -> 'UniDetCascadeRCNN':
        """Set train mode, keeping a frozen backbone in eval mode."""
        super().train(mode)
        if self.freeze_backbone:
            self.backbone.eval()
        return self
