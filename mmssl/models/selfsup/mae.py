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
* Masking goes through mmssl's shared :func:`random_masking`, which other
  methods reuse, and accepts fixed noise (for reproducible pictures).
* ``MAE.reconstruct`` returns pictures in image space: with ``norm_pix``
  targets the prediction is un-normalised with each original patch's mean and
  variance, without which norm-pix reconstructions look wrong.
"""
from typing import Dict, List, Optional, Tuple, Union

import torch
from mmpretrain.models.backbones import VisionTransformer
from mmpretrain.models.selfsup.mae import MAE as _MMPretrainMAE
from mmpretrain.models.selfsup.mae import MAEViT as _MMPretrainMAEViT
from mmpretrain.structures import DataSample

from mmssl.registry import MODELS
from ..backbones.poslabel_backbones import check_patch_grid
from ..utils.attention import unbind_qkv_attention
from ..utils.drop_path import python_drop_path_rates
from ..utils.masking import (check_mask_ratio, patchify, random_masking,
                             unpatchify)


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
        B = x.shape[0]
        x = self.patch_embed(x)[0]
        x = x + self.pos_embed[:, 1:, :]
        x, mask, ids_restore, _ = random_masking(x, self.mask_ratio, noise)
        cls_token = self.cls_token + self.pos_embed[:, :1, :]
        x = torch.cat((cls_token.expand(B, -1, -1), x), dim=1)
        for layer in self.layers:
            x = layer(x)
        x = self.norm1(x)
        return x, mask, ids_restore


@MODELS.register_module()
class MAE(_MMPretrainMAE):
    """MAE self-supervisor (mmpretrain's, plus reconstruction pictures).

    Use with ``backbone=dict(type='mmssl.MAEViT', ...)`` and mmpretrain's
    ``MAEPretrainDecoder`` neck and ``MAEPretrainHead`` head. The blocks'
    drop-path rates are Python floats (:func:`python_drop_path_rates`), so
    ``compile=True`` traces the forward as one graph.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        python_drop_path_rates(self)
        unbind_qkv_attention(self)

    def extract_feat(self, inputs: torch.Tensor):
        """Unmasked backbone features of ``inputs`` (B, 3, H, W)."""
        return self.backbone(inputs, mask=None)

    def loss(self, inputs: torch.Tensor, data_samples: List[DataSample],
             **kwargs) -> Dict[str, torch.Tensor]:
        """Reconstruction loss of one batch of images (B, 3, H, W)."""
        latent, mask, ids_restore = self.backbone(inputs)
        pred = self.neck(latent, ids_restore)
        loss = self.head.loss(pred, inputs, mask)
        return dict(loss=loss)

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
            target = patchify(inputs, p)
            mean = target.mean(dim=-1, keepdim=True)
            var = target.var(dim=-1, keepdim=True)
            pred = pred * (var + 1.e-6)**.5 + mean
        grid = self.backbone.patch_resolution
        recon = unpatchify(pred, p, inputs.shape[1], grid)
        mask_img = unpatchify(
            mask.unsqueeze(-1).expand(-1, -1, p * p), p, 1, grid)
        pasted = inputs * (1 - mask_img) + recon * mask_img
        return dict(mask=mask_img, reconstruction=recon, pasted=pasted)
