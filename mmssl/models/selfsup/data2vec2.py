# Copyright (c) mmssl contributors. All rights reserved.
"""data2vec 2.0 for images.

Baevski, Babu, Hsu, Auli, "Efficient Self-supervised Learning with
Contextualized Target Representations for Vision, Speech and Language"
(arXiv 2212.07525); reference: fairseq ``examples/data2vec``
(``data2vec_multi`` with the image modality).

One training step on B images with M masks each (the "clone batch"):

1. masks: from the batch (``data_sample.mask``, (M, h, w) bool, e.g. from
   ``mmssl.InverseBlockMaskGenerator``), or drawn here when the batch has
   none;
2. student (:class:`~mmssl.models.backbones.D2V2ViT`): patch-embed each image
   once, repeat it M times, encode only the visible tokens of each clone;
3. decoder (:class:`~mmssl.models.necks.D2V2ConvDecoder2d`): noise at the
   removed positions, conv stack, prediction everywhere;
4. teacher (an EMA copy of the student encoder, ``self.teacher``): one pass
   per image on the unmasked image, top-K FFN outputs -> targets, repeated
   for the M clones (:class:`~mmssl.models.heads.D2V2Head`);
5. loss on the removed positions plus the CLS term; after the optimizer
   step ``mmssl.TeacherUpdateHook`` calls :meth:`Data2VecV2.update_teacher`.
"""
from typing import Dict, List, Optional, Union

import torch
import torch.nn as nn
from mmpretrain.models.selfsup.base import BaseSelfSupervisor
from mmpretrain.structures import DataSample

from mmssl.registry import MODELS
from ..utils.ema import LinearAnnealEMA
from ..utils.masking import (check_mask_ratio, inverse_block_mask,
                             random_mask)

MASK_TYPES = ('inverse_block', 'random')


@MODELS.register_module()
class Data2VecV2(BaseSelfSupervisor):
    """data2vec 2.0 self-supervisor (images).

    Args:
        backbone (dict): The student encoder, ``mmssl.D2V2ViT``.
        neck (dict): The decoder, ``mmssl.D2V2ConvDecoder2d``; its
            ``in_channels`` must equal the encoder width.
        head (dict): ``mmssl.D2V2Head``; ``top_k`` must not exceed the
            encoder depth.
        num_masks (int): Clones M per image when the model draws the masks.
            Defaults to 16.
        mask_type (str): ``'inverse_block'`` (data2vec 2.0) or ``'random'``
            for masks drawn by the model. Defaults to ``'inverse_block'``.
        mask_ratio (float): Fraction of patches removed. Defaults to 0.8.
        block_size (int): Kept-block side (inverse block). Defaults to 3.
        mask_adjust (float): Centre-count adjustment (inverse block).
            Defaults to 0.07.
        ema (dict): Arguments of :class:`~mmssl.models.utils.LinearAnnealEMA`
            for the teacher. Defaults to the ViT-B schedule
            ``dict(momentum=2e-4, end_momentum=1e-5, anneal_iters=100000)``.
        data_preprocessor (dict, optional): Defaults to
            ``SelfSupDataPreprocessor``.
        init_cfg (dict, optional): Initialisation of the student; the
            teacher is re-synchronised after :meth:`init_weights`.

    Masks in the batch take precedence over the model's own; every mask of a
    batch must leave the same number of visible patches.
    """

    def __init__(self,
                 backbone: dict,
                 neck: dict,
                 head: dict,
                 num_masks: int = 16,
                 mask_type: str = 'inverse_block',
                 mask_ratio: float = 0.8,
                 block_size: int = 3,
                 mask_adjust: float = 0.07,
                 ema: Optional[dict] = None,
                 pretrained: Optional[str] = None,
                 data_preprocessor: Optional[Union[dict, nn.Module]] = None,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        if isinstance(num_masks, bool) or not isinstance(
                num_masks, int) or num_masks < 1:
            raise ValueError(f'model.num_masks (the clone batch M) must be an'
                             f' integer >= 1, got {num_masks!r}')
        if mask_type not in MASK_TYPES:
            raise ValueError(f'model.mask_type must be one of {MASK_TYPES}, '
                             f'got {mask_type!r}')
        check_mask_ratio(mask_ratio, 'model.mask_ratio')
        if isinstance(block_size, bool) or not isinstance(
                block_size, int) or block_size < 1:
            raise ValueError('model.block_size must be an integer >= 1, got '
                             f'{block_size!r}')
        if isinstance(mask_adjust, bool) or not isinstance(
                mask_adjust, (int, float)):
            raise ValueError('model.mask_adjust must be a number, got '
                             f'{mask_adjust!r}')
        super().__init__(
            backbone=backbone,
            neck=neck,
            head=head,
            pretrained=pretrained,
            data_preprocessor=data_preprocessor,
            init_cfg=init_cfg)
        depth = getattr(self.backbone, 'num_layers', None)
        top_k = getattr(self.head, 'top_k', None)
        if depth is not None and top_k is not None and top_k > depth:
            raise ValueError(
                f'model.head.top_k={top_k} is larger than the encoder depth '
                f'({depth} blocks in model.backbone); use at most {depth}')
        width = getattr(self.backbone, 'embed_dims', None)
        dec_in = getattr(self.neck, 'in_channels', None)
        if width is not None and dec_in is not None and width != dec_in:
            raise ValueError(
                f'model.neck.in_channels={dec_in} must equal the encoder '
                f'width model.backbone embed_dims={width}')
        self.num_masks = num_masks
        self.mask_type = mask_type
        self.mask_ratio = float(mask_ratio)
        self.block_size = block_size
        self.mask_adjust = float(mask_adjust)
        ema = dict(momentum=2e-4, end_momentum=1e-5,
                   anneal_iters=100000) if ema is None else dict(ema)
        try:
            self.teacher = LinearAnnealEMA(self.backbone, **ema)
        except (TypeError, ValueError) as err:
            raise ValueError(f'model.ema: {err}') from err
        #: number of teacher forward passes (one per image batch)
        self.teacher_forward_calls = 0

    # ---------------------------------------------------------------- setup
    def init_weights(self) -> None:
        """Initialise the student, then make the teacher its exact copy."""
        super().init_weights()
        self.teacher.reset(self.backbone)

    def train(self, mode: bool = True) -> 'Data2VecV2':
        """The teacher always runs in eval mode."""
        super().train(mode)
        self.teacher.eval()
        return self

    @torch.no_grad()
    def update_teacher(self) -> Optional[float]:
        """One EMA step of the teacher towards the student encoder.

        Called by ``mmssl.TeacherUpdateHook`` after each optimizer update.

        Returns:
            float | None: The EMA decay used.
        """
        return self.teacher.update_parameters(self.backbone)

    # ---------------------------------------------------------------- masks
    def draw_masks(self,
                   batch_size: int,
                   grid: tuple,
                   generator: Optional[torch.Generator] = None
                   ) -> torch.Tensor:
        """Masks drawn by the model: (B, M, h, w) bool, True = removed."""
        h, w = grid
        n = batch_size * self.num_masks
        if self.mask_type == 'inverse_block':
            masks = inverse_block_mask(h, w, self.mask_ratio, n,
                                       self.block_size, self.mask_adjust,
                                       generator)
        else:
            masks = random_mask(h, w, self.mask_ratio, n, generator)
        return masks.view(batch_size, self.num_masks, h, w)

    def _batch_masks(self, data_samples: Optional[List[DataSample]],
                     batch_size: int, grid: tuple,
                     device: torch.device) -> torch.Tensor:
        masks = None
        if data_samples:
            found = [getattr(ds, 'mask', None) for ds in data_samples]
            if all(m is not None for m in found):
                masks = torch.stack([torch.as_tensor(m) for m in found])
                if masks.dim() == 3:  # one mask per image
                    masks = masks.unsqueeze(1)
                if masks.dim() != 4 or tuple(masks.shape[-2:]) != tuple(grid):
                    raise ValueError(
                        f'batch masks of shape {tuple(masks.shape)} do not '
                        f'match the patch grid {tuple(grid)} of the inputs; '
                        'set input_size of the mask generator in the '
                        'pipeline to the patch grid')
        if masks is None:
            masks = self.draw_masks(batch_size, grid)
        return masks.to(device=device).bool()

    # ---------------------------------------------------------------- steps
    def extract_feat(self, inputs: torch.Tensor):
        """Unmasked student features of ``inputs`` (B, 3, H, W)."""
        return self.backbone(inputs, mask=None)

    @torch.no_grad()
    def teacher_targets(self, inputs: torch.Tensor) -> torch.Tensor:
        """Teacher targets of the unmasked images, one pass per batch.

        Args:
            inputs (Tensor): (B, 3, H, W).

        Returns:
            Tensor: (B, N, C) float32.
        """
        teacher = self.teacher.module
        dtype = next(teacher.parameters()).dtype
        self.teacher_forward_calls += 1
        layers = teacher.forward_targets(inputs.to(dtype), self.head.top_k)
        return self.head.build_targets(layers)

    def loss(self, inputs: torch.Tensor,
             data_samples: Optional[List[DataSample]] = None,
             **kwargs) -> Dict[str, torch.Tensor]:
        """data2vec 2.0 losses of a batch of images (B, 3, H, W)."""
        if isinstance(inputs, (list, tuple)):
            inputs = inputs[0]
        B = inputs.shape[0]
        p = self.backbone.patch_size
        grid = (inputs.shape[-2] // p, inputs.shape[-1] // p)
        masks = self._batch_masks(data_samples, B, grid, inputs.device)
        M = masks.shape[1]
        masks = masks.flatten(2).flatten(0, 1)  # (B * M, N)

        latent, masks, ids_restore = self.backbone(
            inputs, mask=masks, num_clones=M)
        extra = getattr(self.backbone, 'num_extra_tokens', 1)
        pred = self.neck(latent[:, extra:], ids_restore, grid)
        cls_pred = latent[:, 0] if extra > 0 else None

        targets = self.teacher_targets(inputs)
        return self.head.loss(pred, targets, masks, cls_pred)
