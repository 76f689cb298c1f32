# Copyright (c) mmssl contributors. All rights reserved.
"""data2vec 2.0 for images.

Baevski, Babu, Hsu, Auli, "Efficient Self-supervised Learning with
Contextualized Target Representations for Vision, Speech and Language"
(arXiv 2212.07525); reference: fairseq ``examples/data2vec``
(``data2vec_multi`` with the image modality).

One training step on B images with M masks each (the "clone batch"):

1. masks: from the batch only (``data_sample.mask``, (M, h, w) bool, drawn
   in the data workers by ``mmssl.InverseBlockMaskGenerator`` and packed by
   ``PackInputs(algorithm_keys=['mask'])``, as mmpretrain's BEiT / SimMIM
   take theirs); the mask settings (ratio, M, block size, adjust) live in
   that pipeline step alone;
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

#: Model keys of earlier versions, now settings of the pipeline's mask
#: generator: old key -> the generator's argument.
MOVED_MASK_KEYS = {
    'num_masks': 'num_masks',
    'mask_type': 'type',
    'mask_ratio': 'mask_ratio',
    'block_size': 'block_size',
    'mask_adjust': 'adjust',
}

PIPELINE_HINT = (
    "dict(type='mmssl.InverseBlockMaskGenerator', input_size=<patch grid, "
    'e.g. 14 for 224 px and patch 16>, mask_ratio=0.8, num_masks=16, '
    "block_size=3, adjust=0.07) followed by dict(type='PackInputs', "
    "algorithm_keys=['mask'])")


def _moved_keys_error(keys: List[str]) -> ValueError:
    moved = ', '.join(f'model.{k} -> `{MOVED_MASK_KEYS[k]}`' for k in keys)
    return ValueError(
        f'{", ".join("model." + k for k in keys)}: mmssl.Data2VecV2 has no '
        'mask settings; its masks come only from the data pipeline. Remove '
        'these keys from the model and set them on the mask generator step '
        f'of train_pipeline instead ({moved}; mask_type=\'inverse_block\' '
        "is type='mmssl.InverseBlockMaskGenerator', 'random' is "
        f"type='mmssl.RandomMaskGenerator'): {PIPELINE_HINT}")


@MODELS.register_module()
class Data2VecV2(BaseSelfSupervisor):
    """data2vec 2.0 self-supervisor (images).

    Args:
        backbone (dict): The student encoder, ``mmssl.D2V2ViT``.
        neck (dict): The decoder, ``mmssl.D2V2ConvDecoder2d``; its
            ``in_channels`` must equal the encoder width.
        head (dict): ``mmssl.D2V2Head``; ``top_k`` must not exceed the
            encoder depth.
        ema (dict): Arguments of :class:`~mmssl.models.utils.LinearAnnealEMA`
            for the teacher. Defaults to the ViT-B schedule
            ``dict(momentum=2e-4, end_momentum=1e-5, anneal_iters=100000)``.
        data_preprocessor (dict, optional): Defaults to
            ``SelfSupDataPreprocessor``.
        init_cfg (dict, optional): Initialisation of the student; the
            teacher is re-synchronised after :meth:`init_weights`.

    The masks, and with them the clone count M, come from the batch: each
    data sample's ``mask`` is (M, h, w) bool (True = removed) on the patch
    grid of the inputs, written by a mask generator of the pipeline
    (``mmssl.InverseBlockMaskGenerator``; ``mmssl.RandomMaskGenerator`` for
    uniformly random masks) and packed with ``PackInputs(algorithm_keys=
    ['mask'])``. Every mask of a batch must leave the same number of visible
    patches. The model keeps no mask settings of its own, so each lives in
    one place; the keys of earlier versions (``num_masks``, ``mask_type``,
    ``mask_ratio``, ``block_size``, ``mask_adjust``) raise at build time,
    naming the pipeline argument that replaced them.
    """

    def __init__(self,
                 backbone: dict,
                 neck: dict,
                 head: dict,
                 ema: Optional[dict] = None,
                 pretrained: Optional[str] = None,
                 data_preprocessor: Optional[Union[dict, nn.Module]] = None,
                 init_cfg: Optional[Union[dict, List[dict]]] = None,
                 **kwargs) -> None:
        moved = [k for k in MOVED_MASK_KEYS if k in kwargs]
        if moved:
            raise _moved_keys_error(moved)
        if kwargs:
            raise TypeError('mmssl.Data2VecV2 got unexpected arguments '
                            f'{sorted(kwargs)}')
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
        ema = dict(
            momentum=2e-4, end_momentum=1e-5,
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
    @staticmethod
    def batch_masks(data_samples: Optional[List[DataSample]], grid: tuple,
                    device: torch.device) -> torch.Tensor:
        """The masks of a batch, (B, M, h, w) bool, True = removed.

        Args:
            data_samples (list[DataSample] | None): One per image, each with
                ``mask`` (M, h, w) or (h, w).
            grid (tuple[int, int]): Patch grid (h, w) of the inputs.
            device (torch.device): Where the masks go.

        Raises:
            ValueError: when a sample has no mask, or the masks do not match
                the patch grid, naming the pipeline step that fixes it.
        """
        found = [getattr(ds, 'mask', None) for ds in data_samples or []]
        if not found or any(m is None for m in found):
            missing = 'the batch has no data samples' if not found else (
                f'{sum(m is None for m in found)} of {len(found)} data '
                'samples have no `mask`')
            raise ValueError(
                f'mmssl.Data2VecV2 takes its masks from the batch, but '
                f'{missing}: add {PIPELINE_HINT} to the end of the train '
                'pipeline')
        masks = torch.stack([torch.as_tensor(m) for m in found])
        if masks.dim() == 3:  # one mask per image
            masks = masks.unsqueeze(1)
        if masks.dim() != 4 or tuple(masks.shape[-2:]) != tuple(grid):
            raise ValueError(
                f'batch masks of shape {tuple(masks.shape)} do not match the '
                f'patch grid {tuple(grid)} of the inputs; set input_size of '
                f'the mask generator in the pipeline to {tuple(grid)}')
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

    def loss(self,
             inputs: torch.Tensor,
             data_samples: Optional[List[DataSample]] = None,
             **kwargs) -> Dict[str, torch.Tensor]:
        """data2vec 2.0 losses of a batch of images (B, 3, H, W).

        ``data_samples`` carry the masks (see :meth:`batch_masks`).
        """
        if isinstance(inputs, (list, tuple)):
            inputs = inputs[0]
        B = inputs.shape[0]
        p = self.backbone.patch_size
        grid = (inputs.shape[-2] // p, inputs.shape[-1] // p)
        masks = self.batch_masks(data_samples, grid, inputs.device)
        if masks.shape[0] != B:
            raise ValueError(f'{masks.shape[0]} masks for {B} images: give '
                             'every image its data sample with a mask')
        M = masks.shape[1]
        masks = masks.flatten(2).flatten(0, 1)  # (B * M, N)

        latent, masks, ids_restore = self.backbone(
            inputs, mask=masks, num_clones=M)
        extra = getattr(self.backbone, 'num_extra_tokens', 1)
        pred = self.neck(latent[:, extra:], ids_restore, grid)
        cls_pred = latent[:, 0] if extra > 0 else None

        targets = self.teacher_targets(inputs)
        return self.head.loss(pred, targets, masks, cls_pred)
