# Copyright (c) mmssl contributors. All rights reserved.
"""lightly's MAE as an mmengine model, the peer of mmssl's MAE in benchmarks.

lightly (https://github.com/lightly-ai/lightly) builds MAE from a timm
``VisionTransformer`` wrapped by its ``MaskedVisionTransformerTIMM`` and its
``MAEDecoderTIMM``; its ImageNet ViT-B/16 benchmark decodes with 8 blocks of
512 channels, masks 75 % of the patches, predicts the masked patches only and
regresses their normalised pixels. This module runs exactly those parts of
lightly (nothing re-implemented) behind mmengine's ``BaseModel`` interface,
so ``tools/analysis_tools/benchmark_train.py`` times it beside an mmssl
config in one interleaved run, with the same data preprocessor, optimizer
wrapper and synthetic batch.

lightly is an optional benchmark dependency (``requirements/benchmark.txt``),
never a runtime one: it is imported when the model is built.
"""
import warnings
from typing import Dict, List, Optional, Union

import torch
import torch.nn.functional as F
from mmengine.model import BaseModel

from mmssl.registry import MODELS

_INSTALL_HINT = ('pip install --no-deps -r requirements/benchmark.txt '
                 '(lightly and timm; lightly needs only torch and timm here)')


def _import_lightly():
    try:
        import timm
        from lightly.models import utils
        from lightly.models.modules import (MAEDecoderTIMM,
                                            MaskedVisionTransformerTIMM)
    except ImportError as err:  # pragma: no cover - exercised without it
        raise ImportError(
            f'mmssl.LightlyMAE runs lightly\'s own MAE and needs the lightly '
            f'and timm packages ({err}); install them with: {_INSTALL_HINT}'
        ) from err
    return timm, utils, MAEDecoderTIMM, MaskedVisionTransformerTIMM


@MODELS.register_module()
class LightlyMAE(BaseModel):
    """lightly's MAE (timm ViT encoder + lightly's MAE decoder).

    Args:
        vit (str): timm model name of the encoder, e.g.
            ``'vit_base_patch16_224'``.
        img_size (int): Input side. Defaults to 224.
        patch_size (int, optional): Overrides the timm model's patch size
            (e.g. 8 for the tiny embedded configs).
        vit_kwargs (dict, optional): More ``timm.create_model`` arguments
            (e.g. ``dict(depth=6)``).
        decoder_dim (int): Decoder width. Defaults to 512.
        decoder_depth (int): Decoder blocks. Defaults to 8.
        decoder_num_heads (int): Decoder heads. Defaults to 16.
        mask_ratio (float): Share of masked patches. Defaults to 0.75.
        norm_pix (bool): Regress per-patch normalised pixels (lightly's
            ``normalize_mean_var``). Defaults to True.
        data_preprocessor (dict, optional): mmengine data preprocessor, as in
            the mmssl config this model is compared with.
        init_cfg (dict, optional): Unused (lightly initialises its parts).

    Shapes: ``inputs`` (B, 3, H, W) preprocessed images; the loss is the mean
    squared error over the (B, L_masked, p * p * 3) masked patches.
    """

    def __init__(self,
                 vit: str = 'vit_base_patch16_224',
                 img_size: int = 224,
                 patch_size: Optional[int] = None,
                 vit_kwargs: Optional[dict] = None,
                 decoder_dim: int = 512,
                 decoder_depth: int = 8,
                 decoder_num_heads: int = 16,
                 mask_ratio: float = 0.75,
                 norm_pix: bool = True,
                 data_preprocessor: Optional[Union[dict, object]] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor)
        timm, utils, decoder_cls, masked_vit_cls = _import_lightly()
        if not 0. <= float(mask_ratio) < 1.:
            raise ValueError(f'model.mask_ratio must be in [0, 1), got '
                             f'{mask_ratio!r}')
        kwargs = dict(pretrained=False, img_size=img_size, num_classes=0)
        if patch_size is not None:
            kwargs['patch_size'] = patch_size
        kwargs.update(vit_kwargs or {})
        vit_model = timm.create_model(vit, **kwargs)
        self._utils = utils
        self.mask_ratio = float(mask_ratio)
        self.norm_pix = bool(norm_pix)
        self.patch_size = vit_model.patch_embed.patch_size[0]
        self.backbone = masked_vit_cls(vit=vit_model)
        self.sequence_length = self.backbone.sequence_length
        with warnings.catch_warnings():  # deprecated in lightly 1.6, same op
            warnings.simplefilter('ignore')
            self.decoder = decoder_cls(
                num_patches=vit_model.patch_embed.num_patches,
                patch_size=self.patch_size,
                embed_dim=vit_model.embed_dim,
                decoder_embed_dim=decoder_dim,
                decoder_depth=decoder_depth,
                decoder_num_heads=decoder_num_heads,
                mlp_ratio=4.0,
                proj_drop_rate=0.0,
                attn_drop_rate=0.0)

    def init_weights(self) -> None:
        """lightly and timm initialise their parts when built."""

    def loss(self,
             inputs: torch.Tensor,
             data_samples: Optional[List] = None) -> Dict[str, torch.Tensor]:
        """lightly's MAE training loss of (B, 3, H, W) images."""
        utils = self._utils
        batch_size = inputs.shape[0]
        idx_keep, idx_mask = utils.random_token_mask(
            size=(batch_size, self.sequence_length),
            mask_ratio=self.mask_ratio,
            device=inputs.device)
        encoded = self.backbone.encode(images=inputs, idx_keep=idx_keep)
        decoded = self.decoder.embed(encoded)
        tokens = utils.repeat_token(self.decoder.mask_token,
                                    (batch_size, self.sequence_length))
        tokens = utils.set_at_index(tokens, idx_keep, decoded.type_as(tokens))
        tokens = self.decoder.decode(tokens)
        pred = self.decoder.predict(utils.get_at_index(tokens, idx_mask))
        patches = utils.patchify(inputs, self.patch_size)
        # -1: the class token is position 0 of the sequence, not a patch
        target = utils.get_at_index(patches, idx_mask - 1)
        if self.norm_pix:
            target = utils.normalize_mean_var(target, dim=-1)
        return dict(loss=F.mse_loss(pred.float(), target.float()))

    def forward(self,
                inputs: torch.Tensor,
                data_samples: Optional[List] = None,
                mode: str = 'loss'):
        if mode != 'loss':
            raise ValueError(f'mmssl.LightlyMAE is a benchmark peer and has '
                             f'only mode="loss", got mode={mode!r}')
        return self.loss(inputs, data_samples)
