# Copyright (c) mmssl contributors. All rights reserved.
"""Span masks over time for speech (wav2vec 2.0 / data2vec 2.0).

Two recipes of fairseq, both giving every row of a batch exactly the same
number of masked frames (``require_same_masks=True``), which the data2vec
2.0 student needs (it drops the masked frames, so rows must stay
rectangular):

* :func:`block_span_mask`: ``compute_block_mask_1d`` of
  ``fairseq/data/data_utils.py``, what the data2vec 2.0 audio recipe draws
  (``base_audio_only_task.yaml``: ``precompute_mask_config: {}`` with the
  model's ``mask_prob=0.5``, ``mask_length=5``, ``mask_prob_adjust=0.05``).
  ``int(T * (p + adjust) / L)`` centres drawn uniformly with replacement,
  each widened to the ``L`` frames ``centre - L // 2 ... centre - L // 2 +
  L - 1`` (clamped to the sequence), then frames are randomly unmasked or
  masked until exactly ``int(T * p)`` are masked.
* :func:`span_mask`: ``compute_mask_indices`` (static span lengths, spans
  may overlap), what wav2vec 2.0 draws and what data2vec 2.0 draws in the
  model when the batch has no precomputed masks, also during CTC
  fine-tuning (time masks, ``mask_prob=0.65``, ``mask_length=10``, and
  channel masks, ``mask_channel_prob=0.5``, ``mask_channel_length=64``).
  Row ``i`` of valid length ``T_i`` gets ``max(min_masks, int(p * T_i / L
  + u))`` span starts (``u ~ U[0, 1)``, probabilistic rounding) drawn
  without replacement; with ``same_count`` every row keeps a random subset
  of the smallest row's count; ``mask_dropout`` then unmasks
  ``round(n * mask_dropout)`` of them in every row.

:class:`SpanMasker` is the model-side generator of data2vec 2.0 built from
either, called like :class:`~mmssl.models.utils.RandomTokenMasker`.
Randomness comes from torch (a private generator when seeded, else the
global one that mmengine seeds and ``mmssl.RandomStateHook`` saves), so
masks are reproducible and survive ``--resume``; the streams differ from
fairseq's numpy ones, the distributions are the same.
"""
from typing import Optional, Sequence

import torch

from mmssl.registry import MODELS
from mmssl.utils.validation import check_choice, check_float, check_int

__all__ = ['SpanMasker', 'block_span_mask', 'span_mask']

METHODS = ('block', 'spans')


def _equalise(mask: torch.Tensor, target: int,
              generator: Optional[torch.Generator]) -> torch.Tensor:
    """Randomly unmask / mask frames of each row until ``target`` are
    masked (fairseq's ``require_same_masks`` step of the block masks)."""
    rows, frames = mask.shape
    count = mask.sum(dim=1, keepdim=True)
    noise = torch.rand(rows, frames, generator=generator)
    # rank of each masked frame among its row's masked frames (random
    # order), and of each unmasked frame among the unmasked ones
    rank_on = torch.where(mask, noise, noise + 2).argsort(1).argsort(1)
    rank_off = torch.where(mask, noise + 2, noise).argsort(1).argsort(1)
    excess = (count - target).clamp(min=0)
    deficit = (target - count).clamp(min=0)
    return (mask & ~(rank_on < excess)) | (~mask & (rank_off < deficit))


def block_span_mask(rows: int,
                    frames: int,
                    mask_prob: float,
                    mask_length: int,
                    mask_prob_adjust: float = 0.,
                    generator: Optional[torch.Generator] = None,
                    same_count: bool = True) -> torch.Tensor:
    """fairseq ``compute_block_mask_1d`` (``require_same_masks=True``).

    Args:
        rows (int): Masks to draw (e.g. B * M).
        frames (int): T, frames per row.
        mask_prob (float): Fraction p of frames masked, exactly
            ``int(T * p)`` per row.
        mask_length (int): Span length L around each of the
            ``int(T * (p + mask_prob_adjust) / L)`` distinct centres.
        mask_prob_adjust (float): Extra centre density (fairseq's
            ``mask_prob_adjust``, compensates overlaps). Defaults to 0.
        generator (torch.Generator, optional): CPU generator.
        same_count (bool): Equalise to ``int(T * p)`` masked frames per
            row (False: the widened centres only). Defaults to True.

    Returns:
        Tensor: (rows, frames) bool, True = masked, on the CPU.
    """
    num_centres = min(
        int(frames * (mask_prob + mask_prob_adjust) / mask_length), frames)
    mask = torch.zeros(rows, frames, dtype=torch.bool)
    if num_centres > 0:  # distinct centres (fairseq's multinomial)
        centres = torch.multinomial(
            torch.ones(rows, frames),
            num_centres,
            replacement=False,
            generator=generator)
        for k in range(mask_length):
            idx = (centres + k - mask_length // 2).clamp(0, frames - 1)
            mask.scatter_(1, idx, True)
    if not same_count:
        return mask
    return _equalise(mask, int(frames * mask_prob), generator)


def span_mask(lengths: Sequence[int],
              frames: int,
              mask_prob: float,
              mask_length: int,
              min_masks: int = 0,
              same_count: bool = True,
              mask_dropout: float = 0.,
              generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """fairseq ``compute_mask_indices`` with static span lengths.

    Args:
        lengths (Sequence[int]): Valid frames T_i of each row (padding
            after them is never masked).
        frames (int): T, the padded length (>= every T_i).
        mask_prob (float): Span-start probability p per frame.
        mask_length (int): Span length L.
        min_masks (int): Least number of spans per row. Defaults to 0.
        same_count (bool): Every row keeps a random subset of the smallest
            row's masked frames (``require_same_masks``). Defaults to True.
        mask_dropout (float): Fraction of each row's masked frames then
            unmasked. Defaults to 0.
        generator (torch.Generator, optional): CPU generator.

    Returns:
        Tensor: (len(lengths), frames) bool, True = masked, on the CPU.

    Raises:
        ValueError: when a row would be masked entirely (too short for the
            span settings).
    """
    idcs = []
    for size in (int(s) for s in lengths):
        u = torch.rand((), generator=generator).item()
        num = max(min_masks, int(mask_prob * size / float(mask_length) + u))
        if num == 0:
            idcs.append(torch.zeros(0, dtype=torch.long))
            continue
        span = mask_length
        if size - span <= num:  # then size - span = num + 1 starts to draw
            span = size - num - 1
        starts = torch.randperm(size - span, generator=generator)[:num]
        idc = (starts[:, None] + torch.arange(mask_length)).flatten()
        idc = torch.unique(idc[idc < size])
        if len(idc) >= size:
            raise ValueError(
                f'span_mask: every frame of a row of {size} frames is '
                'masked; use longer clips or lower mask_prob')
        idcs.append(idc)
    target = min((len(i) for i in idcs), default=0) if same_count else None
    mask = torch.zeros(len(idcs), frames, dtype=torch.bool)
    for row, idc in enumerate(idcs):
        if target is not None and len(idc) > target:
            idc = idc[torch.randperm(len(idc), generator=generator)[:target]]
        mask[row, idc] = True
        if mask_dropout > 0:
            on = mask[row].nonzero().flatten()
            holes = int(round(len(on) * mask_dropout))
            drop = torch.randperm(len(on), generator=generator)[:holes]
            mask[row, on[drop]] = False
    return mask


@MODELS.register_module()
class SpanMasker:
    """Span masks over frames, M per sample (data2vec 2.0 speech).

    Called as ``gen(batch_size, layout, device) -> (B, M, T)`` bool with
    ``layout = (T, )``; every one of the B * M rows has exactly the same
    number of masked frames (``int(T * mask_prob)`` for ``'block'``, the
    smallest row's count for ``'spans'``), as the encoder drops them.

    Args:
        mask_prob (float): ``'block'``: fraction of frames masked;
            ``'spans'``: span-start probability. Defaults to 0.5 (the
            data2vec 2.0 audio recipe).
        mask_length (int): Span length. Defaults to 5.
        num_masks (int): Masks per sample, the clone batch M. Defaults to 8.
        mask_prob_adjust (float): ``'block'`` only, extra centre density.
            Defaults to 0.05.
        method (str): ``'block'`` (:func:`block_span_mask`, the recipe's
            precomputed masks) or ``'spans'`` (:func:`span_mask`, fairseq's
            model-side ``compute_mask_indices``). Defaults to ``'block'``.
        min_masks (int): ``'spans'`` only. Defaults to 1 (data2vec 2.0).
        mask_dropout (float): ``'spans'`` only. Defaults to 0.
        seed (int, optional): Seed of a private generator; None uses the
            global torch generator (seeded by the run's ``randomness``).
    """

    def __init__(self,
                 mask_prob: float = 0.5,
                 mask_length: int = 5,
                 num_masks: int = 8,
                 mask_prob_adjust: float = 0.05,
                 method: str = 'block',
                 min_masks: int = 1,
                 mask_dropout: float = 0.,
                 seed: Optional[int] = None) -> None:
        name = type(self).__name__
        key = 'model.mask_generator.'
        self.mask_prob = check_float(mask_prob, key + 'mask_prob', name, 0, 1,
                                     (False, False))
        self.mask_length = check_int(mask_length, key + 'mask_length', name)
        self.num_masks = check_int(
            num_masks, key + 'num_masks', name, note='the clone batch M')
        self.mask_prob_adjust = check_float(
            mask_prob_adjust, key + 'mask_prob_adjust', name, low=0)
        self.method = check_choice(method, key + 'method', name, METHODS)
        self.min_masks = check_int(
            min_masks, key + 'min_masks', name, minimum=0)
        self.mask_dropout = check_float(mask_dropout, key + 'mask_dropout',
                                        name, 0, 1, (True, False))
        self.generator = None
        if seed is not None:
            self.generator = torch.Generator().manual_seed(int(seed))

    def masks(self, rows: int, frames: int) -> torch.Tensor:
        """(rows, frames) bool masks with equal counts, on the CPU."""
        if self.method == 'block':
            return block_span_mask(rows, frames, self.mask_prob,
                                   self.mask_length, self.mask_prob_adjust,
                                   self.generator)
        return span_mask([frames] * rows, frames, self.mask_prob,
                         self.mask_length, self.min_masks, True,
                         self.mask_dropout, self.generator)

    def __call__(self, batch_size: int, layout: Sequence[int],
                 device: torch.device) -> torch.Tensor:
        """(B, M, T) bool masks for a batch of B sequences of T frames."""
        if len(layout) != 1:
            raise ValueError(f'{type(self).__name__} masks sequences (T, ); '
                             f'got the token layout {tuple(layout)}')
        frames = int(layout[0])
        if int(frames * self.mask_prob) >= frames or frames < 2:
            raise ValueError(
                f'{type(self).__name__}: {frames} frames are too few to '
                f'mask with mask_prob={self.mask_prob}; use longer clips')
        out = self.masks(batch_size * self.num_masks, frames)
        return out.view(batch_size, self.num_masks, frames).to(device)

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(method={self.method!r}, mask_prob='
                f'{self.mask_prob}, mask_length={self.mask_length}, '
                f'num_masks={self.num_masks})')
