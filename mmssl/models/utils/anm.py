# Copyright (c) mmssl contributors. All rights reserved.
"""Adversarial noisy masking (ANM/SANM, Tu et al., CVPR 2023).

Per sample: the feature activation map gives the most (and least) activated
pixel; a rectangle is erased there whose area grows as the label quality
``w`` falls (``rho = U(0.02, 0.07) + 0.03 (1 - w)``); the soft target is
flattened by ``rho``. Everything is vectorised over the batch and every
random draw takes an optional ``torch.Generator``; the draws are made on
the generator's device (the CPU by default) and moved to the data, so a
seed gives the same masks on any device.

Deviations from the reference code (``attention_erase_map``), on purpose:

- no retry loop: a rectangle that would overflow the image is shifted (and,
  if larger than the image, shrunk) to fit, so each sample is softened
  exactly once (the reference softens again on every retry);
- the activation map is min-max scaled to [0, 1] in floating point; the
  reference quantises to uint8 first, which only creates ties at the peak;
- ``anchor='center'`` (the default) centres the rectangle on the peak as
  in the paper; ``'corner'`` puts its top-left corner there as the
  reference code does;
- :func:`soften_labels` clamps ``rho`` to the largest target entry, so no
  entry becomes negative.

Boxes are ``(top, left, bottom, right)`` long tensors, bottom and right
exclusive: the box covers rows ``top:bottom`` and columns ``left:right``.
"""
from typing import Dict, NamedTuple, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule

from mmssl.registry import MODELS
from mmssl.utils.validation import check_choice, check_float

__all__ = [
    'activation_map', 'peak_locations', 'mask_ratio', 'box_sizes',
    'place_boxes', 'rectangles', 'box_mask', 'erase', 'soften_labels',
    'ANMOutput', 'AdversarialNoisyMasking'
]

_MODES = ('corner', 'center')
_FILLS = ('uniform_const', 'zero')
_LOCATIONS = ('max', 'min')


def _rand(shape: Tuple[int, ...], generator: Optional[torch.Generator],
          device: torch.device) -> torch.Tensor:
    """U(0, 1) float32 drawn on the generator's device (CPU without one),
    returned on ``device``."""
    where = generator.device if generator is not None else 'cpu'
    return torch.rand(shape, generator=generator, device=where).to(device)


def _hw(image_hw: Sequence[int]) -> Tuple[int, int]:
    if len(image_hw) != 2:
        raise ValueError(f'image_hw must be (H, W), got {image_hw!r}')
    return int(image_hw[0]), int(image_hw[1])


def activation_map(feats: torch.Tensor,
                   image_hw: Optional[Sequence[int]] = None,
                   eps: float = 1e-12) -> torch.Tensor:
    """Feature activation map of ANM (spec step 5).

    ``A = sum_c F_c^2``, L2-normalised over the positions of each sample,
    resized to the image size (bilinear, ``align_corners=False``, like
    ``cv2.resize``), min-max scaled per sample to [0, 1] (the reference
    scales to 0..255). A constant map becomes all zeros.

    Args:
        feats (Tensor): (B, C, h, w) feature map (no gradient is taken).
        image_hw (tuple[int, int], optional): (H, W) to resize to; None
            keeps (h, w).
        eps (float): guard of the divisions.

    Returns:
        Tensor: (B, H, W) float32 in [0, 1].
    """
    if feats.dim() != 4:
        raise ValueError('activation_map: feats must be (B, C, h, w), got '
                         f'shape {tuple(feats.shape)}')
    a = feats.detach().float().pow(2).sum(1)
    a = F.normalize(a.flatten(1), dim=1, eps=eps).view_as(a)
    if image_hw is not None and tuple(a.shape[-2:]) != _hw(image_hw):
        a = F.interpolate(
            a[:, None],
            size=_hw(image_hw),
            mode='bilinear',
            align_corners=False)[:, 0]
    flat = a.flatten(1)
    lo = flat.min(1)[0].view(-1, 1, 1)
    hi = flat.max(1)[0].view(-1, 1, 1)
    return (a - lo) / (hi - lo + eps)


def peak_locations(amap: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Arg-max and arg-min of each map (the first in raster order on ties).

    Args:
        amap (Tensor): (B, H, W).

    Returns:
        tuple[Tensor, Tensor]: ``(max_rc, min_rc)``, each (B, 2) long
        ``(row, col)``.
    """
    B, H, W = amap.shape
    flat = amap.flatten(1)

    def rc(idx: torch.Tensor) -> torch.Tensor:
        return torch.stack([idx // W, idx % W], dim=1)

    return rc(flat.argmax(1)), rc(flat.argmin(1))


def mask_ratio(quality: torch.Tensor,
               base: Tuple[float, float] = (0.02, 0.07),
               coef: float = 0.03,
               generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Masking ratio per sample, ``rho_i = U(base) + coef * (1 - w_i)``.

    Args:
        quality (Tensor): (B,) or (B, 1) label quality ``w`` in [0, 1] (the
            GMM clean probability).
        base (tuple[float, float]): range of the uniform part.
        coef (float): weight of the quality term.
        generator (torch.Generator, optional): source of the draw.

    Returns:
        Tensor: (B,) float32, fraction of the image area (the erased area
        is ``area_factor * rho``, see :func:`box_sizes`).
    """
    w = quality.detach().float().reshape(-1)
    u = _rand((w.numel(), ), generator, w.device)
    return base[0] + (base[1] - base[0]) * u + coef * (1 - w)


def box_sizes(rho: torch.Tensor,
              image_hw: Sequence[int],
              area_factor: float = 0.5,
              aspect: Tuple[float, float] = (0.8, 1.25),
              generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Rectangle sizes: aspect ``a ~ U(aspect)``,
    ``h = round(sqrt(area_factor * rho * H * W * a))``,
    ``w = round(sqrt(area_factor * rho * H * W / a))``, clamped to the
    image (the reference redraws instead).

    Returns:
        Tensor: (B, 2) long ``(h, w)``.
    """
    H, W = _hw(image_hw)
    rho = rho.detach().float().reshape(-1)
    a = aspect[0] + (aspect[1] - aspect[0]) * _rand(
        (rho.numel(), ), generator, rho.device)
    area = area_factor * rho.clamp(min=0) * H * W
    h = torch.sqrt(area * a).round().long().clamp(0, H)
    w = torch.sqrt(area / a).round().long().clamp(0, W)
    return torch.stack([h, w], dim=1)


def place_boxes(sizes: torch.Tensor,
                anchor_rc: torch.Tensor,
                image_hw: Sequence[int],
                mode: str = 'center') -> torch.Tensor:
    """Put rectangles of ``sizes`` at ``anchor_rc``, inside the image.

    ``'corner'``: top-left corner at the anchor (the reference code);
    ``'center'``: centred on it (the paper; the top-left is
    ``anchor - size // 2``). A box that overflows is shifted back inside,
    so a corner box starts at the anchor unless clamped and a centre box
    always contains the anchor (when non-empty).

    Args:
        sizes (Tensor): (B, 2) long ``(h, w)``, each <= the image side.
        anchor_rc (Tensor): (B, 2) long ``(row, col)``.
        image_hw (tuple[int, int]): (H, W).
        mode (str): ``'corner'`` or ``'center'``.

    Returns:
        Tensor: (B, 4) long ``(top, left, bottom, right)``.
    """
    check_choice(mode, 'mode', 'place_boxes', _MODES)
    H, W = _hw(image_hw)
    hw = sizes.long()
    start = anchor_rc.long().to(hw.device)
    if mode == 'center':
        start = start - hw // 2
    limit = torch.tensor([H, W], device=hw.device) - hw
    start = torch.minimum(start.clamp(min=0), limit)
    return torch.cat([start, start + hw], dim=1)


def rectangles(rho: torch.Tensor,
               image_hw: Sequence[int],
               area_factor: float = 0.5,
               aspect: Tuple[float, float] = (0.8, 1.25),
               anchor_rc: Optional[torch.Tensor] = None,
               mode: str = 'center',
               generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """:func:`box_sizes` placed by :func:`place_boxes`.

    Args:
        rho (Tensor): (B,) masking ratios.
        image_hw (tuple[int, int]): (H, W).
        area_factor (float): erased area / (rho * H * W). Defaults to 0.5
            (the reference's).
        aspect (tuple[float, float]): range of the aspect ratio h / w.
        anchor_rc (Tensor, optional): (B, 2) long anchors; None draws them
            uniformly over the image (after the sizes).
        mode (str): ``'corner'`` or ``'center'``.
        generator (torch.Generator, optional): source of the draws.

    Returns:
        Tensor: (B, 4) long ``(top, left, bottom, right)``.
    """
    H, W = _hw(image_hw)
    sizes = box_sizes(rho, (H, W), area_factor, aspect, generator)
    if anchor_rc is None:
        u = _rand((sizes.shape[0], 2), generator, sizes.device)
        anchor_rc = (u * torch.tensor([H, W], device=sizes.device)).long()
    return place_boxes(sizes, anchor_rc, (H, W), mode)


def box_mask(boxes: torch.Tensor, image_hw: Sequence[int]) -> torch.Tensor:
    """(B, H, W) bool, True inside each sample's box."""
    H, W = _hw(image_hw)
    rows = torch.arange(H, device=boxes.device).view(1, H, 1)
    cols = torch.arange(W, device=boxes.device).view(1, 1, W)
    t, left, b, r = (boxes[:, i].view(-1, 1, 1) for i in range(4))
    return (rows >= t) & (rows < b) & (cols >= left) & (cols < r)


def erase(images: torch.Tensor,
          boxes: torch.Tensor,
          fill: str = 'uniform_const',
          generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Fill each sample's box, leaving the rest untouched.

    Args:
        images (Tensor): (B, C, H, W), e.g. normalised inputs.
        boxes (Tensor): (B, 4) long ``(top, left, bottom, right)``.
        fill (str): ``'uniform_const'``: one constant per sample and channel
            drawn from U(0, 1) (the reference's, in normalised-input space);
            ``'zero'``: zeros.
        generator (torch.Generator, optional): source of the fill values.

    Returns:
        Tensor: a new (B, C, H, W) tensor.
    """
    check_choice(fill, 'fill', 'erase', _FILLS)
    B, C, H, W = images.shape
    inside = box_mask(boxes.to(images.device), (H, W))[:, None]
    if fill == 'uniform_const':
        value = _rand((B, C), generator, images.device)
    else:
        value = images.new_zeros(B, C)
    value = value.to(images.dtype).view(B, C, 1, 1)
    return torch.where(inside, value, images)


def soften_labels(target: torch.Tensor, rho) -> torch.Tensor:
    """Flatten soft targets by the masking ratio (spec section 3).

    ``y[c] - rho`` for the largest entry (the first on ties), ``y[c] +
    rho / (C - 1)`` for the others. ``rho`` is clamped to [0, largest
    entry] per sample, so no entry becomes negative and each row keeps its
    sum (1 for a distribution).

    Args:
        target (Tensor): (B, C) one-hot or soft targets, C >= 2.
        rho (Tensor | float): (B,) or a scalar.

    Returns:
        Tensor: (B, C) softened targets (a new tensor).
    """
    if target.dim() != 2 or target.shape[1] < 2:
        raise ValueError('soften_labels: target must be (B, C) with C >= 2, '
                         f'got shape {tuple(target.shape)}')
    B, C = target.shape
    rho = torch.as_tensor(rho, dtype=target.dtype, device=target.device)
    rho = rho.reshape(-1).expand(B) if rho.numel() == 1 else rho.reshape(B)
    top, idx = target.max(1)
    rho = torch.minimum(rho.clamp(min=0), top).unsqueeze(1)
    out = target + rho / (C - 1)
    return out.scatter(1, idx[:, None], (top[:, None] - rho))


class ANMOutput(NamedTuple):
    """What :class:`AdversarialNoisyMasking` returns.

    Attributes:
        images (dict[str, Tensor]): location (``'max'``/``'min'``) ->
            (B, C, H, W) masked images.
        boxes (dict[str, Tensor]): location -> (B, 4) long boxes.
        peaks (dict[str, Tensor]): location -> (B, 2) long ``(row, col)``.
        rho (Tensor): (B,) masking ratios.
        targets (Tensor | None): (B, K) softened targets (shared by all
            locations), None when no targets were given.
    """
    images: Dict[str, torch.Tensor]
    boxes: Dict[str, torch.Tensor]
    peaks: Dict[str, torch.Tensor]
    rho: torch.Tensor
    targets: Optional[torch.Tensor]


@MODELS.register_module()
class AdversarialNoisyMasking(BaseModule):
    """Label-quality-guided adversarial masking (the AMG and NLR parts of
    SANM), no parameters.

    For each sample: ``rho`` from :func:`mask_ratio`; one rectangle size
    (:func:`box_sizes`) used at every location; the rectangle placed at the
    activation peak of each of ``locations`` (:func:`activation_map`,
    :func:`peak_locations`, :func:`place_boxes`) and erased
    (:func:`erase`, fresh fill values per location); the targets softened
    once by ``rho`` (:func:`soften_labels`). The draws come, in this order,
    from the generator passed to :meth:`forward`, else from the module's
    own one (``seed``), else from the global CPU generator.

    Args:
        base_ratio (tuple[float, float]): range of the uniform part of
            ``rho``. Defaults to (0.02, 0.07) (CIFAR; Clothing1M code:
            (0.06, 0.13)).
        quality_coef (float): weight of ``1 - w``. Defaults to 0.03.
        area_factor (float): erased area / (rho * H * W). Defaults to 0.5.
        aspect (tuple[float, float]): range of h / w. Defaults to
            (0.8, 1.25).
        anchor (str): ``'center'`` (paper, default) or ``'corner'``
            (reference code).
        locations (Sequence[str]): peaks to mask, ``'max'`` and/or
            ``'min'``. Defaults to ('max', 'min').
        fill (str): ``'uniform_const'`` (default) or ``'zero'``.
        seed (int, optional): seed of the module's own CPU generator. The
            same seed on every process gives every process the same draws.
        init_cfg (dict, optional): unused (no parameters).
    """

    def __init__(self,
                 base_ratio: Tuple[float, float] = (0.02, 0.07),
                 quality_coef: float = 0.03,
                 area_factor: float = 0.5,
                 aspect: Tuple[float, float] = (0.8, 1.25),
                 anchor: str = 'center',
                 locations: Sequence[str] = _LOCATIONS,
                 fill: str = 'uniform_const',
                 seed: Optional[int] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        name = type(self).__name__
        self.base_ratio = self._range(base_ratio, 'base_ratio', 0., 1.)
        self.quality_coef = check_float(
            quality_coef, 'quality_coef', name, low=0., high=1.)
        self.area_factor = check_float(
            area_factor,
            'area_factor',
            name,
            low=0.,
            high=1.,
            inclusive=(False, True))
        self.aspect = self._range(aspect, 'aspect', 0., None, open_low=True)
        self.anchor = check_choice(anchor, 'anchor', name, _MODES)
        locations = tuple(locations)
        if not locations or len(set(locations)) != len(locations):
            raise ValueError(f'{name}: locations must be distinct names of '
                             f'{_LOCATIONS}, got {locations!r}')
        for loc in locations:
            check_choice(loc, 'locations', name, _LOCATIONS)
        self.locations = locations
        self.fill = check_choice(fill, 'fill', name, _FILLS)
        self.generator = None
        if seed is not None:
            self.generator = torch.Generator().manual_seed(int(seed))

    def _range(self,
               value: Sequence[float],
               key: str,
               low: float,
               high: Optional[float],
               open_low: bool = False) -> Tuple[float, float]:
        name = type(self).__name__
        if not isinstance(value, (list, tuple)) or len(value) != 2:
            raise ValueError(f'{name}: {key} must be a (low, high) pair, '
                             f'got {value!r}')
        lo, hi = (
            check_float(
                v,
                key,
                name,
                low=low,
                high=high,
                inclusive=(not open_low, True)) for v in value)
        if lo > hi:
            raise ValueError(f'{name}: {key} must have low <= high, got '
                             f'{value!r}')
        return lo, hi

    def forward(self,
                images: torch.Tensor,
                feats: torch.Tensor,
                quality: torch.Tensor,
                targets: Optional[torch.Tensor] = None,
                generator: Optional[torch.Generator] = None) -> ANMOutput:
        """Mask ``images`` at the activation peaks of ``feats``.

        Args:
            images (Tensor): (B, C, H, W) inputs (normalised).
            feats (Tensor): (B, D, h, w) feature map of the same images,
                e.g. the last backbone stage; used without gradient.
            quality (Tensor): (B,) label quality ``w`` in [0, 1].
            targets (Tensor, optional): (B, K) soft or one-hot targets.
            generator (torch.Generator, optional): overrides the module's.

        Returns:
            ANMOutput: masked images, boxes and peaks per location, ``rho``
            and the softened targets.
        """
        B, _, H, W = images.shape
        name = type(self).__name__
        if feats.shape[0] != B or quality.numel() != B:
            raise ValueError(
                f'{name}: images, feats and quality must have the same batch'
                f' size, got {B}, {feats.shape[0]} and {quality.numel()}')
        gen = generator if generator is not None else self.generator
        with torch.no_grad():
            amap = activation_map(feats, (H, W))
            max_rc, min_rc = peak_locations(amap)
            rho = mask_ratio(
                quality.to(images.device), self.base_ratio, self.quality_coef,
                gen)
            sizes = box_sizes(rho, (H, W), self.area_factor, self.aspect, gen)
        peaks = {'max': max_rc, 'min': min_rc}
        out_images, boxes, used = {}, {}, {}
        for loc in self.locations:
            box = place_boxes(sizes, peaks[loc], (H, W), self.anchor)
            out_images[loc] = erase(images, box, self.fill, gen)
            boxes[loc], used[loc] = box, peaks[loc]
        soft = None if targets is None else soften_labels(targets, rho)
        return ANMOutput(out_images, boxes, used, rho, soft)
