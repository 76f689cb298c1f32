# Copyright (c) mmssl contributors. All rights reserved.
"""data2vec 2.0: one modality-agnostic learner for images, text and speech.

Baevski, Babu, Hsu, Auli, "Efficient Self-supervised Learning with
Contextualized Target Representations for Vision, Speech and Language"
(arXiv 2212.07525); reference: fairseq ``examples/data2vec``
(``data2vec_multi``: one model, per-modality feature encoders).

One training step on B samples with M masks each (the "clone batch"):

1. masks, (B, M, *layout) bool, True = removed, from exactly one owner:
   the batch (``data_sample.mask`` drawn in the data workers, e.g. by
   ``mmssl.InverseBlockMaskGenerator`` and packed by ``PackInputs(
   algorithm_keys=['mask'])``, as mmpretrain's BEiT / SimMIM take theirs:
   the image configs) or the model's ``mask_generator`` (drawn on the
   token layout of the batch, which for speech is known only after the
   conv feature extractor: the text and speech configs);
2. student (the backbone, the modality's feature encoder + the shared
   block stack): embed each sample once, repeat it M times, encode only
   the visible tokens of each clone;
3. decoder (the neck, :class:`~mmssl.models.necks.D2V2ConvDecoder2d` or
   ``1d``): noise at the removed positions, conv stack, prediction
   everywhere;
4. teacher (an EMA copy of the student encoder, ``self.teacher``): one pass
   per sample on the unmasked input, top-K FFN outputs -> targets, repeated
   for the M clones (:class:`~mmssl.models.heads.D2V2Head`); encoders whose
   ``teacher_input`` is ``'student_embedding'`` (text, speech) feed the
   teacher the student's embedding of the unmasked input, as the
   reference, and the teacher holds no copy of the backbone's
   ``embedding_modules``;
5. loss on the removed positions (plus the CLS term where the encoder has
   a CLS token); after the optimizer step ``mmssl.TeacherUpdateHook`` calls
   :meth:`Data2VecV2.update_teacher`.

The modalities differ only in the backbone, the mask source and the neck.
A backbone serves this class when it has

* ``token_layout(inputs) -> tuple[int, ...]``: the token layout of a batch
  ((h, w) patch grid, (L, ) tokens or (T, ) frames; its product is N);
* ``forward(inputs, mask=(B * M, N) bool, num_clones=M) -> (latent (B * M,
  E + V, C), mask (B * M, N), ids_restore (B * M, N))`` with E =
  ``num_extra_tokens`` leading extra tokens (CLS) and V visible tokens;
* ``forward_targets(inputs, k) -> list of k (B, N, C)`` (and, with
  ``teacher_input = 'student_embedding'``, ``embed(inputs) -> (tokens,
  layout)``, ``forward(inputs, mask=..., num_clones=M, tokens=tokens)``
  taking that embedding, computed once per step, and
  ``forward_targets(tokens, k, embedded=True)``);
* ``embed_dims``, ``num_layers`` and ``num_extra_tokens`` (E above).
"""
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn as nn
from mmpretrain.models.selfsup.base import BaseSelfSupervisor
from mmpretrain.structures import DataSample

from mmssl.registry import MODELS
from ..utils.ema import LinearAnnealEMA
from ..utils.masking import visible_count

TEACHER_INPUTS = ('raw', 'student_embedding')

MASKER_HINT = ("dict(type='mmssl.RandomTokenMasker', mask_ratio=0.48, "
               'num_masks=8)')

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
    """data2vec 2.0 self-supervisor (images, text, speech).

    Args:
        backbone (dict): The student encoder (see the module docstring):
            ``mmssl.D2V2ViT`` for images.
        neck (dict): The decoder, ``mmssl.D2V2ConvDecoder2d`` for images;
            its ``in_channels`` must equal the encoder width.
        head (dict): ``mmssl.D2V2Head``; ``top_k`` must not exceed the
            encoder depth.
        ema (dict): Arguments of :class:`~mmssl.models.utils.LinearAnnealEMA`
            for the teacher. Defaults to the ViT-B schedule
            ``dict(momentum=2e-4, end_momentum=1e-5, anneal_iters=100000)``.
        mask_generator (dict, optional): A model-side mask generator
            (registered in ``mmssl.MODELS``, called as ``gen(B, layout,
            device) -> (B, M, *layout) bool``). None (default) takes the
            masks from the batch instead; a batch that carries masks while
            a generator is set is refused (one owner per setting).
        data_preprocessor (dict, optional): Defaults to
            ``SelfSupDataPreprocessor``.
        init_cfg (dict, optional): Initialisation of the student; the
            teacher is re-synchronised after :meth:`init_weights`.

    Without ``mask_generator`` the masks, and with them the clone count M,
    come from the batch: each data sample's ``mask`` is (M, *layout) bool
    (True = removed), for images (M, h, w) on the patch grid of the inputs,
    written by a mask generator of the pipeline
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
                 mask_generator: Optional[dict] = None,
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
        teacher_input = getattr(self.backbone, 'teacher_input', 'raw')
        if teacher_input not in TEACHER_INPUTS:
            raise ValueError(
                f'{type(self.backbone).__name__}.teacher_input='
                f'{teacher_input!r}; expected one of {TEACHER_INPUTS}')
        self.teacher_input = teacher_input
        extra = getattr(self.backbone, 'num_extra_tokens', None)
        if isinstance(extra, bool) or not isinstance(extra, int) or extra < 0:
            raise ValueError(
                f'{type(self.backbone).__name__}.num_extra_tokens={extra!r}; '
                'a data2vec 2.0 backbone states how many tokens (CLS) its '
                'latent puts before the visible ones; give '
                f'{type(self.backbone).__name__} the attribute '
                'num_extra_tokens, an int >= 0 (1 with a CLS token, else 0)')
        self.num_extra_tokens = extra
        ema = dict(
            momentum=2e-4, end_momentum=1e-5,
            anneal_iters=100000) if ema is None else dict(ema)
        if teacher_input == 'student_embedding':
            # the teacher runs on the student's embedding: its copy of the
            # local encoder would never be used
            ema.setdefault('exclude',
                           getattr(self.backbone, 'embedding_modules', ()))
        try:
            self.teacher = LinearAnnealEMA(self.backbone, **ema)
        except (TypeError, ValueError) as err:
            raise ValueError(f'model.ema: {err}') from err
        self.mask_generator = None
        if mask_generator is not None:
            try:
                self.mask_generator = MODELS.build(mask_generator)
            except (KeyError, TypeError, ValueError) as err:
                raise ValueError(f'model.mask_generator: {err}') from err

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
    def batch_masks(data_samples: Optional[List[DataSample]],
                    grid: Sequence[int], device: torch.device) -> torch.Tensor:
        """The masks a batch carries, (B, M, *layout) bool, True = removed.

        Args:
            data_samples (list[DataSample] | None): One per sample, each with
                ``mask`` (M, *layout) or (*layout).
            grid (Sequence[int]): Token layout of the inputs, e.g. the patch
                grid (h, w).
            device (torch.device): Where the masks go.

        Raises:
            ValueError: when a sample has no mask, or the masks do not match
                the layout, naming the pipeline step that fixes it.
        """
        found = [getattr(ds, 'mask', None) for ds in data_samples or []]
        if not found or any(m is None for m in found):
            missing = 'the batch has no data samples' if not found else (
                f'{sum(m is None for m in found)} of {len(found)} data '
                'samples have no `mask`')
            if len(grid) == 2:
                fix = (f'add {PIPELINE_HINT} to the end of the train '
                       'pipeline')
            else:
                fix = (f'set model.mask_generator, e.g. {MASKER_HINT}, or '
                       'a mask generator in the train pipeline')
            raise ValueError('mmssl.Data2VecV2 takes its masks from the '
                             f'batch, but {missing}: {fix}')
        masks = torch.stack([torch.as_tensor(m) for m in found])
        n = len(grid)
        if masks.dim() == n + 1:  # one mask per sample
            masks = masks.unsqueeze(1)
        if masks.dim() != n + 2 or tuple(masks.shape[2:]) != tuple(grid):
            what = 'patch grid' if n == 2 else 'token layout'
            raise ValueError(
                f'batch masks of shape {tuple(masks.shape)} do not match the '
                f'{what} {tuple(grid)} of the inputs; set input_size of '
                f'the mask generator in the pipeline to {tuple(grid)}')
        return masks.to(device=device).bool()

    def draw_masks(self, data_samples: Optional[List[DataSample]],
                   layout: Sequence[int], batch_size: int,
                   device: torch.device) -> torch.Tensor:
        """Masks of a batch from its one owner, (B, M, *layout) bool.

        The model's ``mask_generator`` when set (a batch that also carries
        masks is refused), else the batch (:meth:`batch_masks`).
        """
        if self.mask_generator is None:
            masks = self.batch_masks(data_samples, layout, device)
        else:
            if any(
                    getattr(ds, 'mask', None) is not None
                    for ds in data_samples or []):
                raise ValueError(
                    'the batch carries masks and model.mask_generator is '
                    'set: masks have one owner; remove the mask generator '
                    'from the train pipeline or model.mask_generator')
            masks = self.mask_generator(batch_size, tuple(layout), device)
        if masks.shape[0] != batch_size:
            raise ValueError(f'{masks.shape[0]} masks for {batch_size} '
                             'samples: give every sample its data sample '
                             'with a mask')
        return masks

    @torch.compiler.disable
    def step_masks(self, data_samples: Optional[List[DataSample]],
                   layout: Sequence[int], batch_size: int,
                   device: torch.device):
        """:meth:`draw_masks` and their visible count V, always eager.

        A compiled step breaks its graph here once: the masks are drawn as
        in eager mode (the same random stream) and V reaches the encoder
        as a Python int, so the rest of the forward is one graph of static
        sizes.

        Returns:
            tuple: masks (B, M, *layout) bool and V (int).
        """
        masks = self.draw_masks(data_samples, layout, batch_size, device)
        return masks, visible_count(masks.flatten(0, 1))

    # ---------------------------------------------------------------- steps
    def extract_feat(self, inputs: torch.Tensor):
        """Unmasked student features of ``inputs``."""
        return self.backbone(inputs, mask=None)

    @torch.no_grad()
    def teacher_targets(self,
                        inputs: torch.Tensor,
                        tokens: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Teacher targets of the unmasked inputs, one pass per batch.

        Args:
            inputs (Tensor): (B, ...) one batch, e.g. images (B, 3, H, W).
            tokens (Tensor, optional): (B, N, C) the student's embedding of
                ``inputs``, for ``teacher_input = 'student_embedding'``
                (the step's own, as the reference reuses it); embedded
                here if None.

        Returns:
            Tensor: (B, N, C) float32.
        """
        teacher = self.teacher.module
        dtype = next(teacher.parameters()).dtype
        k = self.head.top_k
        if self.teacher_input == 'student_embedding':
            if tokens is None:
                tokens, _ = self.backbone.embed(inputs)
            layers = teacher.forward_targets(
                tokens.detach().to(dtype), k, embedded=True)
        else:
            if inputs.is_floating_point():
                inputs = inputs.to(dtype)
            layers = teacher.forward_targets(inputs, k)
        return self.head.build_targets(layers)

    def loss(self,
             inputs: torch.Tensor,
             data_samples: Optional[List[DataSample]] = None,
             **kwargs) -> Dict[str, torch.Tensor]:
        """data2vec 2.0 losses of a batch (B, ...) of images, token ids or
        waveforms.

        The masks come from ``data_samples`` or the model's
        ``mask_generator`` (see :meth:`draw_masks`).
        """
        if isinstance(inputs, (list, tuple)):
            inputs = inputs[0]
        B = inputs.shape[0]
        layout = tuple(self.backbone.token_layout(inputs))
        masks, V = self.step_masks(data_samples, layout, B, inputs.device)
        M = masks.shape[1]
        masks = masks.flatten(2).flatten(0, 1)  # (B * M, N)

        tokens, embedded = None, {}
        if self.teacher_input == 'student_embedding':
            # embed once: the student's masked path and the teacher share it
            tokens, _ = self.backbone.embed(inputs)
            embedded = dict(tokens=tokens)
        latent, masks, ids_restore = self.backbone(
            inputs, mask=masks, num_clones=M, num_keep=V, **embedded)
        extra = self.num_extra_tokens
        pred = self.neck(latent[:, extra:], ids_restore, layout)
        cls_pred = latent[:, 0] if extra > 0 else None

        targets = self.teacher_targets(inputs, tokens)
        return self.head.loss(pred, targets, masks, cls_pred)
