# Copyright (c) mmssl contributors. All rights reserved.
"""What a config's data pipeline gives the model, as one picture.

:func:`sample_tiles` turns one
packed sample (``dict(inputs=..., data_samples=...)``) into picture tiles:
every view of a multi-view pipeline (SimCLR's and DenseCL's two crops), the
class name (or the caption of an image-text pair) under each, ground-truth
boxes drawn on detection samples and the patches of a pipeline mask
(``data_samples.mask``, 1 = masked) greyed out, one tile per mask when the
pipeline makes several (data2vec 2.0's clones); :func:`browse_grid` lays
the samples out one row each.
"""
import textwrap
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np
import torch
from PIL import Image

from .annotate import caption, draw_boxes, labelled_rows
from .grids import grey_out, label_palette

__all__ = ['image_tile', 'sample_tiles', 'browse_grid', 'auto_scale']


def image_tile(image: torch.Tensor, bgr: bool = True) -> Image.Image:
    """A (C, H, W) image tensor as an RGB Pillow picture.

    Args:
        image (Tensor): (C, H, W) with C = 1 or 3; uint8 as packed by
            OpenMMLab's pipelines, or float (stretched to 0..255 from its
            own range).
        bgr (bool): The channels are B, G, R (OpenMMLab's image loaders
            write them so; the data preprocessor's ``to_rgb`` /
            ``bgr_to_rgb`` swaps them for the model). Defaults to True.

    Raises:
        ValueError: not a (C, H, W) image with 1 or 3 channels.
    """
    if not isinstance(image, torch.Tensor) or image.dim() != 3 \
            or image.shape[0] not in (1, 3):
        shape = tuple(image.shape) if isinstance(image, torch.Tensor) \
            else type(image).__name__
        raise ValueError(
            f'a packed input of shape {shape} is not a (C, H, W) image with '
            '1 or 3 channels: only image pipelines can be browsed (text '
            'and speech samples are token ids and waveforms)')
    x = image.detach().cpu()
    if x.dtype != torch.uint8:
        x = x.float()
        lo, hi = x.min(), x.max()
        x = ((x - lo) / (hi - lo).clamp_min(1e-12) * 255).round().byte()
    if x.shape[0] == 1:
        x = x.expand(3, -1, -1)
    elif bgr:
        x = x.flip(0)
    return Image.fromarray(x.permute(1, 2, 0).contiguous().numpy())


def _views(inputs: Any) -> List[torch.Tensor]:
    if isinstance(inputs, (list, tuple)):
        return list(inputs)
    return [inputs]


def auto_scale(height: int, target: int = 96) -> int:
    """The smallest whole enlargement that makes ``height`` pixels at
    least ``target`` (1 for images already that tall)."""
    return max(1, -(-target // max(int(height), 1)))


def _label(data_sample: Any, classes: Optional[Sequence[str]]) -> str:
    text = getattr(data_sample, 'caption', None)
    if isinstance(text, str) and text:
        return text
    label = getattr(data_sample, 'gt_label', None)
    if label is None:
        return ''
    names = [
        str(classes[k])
        if classes is not None and 0 <= k < len(classes) else str(k)
        for k in torch.as_tensor(label).reshape(-1).tolist()
    ]
    return ', '.join(names)


def _boxes(data_sample: Any) -> Tuple[np.ndarray, np.ndarray]:
    inst = getattr(data_sample, 'gt_instances', None)
    bboxes = getattr(inst, 'bboxes', None)
    if bboxes is None:
        return np.zeros((0, 4)), np.zeros((0, ), dtype=int)
    bboxes = getattr(bboxes, 'tensor', bboxes)
    labels = getattr(inst, 'labels', torch.zeros(len(bboxes)))
    return (torch.as_tensor(bboxes).float().reshape(-1, 4).numpy(),
            torch.as_tensor(labels).long().reshape(-1).numpy())


def _masks(mask: Any) -> List[Optional[np.ndarray]]:
    """A pipeline mask as a list of (h, w) masks: [None] without one, one
    per clone for an (M, h, w) mask."""
    if mask is None:
        return [None]
    mask = torch.as_tensor(mask).bool().cpu().numpy()
    if mask.ndim == 2:
        return [mask]
    if mask.ndim == 3:
        return list(mask)
    raise ValueError('data_samples.mask must be an (h, w) patch mask or '
                     f'(M, h, w) masks, got shape {tuple(mask.shape)}')


def _grey_mask(tile: Image.Image, mask: np.ndarray) -> Image.Image:
    """Grey out the cells of an (h, w) patch mask (1 = masked) on a tile
    whose sides are multiples of the mask's."""
    h, w = mask.shape
    if tile.height % h or tile.width % w:
        raise ValueError(f'a {h}x{w} patch mask does not divide the '
                         f'{tile.height}x{tile.width} image')
    pixels = mask.repeat(tile.height // h, 0).repeat(tile.width // w, 1)
    return Image.fromarray(grey_out(np.asarray(tile)[None], pixels[None])[0])


def sample_tiles(sample: dict,
                 classes: Optional[Sequence[str]] = None,
                 bgr: bool = True,
                 scale: Optional[int] = 1) -> List[Image.Image]:
    """The picture tiles of one packed sample, one per view.

    Args:
        sample (dict): ``dict(inputs=..., data_samples=...)`` as a data
            set returns it: ``inputs`` one (C, H, W) image or a list of
            views.
        classes (Sequence[str], optional): Class names for ``gt_label``
            captions and box names (the data set's ``metainfo['classes']``).
        bgr (bool): See :func:`image_tile`. Defaults to True.
        scale (int, optional): Enlarge each tile this many times (nearest),
            for small images; ``None`` enlarges to at least 96 pixels
            (:func:`auto_scale`). Defaults to 1.

    Returns:
        list[PIL.Image.Image]: one tile per view, or per view and mask when
        ``data_samples.mask`` is (M, h, w); a caption strip under each with
        the sample's ``caption`` text, else the class names of its
        ``gt_label`` (every label of a multi-label sample).
    """
    if not isinstance(sample, dict) or 'inputs' not in sample:
        raise ValueError('a packed sample is a dict with `inputs`, got '
                         f'{type(sample).__name__}')
    data_sample = sample.get('data_samples')
    label = _label(data_sample, classes)
    boxes, box_labels = _boxes(data_sample)
    masks = _masks(getattr(data_sample, 'mask', None))
    # one palette for the whole data set: the same class, the same colour
    palette = label_palette(
        max(len(classes or ()),
            int(box_labels.max(initial=0)) + 1) + 1)
    tiles = []
    for view, mask in ((v, m) for v in _views(sample['inputs'])
                       for m in masks):
        tile = image_tile(view, bgr)
        if mask is not None:
            tile = _grey_mask(tile, mask)
        scale = scale or auto_scale(tile.height)
        if scale != 1:
            tile = tile.resize((tile.width * scale, tile.height * scale),
                               Image.NEAREST)
        if len(boxes):
            xywh = [(x1 * scale, y1 * scale, (x2 - x1) * scale,
                     (y2 - y1) * scale) for x1, y1, x2, y2 in boxes]
            names = [
                str(classes[k])
                if classes is not None and 0 <= k < len(classes) else str(k)
                for k in box_labels
            ]
            colours = [
                tuple(int(c) for c in palette[k + 1]) for k in box_labels
            ]
            draw_boxes(tile, xywh, names, colours)
        if label:
            text = '\n'.join(textwrap.wrap(label, max(tile.width // 6, 4)))
            tile = caption(
                tile, text, 14 * (text.count('\n') + 1), max_chars=len(text))
        tiles.append(tile)
    return tiles


def browse_grid(samples: Sequence[Tuple[str, dict]],
                classes: Optional[Sequence[str]] = None,
                bgr: bool = True,
                scale: Optional[int] = 1) -> Image.Image:
    """One row per sample, its views side by side, named on the left.

    Args:
        samples (Sequence[tuple[str, dict]]): ``(row name, packed sample)``.
        classes, bgr, scale: See :func:`sample_tiles`.
    """
    return labelled_rows([(name, sample_tiles(s, classes, bgr, scale))
                          for name, s in samples],
                         header=48)
