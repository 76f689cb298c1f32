# Copyright (c) mmssl contributors. All rights reserved.
"""DiffFashion's automatic garment mask from label-dependent denoising.

The garment is noised to the sampler's start step and denoised without
guidance under the garment's label down to the mask step; the clean
estimate x0-hat there is fed back to the class-conditional UNet at the
mask step under the garment label and under each label of a set of
unrelated labels. Pixels whose posterior mean depends on the label
(z-score of the squared difference above the threshold) form the mask.
"""
from typing import Callable, Dict, List, Optional, Sequence

import torch
from mmengine.model import BaseModule

from mmssl.registry import MODELS
from mmssl.utils.validation import check_choice, check_int
from .fashion_ops import (clean_mask, ddpm_posterior, label_contrast_score,
                          predict_x0, smooth_score, standardise,
                          threshold_mask)

__all__ = ['LabelContrastMaskGenerator', 'MaskError']


class MaskError(ValueError):
    """The garment mask is empty (or covers nothing usable)."""


@MODELS.register_module()
class LabelContrastMaskGenerator(BaseModule):
    """DiffFashion's label-contrast garment mask: its settings and its run.

    :meth:`generate` takes the sampler (a
    :class:`mmssl.models.diffusion.DiffFashionEditor`) whose UNet, schedule
    and unguided steps it uses. The reference code's mask is
    ``LabelContrastMaskGenerator(label_sets=[[487, 561, 721], [891], [10,
    102, 956], [891]], mode='per_set')`` with garment label 636.

    Args:
        label_sets (Sequence[Sequence[int]], optional): sets of unrelated
            labels. ``None``: one set of all labels other than the
            garment's. Labels equal to the garment label are dropped from
            the sets (and then-empty sets too).
        mode (str): ``'per_set'`` (the reference: one mask per set, one
            transfer per mask) or ``'mean'`` (mmssl's default: one mask
            from the mean of the sets' z-score maps, one transfer). The
            mean of z-maps is not standardised again, so its spread shrinks
            when the sets disagree and the fixed threshold keeps more
            pixels; with a single set both modes give the same mask.
        threshold (float): z-score threshold (reference -0.2).
        mask_index (int): step index of the mask, of 200 (64).
        draws (int): noise draws whose score maps are averaged (and
            standardised again) per set before the threshold (1 = the
            reference).
        source (str): what the UNet sees at the mask step:
            ``'trajectory'`` (the reference) the clean estimate reached by
            denoising the noised garment from the start step;
            ``'noised'`` (DiffEdit-like) the garment noised directly to the
            mask step, no denoising run.
        contrast (str): ``'mean'`` (the reference) or ``'per_label'``, see
            :func:`mmssl.models.diffusion.label_contrast_score`.
        smooth (int): odd box filter of the score maps (1 = off, the
            reference).
        clean_kernel (int): morphological opening / closing size (mmssl's
            default 3; 1 = off, as the reference).
        clip_x0 (bool): clip the fed-back estimate inside the posterior
            means (the reference clips for its first two sets, not for the
            last two). False.
        init_cfg (dict, optional): mmengine initialisation config.
    """

    def __init__(self,
                 label_sets: Optional[Sequence[Sequence[int]]] = None,
                 mode: str = 'mean',
                 threshold: float = -0.2,
                 mask_index: int = 64,
                 draws: int = 1,
                 source: str = 'trajectory',
                 contrast: str = 'mean',
                 smooth: int = 1,
                 clean_kernel: int = 3,
                 clip_x0: bool = False,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        name = type(self).__name__
        for key, value, allowed in (('mode', mode, ('mean', 'per_set')),
                                    ('source', source,
                                     ('trajectory',
                                      'noised')), ('contrast', contrast,
                                                   ('mean', 'per_label'))):
            check_choice(value, key, name, allowed)
        check_int(draws, 'draws', name)
        check_int(mask_index, 'mask_index', name, minimum=0)
        for key, k in (('smooth', smooth), ('clean_kernel', clean_kernel)):
            check_int(k, key, name, minimum=1)
            if k % 2 == 0:
                raise ValueError(f'{name}: {key} must be odd, got {k}')
        if label_sets is not None and (not label_sets
                                       or any(len(s) == 0
                                              for s in label_sets)):
            raise ValueError(f'{name}: label_sets needs non-empty sets of '
                             'labels, or None for "all other labels"')
        self.label_sets = None if label_sets is None else [[int(y) for y in s]
                                                           for s in label_sets]
        self.mode = mode
        self.threshold = float(threshold)
        self.mask_index = int(mask_index)
        self.draws = int(draws)
        self.source = source
        self.contrast = contrast
        self.smooth = int(smooth)
        self.clean_kernel = int(clean_kernel)
        self.clip_x0 = bool(clip_x0)

    def check_labels(self, num_classes: int) -> None:
        """Raise ``ValueError`` when a label lies outside the UNet's."""
        bad = sorted({
            y
            for s in self.label_sets or []
            for y in s if not 0 <= y < num_classes
        })
        if bad:
            raise ValueError(f'{type(self).__name__}: labels {bad} outside '
                             f'[0, {num_classes}) of the diffusion model')

    def sets_for(self, garment_label: int,
                 num_classes: int) -> List[List[int]]:
        """The label sets used for a garment of class ``garment_label``."""
        if self.label_sets is None:
            sets = [[y for y in range(num_classes) if y != garment_label]]
        else:
            sets = [[y for y in s if y != garment_label]
                    for s in self.label_sets]
            sets = [s for s in sets if s]
        if not sets:
            raise ValueError(f'no mask label set is left for garment label '
                             f'{garment_label}; add other labels to '
                             'label_sets')
        return sets

    def num_model_steps(self, sampler) -> int:
        """Denoising steps of one :meth:`generate` (for progress bars)."""
        if self.source == 'noised':
            return 0
        s = sampler.schedule
        index = min(s.scale(self.mask_index), s.start)
        return (s.start - index + s.resample - 1) * self.draws

    # -- the run ----------------------------------------------------------
    def _label_means(self, sampler, x: torch.Tensor, index: int,
                     labels: Sequence[int]) -> List[torch.Tensor]:
        """Posterior means (B, C, H, W) of ``x`` at step ``index`` under
        each label, from one batched UNet call."""
        s, B = sampler.schedule, x.shape[0]
        xs = x.repeat(len(labels), 1, 1, 1)  # label-major: [x] * L
        y = torch.tensor(list(labels)).repeat_interleave(B)
        eps, var = sampler.eps(xs, index, y)
        x0 = predict_x0(xs, eps, s.alpha(index))
        if self.clip_x0:
            x0 = x0.clamp(-1, 1)
        mean = ddpm_posterior(x0, xs, s.alpha(index), s.alpha(index - 1),
                              var)[0]
        return list(mean.split(B))

    def _contrast_scores(self, sampler, x: torch.Tensor, index: int,
                         garment_label: int,
                         sets: List[List[int]]) -> List[torch.Tensor]:
        """Score maps (B, H, W) of ``x`` at step ``index``, one per set:
        the garment label against the set's labels."""
        means = self._label_means(sampler, x, index, [garment_label] +
                                  [y for s in sets for y in s])
        mu_ref, k, scores = means[0], 1, []
        for labels in sets:
            scores.append(
                label_contrast_score(mu_ref, means[k:k + len(labels)],
                                     self.contrast))
            k += len(labels)
        return scores

    def _draw(self, sampler, garment: torch.Tensor, garment_label: int,
              sets: List[List[int]], generator: Optional[torch.Generator],
              progress: Optional[Callable[[], None]]) -> List[torch.Tensor]:
        """Score maps (B, H, W) of one noise draw, one per label set."""
        s = sampler.schedule
        index = min(s.scale(self.mask_index), s.start)
        if self.source == 'noised':
            return self._contrast_scores(
                sampler, s.add_noise(garment, index, generator), index,
                garment_label, sets)
        x = s.add_noise(garment, s.start, generator)
        for i in range(s.start, index, -1):
            x, _ = sampler.resampled_step(x, i, garment_label, generator, None,
                                          progress)
        # the clean estimate x0-hat at the mask step, fed back at that step
        eps, _ = sampler.eps(x, index, garment_label)
        x0 = predict_x0(x, eps, s.alpha(index))
        return self._contrast_scores(sampler, x0, index, garment_label, sets)

    def _to_mask(self, z: torch.Tensor) -> torch.Tensor:
        return clean_mask(
            threshold_mask(smooth_score(z, self.smooth), self.threshold),
            self.clean_kernel)

    @torch.no_grad()
    def generate(
            self,
            sampler,
            garment: torch.Tensor,
            garment_label: int,
            generator: Optional[torch.Generator] = None,
            progress: Optional[Callable[[],
                                        None]] = None) -> Dict[str, object]:
        """Automatic garment mask of ``garment`` (class ``garment_label``).

        The unguided run from the start step down to the mask step (with
        ``source='noised'``: the noising of the garment to the mask step)
        is done ``draws`` times with fresh noise, ``progress`` being called
        at each denoising step; per label set the z-score maps of the draws
        are averaged and standardised again; then the optional smoothing,
        the threshold and the cleaning.

        Args:
            sampler (DiffFashionEditor): gives ``schedule``, ``eps`` and
                ``resampled_step``.
            garment (Tensor): (B, 3, H, W) garment images in [-1, 1].
            garment_label (int): the garment's class.
            generator (torch.Generator, optional): for the noise.
            progress (callable, optional): called once per model step.

        Returns:
            dict: ``mask`` (B, 1, H, W) float in {0, 1} (from ``score``),
            ``score`` (B, H, W) the mean of the sets' z-score maps (not
            standardised again), ``candidates`` list of (B, H, W) bool
            masks, one per label set, and ``set_scores`` the list of the
            sets' (B, H, W) maps.

        Raises:
            MaskError: the mask is empty for some image (``mode='per_set'``:
                some candidate mask is empty).
        """
        sets = self.sets_for(garment_label, sampler.num_classes)
        draws = [
            self._draw(sampler, garment, garment_label, sets, generator,
                       progress) for _ in range(self.draws)
        ]
        set_scores = [
            standardise(torch.stack(maps).mean(0))
            if len(maps) > 1 else maps[0] for maps in zip(*draws)
        ]
        candidates = [self._to_mask(z) for z in set_scores]
        score = torch.stack(set_scores).mean(0)
        mask = self._to_mask(score)
        check = candidates if self.mode == 'per_set' else [mask]
        for k, m in enumerate(check):
            empty = [b for b in range(m.shape[0]) if not m[b].any()]
            if empty:
                which = f' of label set {k}' if self.mode == 'per_set' \
                    else ''
                raise MaskError(
                    f'the garment mask{which} is empty for image(s) '
                    f'{empty}; lower the mask threshold, change the label '
                    'sets, or pass a mask')
        return dict(
            mask=mask.unsqueeze(1).float(),
            score=score,
            candidates=candidates,
            set_scores=set_scores)
