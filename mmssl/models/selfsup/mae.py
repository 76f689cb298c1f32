# Copyright (c) mmssl contributors. All rights reserved.
"""MAE on mmpretrain's implementation, with its pitfalls fixed.

mmpretrain's ``MAE``/``MAEViT``/``MAEPretrainDecoder``/``MAEPretrainHead``
already implement He et al., "Masked Autoencoders Are Scalable Vision
Learners" (CVPR 2022); mmssl reuses them and changes only what is wrong or
missing:

* ``MAEViT.forward(x, mask=False)`` in mmpretrain still masks (it tests
  ``mask is None or False``); here ``False`` and ``None`` both give the
  unmasked feature path.
* Bad settings (mask ratio outside [0, 1), an image size the patch size does
  not divide) fail when the model is built, naming the key.
* Masking goes through mmssl's shared :func:`masking_ids` (the bookkeeping
  of :func:`random_masking`), which other methods reuse, and accepts fixed
  noise (for reproducible pictures). Only the visible patches are embedded
  (:func:`embed_patches_at`) and, for the loss, only the removed ones are
  decoded (:class:`mmssl.MAEPretrainDecoder`): the same numbers up to
  rounding, less work.
* ``MAE.reconstruct`` returns pictures in image space: with ``norm_pix``
  targets the prediction is un-normalised with each original patch's mean and
  variance, without which norm-pix reconstructions look wrong.
"""
from typing import Dict, List, Optional, Tuple, Union

import torch
from mmpretrain.models.backbones import VisionTransformer
from mmpretrain.models.heads import MAEPretrainHead
from mmpretrain.models.losses import PixelReconstructionLoss
from mmpretrain.models.selfsup.mae import MAE as _MMPretrainMAE
from mmpretrain.models.selfsup.mae import MAEViT as _MMPretrainMAEViT
from mmpretrain.structures import DataSample

from mmssl.registry import MODELS
from ..backbones.poslabel_backbones import check_patch_grid
from ..necks.mae_decoder import MAEPretrainDecoder
from ..utils.attention import unbind_qkv_attention
from ..utils.drop_path import python_drop_path_rates
from ..utils.masking import (check_mask_ratio, gather_tokens, masking_ids,
                             patch_mean_var, patchify, pixel_targets,
                             removed_ids, unpatchify)
from ..utils.patch_embed import embed_patches_at


@MODELS.register_module()
class MAEViT(_MMPretrainMAEViT):
    """ViT encoder of MAE that encodes the visible patches only.

    Same arguments as ``mmpretrain.MAEViT``, plus ``use_pos_embed``
    (default True): ``False`` zeroes the fixed sin-cos position embedding of
    the encoder (the decoder keeps its own), so visible tokens carry no
    position (the harder, DropPos-like setting of positional labels).

    ``forward(x, mask=True)`` returns ``(latent, mask, ids_restore)`` with
    latent ``(B, 1 + V, C)`` (CLS first), mask ``(B, L)`` (1 = removed) and
    ids_restore ``(B, L)``; ``forward(x, mask=None | False)`` returns the
    usual ``VisionTransformer`` outputs of the full image.
    """

    def __init__(self,
                 *args,
                 mask_ratio: float = 0.75,
                 use_pos_embed: bool = True,
                 **kwargs) -> None:
        check_mask_ratio(mask_ratio, 'model.backbone.mask_ratio')
        check_patch_grid(
            kwargs.get('img_size', 224), kwargs.get('patch_size', 16),
            'model.backbone',
            type(self).__name__)
        super().__init__(*args, mask_ratio=mask_ratio, **kwargs)
        self.use_pos_embed = bool(use_pos_embed)
        unbind_qkv_attention(self)

    def init_weights(self) -> None:
        super().init_weights()
        if not self.use_pos_embed:
            self.pos_embed.data.zero_()

    def forward(
        self,
        x: torch.Tensor,
        mask: Optional[bool] = True,
        noise: Optional[torch.Tensor] = None
    ) -> Union[Tuple[torch.Tensor, ...], Tuple[torch.Tensor, torch.Tensor,
                                               torch.Tensor]]:
        """Encode images, visible patches only when ``mask`` is truthy.

        Args:
            x (Tensor): images (B, 3, H, W).
            mask (bool, optional): ``True`` masks, ``None``/``False`` do not.
            noise (Tensor, optional): (B, L) sort keys for the masking.
        """
        if mask is None or mask is False:
            return VisionTransformer.forward(self, x)
        if tuple(x.shape[-2:]) != tuple(self.img_size):
            raise ValueError(
                f'{type(self).__name__}: images of {tuple(x.shape[-2:])} px '
                f'given, the masked path encodes model.backbone.img_size='
                f'{tuple(self.img_size)} (resize the images or set img_size)')
        B = x.shape[0]
        L = self.patch_resolution[0] * self.patch_resolution[1]
        mask, ids_restore, ids_keep = masking_ids(B, L, self.mask_ratio, noise,
                                                  x.device)
        # only the visible patches are embedded (same numbers as embedding
        # all of them and gathering, up to rounding)
        x = embed_patches_at(self.patch_embed, x, ids_keep)
        x = x + gather_tokens(self.pos_embed[:, 1:, :].expand(B, -1, -1),
                              ids_keep)
        mask = mask.to(x.dtype)
        cls_token = self.cls_token + self.pos_embed[:, :1, :]
        x = torch.cat((cls_token.expand(B, -1, -1), x), dim=1)
        for layer in self.layers:
            x = layer(x)
        x = self.norm1(x)
        return x, mask, ids_restore


@MODELS.register_module()
class MAE(_MMPretrainMAE):
    """MAE self-supervisor (mmpretrain's, plus reconstruction pictures).

    Use with ``backbone=dict(type='mmssl.MAEViT', ...)``,
    ``neck=dict(type='mmssl.MAEPretrainDecoder', ...)`` and mmpretrain's
    ``MAEPretrainHead``. With those, and ``predict_removed_only=True`` (the
    default), the loss decodes the removed patches only (the decoder's last
    block, norm and prediction layer skip the CLS and visible tokens, whose
    predictions the loss never reads): the same loss and gradients up to
    rounding. ``False``, or mmpretrain's decoder, predicts every patch as
    mmpretrain does. The blocks' drop-path rates are Python floats
    (:func:`python_drop_path_rates`), so ``compile=True`` traces the forward
    as one graph.
    """

    def __init__(self,
                 *args,
                 predict_removed_only: bool = True,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.predict_removed_only = bool(predict_removed_only)
        python_drop_path_rates(self)
        unbind_qkv_attention(self)

    def extract_feat(self, inputs: torch.Tensor):
        """Unmasked backbone features of ``inputs`` (B, 3, H, W)."""
        return self.backbone(inputs, mask=None)

    def loss(self, inputs: torch.Tensor, data_samples: List[DataSample],
             **kwargs) -> Dict[str, torch.Tensor]:
        """Reconstruction loss of one batch of images (B, 3, H, W)."""
        latent, mask, ids_restore = self.backbone(inputs)
        return dict(
            loss=self.reconstruction_loss(latent, mask, ids_restore, inputs))

    def reconstruction_loss(self, latent: torch.Tensor, mask: torch.Tensor,
                            ids_restore: torch.Tensor,
                            inputs: torch.Tensor) -> torch.Tensor:
        """The head's loss of the decoded ``latent``.

        Args:
            latent (Tensor): (B, 1 + V, C) encoder output, CLS first.
            mask (Tensor): (B, L), 1 = removed patch.
            ids_restore (Tensor): (B, L) from the masking.
            inputs (Tensor): (B, 3, H, W) the images (the target).

        Returns:
            Tensor: the scalar loss. With :meth:`_predicts_removed_only`
            only the removed patches are decoded (the same loss up to
            rounding, see :class:`mmssl.MAEPretrainDecoder`).
        """
        if not self._predicts_removed_only():
            pred = self.neck(latent, ids_restore)
            return self.head.loss(pred, inputs, mask)
        ids = removed_ids(ids_restore, latent.shape[1] - 1)  # (B, M)
        pred = self.neck(latent, ids_restore, query_ids=ids)  # (B, M, D)
        target = pixel_targets(inputs, self.head.patch_size, ids,
                               self.head.norm_pix)
        return self.head.loss_module(pred, target,
                                     pred.new_ones(pred.shape[:2]))

    def _predicts_removed_only(self) -> bool:
        """Whether the loss can decode the removed patches only: mmssl's
        decoder, mmpretrain's pixel head with its pixel loss (which
        averages over the removed patches, so a mask of ones over them
        gives the same value), and ``predict_removed_only`` on. Any other
        head or loss gets every patch, as mmpretrain decodes them."""
        return (self.predict_removed_only
                and isinstance(self.neck, MAEPretrainDecoder)
                and type(self.head) is MAEPretrainHead
                and type(self.head.loss_module) is PixelReconstructionLoss)

    @torch.no_grad()
    def reconstruct(
            self,
            inputs: torch.Tensor,
            noise: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        """Reconstruct masked images, in the normalised input space.

        Args:
            inputs (Tensor): (B, 3, H, W) preprocessed images.
            noise (Tensor, optional): (B, L) masking noise (fixed noise gives
                the same masks every time).

        Returns:
            dict: ``mask`` (B, 1, H, W), 1 = removed pixel;
            ``reconstruction`` (B, 3, H, W) predicted image;
            ``pasted`` (B, 3, H, W) visible pixels + predicted removed ones.
        """
        p = self.head.patch_size
        latent, mask, ids_restore = self.backbone(inputs, noise=noise)
        pred = self.neck(latent, ids_restore)  # (B, L, p*p*3)
        if self.head.norm_pix:
            mean, var = patch_mean_var(patchify(inputs, p))
            pred = pred * (var + 1.e-6)**.5 + mean
        grid = self.backbone.patch_resolution
        recon = unpatchify(pred, p, inputs.shape[1], grid)
        mask_img = unpatchify(
            mask.unsqueeze(-1).expand(-1, -1, p * p), p, 1, grid)
        pasted = inputs * (1 - mask_img) + recon * mask_img
        return dict(mask=mask_img, reconstruction=recon, pasted=pasted)
