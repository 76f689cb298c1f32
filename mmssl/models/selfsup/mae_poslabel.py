# Copyright (c) mmssl contributors. All rights reserved.
"""MAE with a positional label on the visible tokens.

The positional-label paper (Zhang & Gong, AAAI 2023) says its labels can be
added to a self-supervised ViT such as MAE but releases no code for it. This
is mmssl's design: the APL (or RPL) head reads the encoder's output for the
*visible* patch tokens (CLS dropped), and each token's label is the original
grid index of its patch, ``kept_ids(ids_restore, V)``, so MAE's shuffle and
drop do not change what a token must predict. Placing the head on the
encoder (not the decoder) makes the encoder itself carry position, which is
what downstream tasks use; the decoder is discarded like the head.

``L = L_MAE + loss_weight * CE_pos`` (``loss_weight`` of the head, 0.5 by
analogy with the supervised code). With the encoder's position embedding
(``backbone.use_pos_embed=True``, MAE's default) the task can be partly
solved by reading the fixed sin-cos embedding back; with ``False`` the
visible tokens carry no position and the task must be solved from content,
as in DropPos. Both are one config value and are reported in the README.
"""
from typing import Dict, List

import torch
from mmpretrain.structures import DataSample

from mmssl.registry import MODELS
from ..utils.masking import kept_ids, num_visible
from .mae import MAE


@MODELS.register_module()
class MAEPosLabel(MAE):
    """MAE plus an absolute or relative positional label head.

    Args:
        pos_head (dict): ``mmssl.AbsPosLabelHead`` or
            ``mmssl.RelPosLabelHead`` with ``grid_size`` equal to the patch
            grid and ``in_channels`` to the encoder width (checked here).
        **kwargs: the arguments of :class:`mmssl.MAE` (backbone must be
            ``mmssl.MAEViT``).
    """

    def __init__(self, pos_head: dict, **kwargs) -> None:
        super().__init__(**kwargs)
        owner = type(self).__name__
        self.pos_head = MODELS.build(pos_head)
        grid = tuple(self.backbone.patch_resolution)
        if tuple(self.pos_head.grid_size) != grid:
            raise ValueError(
                f'{owner}: model.pos_head.grid_size='
                f'{tuple(self.pos_head.grid_size)} gives '
                f'{self.pos_head.num_classes} classes, but the encoder has a '
                f'{grid[0]}x{grid[1]} patch grid; set '
                f'model.pos_head.grid_size={grid}')
        if self.pos_head.in_channels != self.backbone.embed_dims:
            raise ValueError(
                f'{owner}: model.pos_head.in_channels='
                f'{self.pos_head.in_channels}, but the encoder has '
                f'{self.backbone.embed_dims} channels; set '
                f'model.pos_head.in_channels={self.backbone.embed_dims}')
        self.num_visible = num_visible(self.pos_head.num_tokens,
                                       self.backbone.mask_ratio)
        if hasattr(self.pos_head, 'check_visible_pairs'):
            self.pos_head.check_visible_pairs(self.num_visible,
                                              'model.pos_head', owner)

    def loss(self, inputs: torch.Tensor, data_samples: List[DataSample],
             **kwargs) -> Dict[str, torch.Tensor]:
        """MAE loss and positional loss of one batch (B, 3, H, W).

        Returns:
            dict: ``loss_rec`` (MAE's reconstruction loss), ``loss_pos``
            (weighted positional cross-entropy) and ``acc_pos`` (its
            accuracy, logged only); mmengine logs their sum as ``loss``.
        """
        latent, mask, ids_restore = self.backbone(inputs)
        losses = dict(
            loss_rec=self.reconstruction_loss(latent, mask, ids_restore,
                                              inputs))
        tokens = latent[:, 1:]  # (B, V, C), CLS dropped
        ids = kept_ids(ids_restore, tokens.shape[1])  # (B, V) grid indices
        losses.update(self.pos_head.loss(tokens, ids))
        return losses
