# Copyright (c) mmssl contributors. All rights reserved.
"""Pictures made of pictures: image grids, mask overlays, label colours.

Two kinds of images meet here:

* uint8 pictures as numpy arrays, (H, W, 3) each or (B, H, W, 3) batches,
  which is what ``mmcv.imwrite`` and the visualizer backends take
  (:func:`tile_images`, :func:`reconstruction_grid`,
  :func:`prediction_grid`);
* float tensors in [-1, 1], channels first, DiffFashion's images in memory
  (:func:`make_grid`), which :func:`mmssl.utils.image_io.write_outputs`
  saves.

Gaps between cells are white in both.
"""
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import torch

__all__ = [
    'tile_images', 'make_grid', 'denormalize_images', 'grey_out',
    'reconstruction_grid', 'label_palette', 'prediction_grid'
]


def tile_images(rows: Sequence[Sequence[np.ndarray]],
                pad: int = 2,
                border: bool = False,
                fill: int = 255) -> np.ndarray:
    """Lay out (H, W, C) uint8 cells in rows, with ``pad`` pixels between.

    Args:
        rows (Sequence[Sequence[np.ndarray]]): One list of cells per row;
            every row has the same number of cells and every cell the same
            shape.
        pad (int): Pixels between neighbouring cells. Defaults to 2.
        border (bool): Also put ``pad`` pixels around the whole grid.
            Defaults to False.
        fill (int): Value of the gaps. Defaults to 255 (white).

    Returns:
        np.ndarray: (n * H + gaps, m * W + gaps, C) uint8, for n rows of m
        cells.
    """
    if not rows or not rows[0]:
        raise ValueError('tile_images needs at least one row of cells')
    cols = len(rows[0])
    shape = np.asarray(rows[0][0]).shape
    if any(len(row) != cols for row in rows):
        raise ValueError('tile_images: the rows have different numbers of '
                         f'cells: {[len(row) for row in rows]}')
    if any(np.asarray(cell).shape != shape for row in rows for cell in row):
        raise ValueError('tile_images: the cells differ in shape; every '
                         f'cell must be {shape}')
    h, w = shape[:2]
    edge = pad if border else 0
    height = len(rows) * (h + pad) - pad + 2 * edge
    width = cols * (w + pad) - pad + 2 * edge
    grid = np.full((height, width) + tuple(shape[2:]), fill, dtype=np.uint8)
    for r, row in enumerate(rows):
        for c, cell in enumerate(row):
            y, x = edge + r * (h + pad), edge + c * (w + pad)
            grid[y:y + h, x:x + w] = cell
    return grid


def _row(images: Sequence[torch.Tensor], pad: int) -> torch.Tensor:
    cells = [im.expand(3, -1, -1) if im.shape[0] == 1 else im for im in images]
    gap = torch.ones(3, cells[0].shape[1], pad)
    out = []
    for i, im in enumerate(cells):
        if i:
            out.append(gap)
        out.append(im.detach().float().cpu())
    return torch.cat(out, dim=2)


def make_grid(images: Union[Sequence[torch.Tensor],
                            Sequence[Sequence[torch.Tensor]]],
              pad: int = 2) -> torch.Tensor:
    """A row (or rows) of (3 or 1, H, W) images in [-1, 1] with white gaps.

    Args:
        images: The images of one row, or a list of rows (each a list of
            images; all rows equally wide).
        pad (int): Pixels between neighbouring images and rows. Defaults
            to 2.

    Returns:
        Tensor: (3, H, n * W + (n - 1) * pad) for one row of n images; rows
        are stacked with ``pad`` white rows between them.
    """
    if isinstance(images[0], torch.Tensor):
        return _row(images, pad)
    rows = [_row(row, pad) for row in images]
    width = rows[0].shape[2]
    if any(row.shape[2] != width for row in rows):
        raise ValueError('make_grid: the rows differ in width: '
                         f'{[row.shape[2] for row in rows]}')
    out: List[torch.Tensor] = []
    for row in rows:
        if out:
            out.append(torch.ones(3, pad, width))
        out.append(row)
    return torch.cat(out, dim=1)


def denormalize_images(x: torch.Tensor,
                       mean: Optional[torch.Tensor] = None,
                       std: Optional[torch.Tensor] = None) -> np.ndarray:
    """(B, C, H, W) model inputs back to (B, H, W, C) uint8 pictures.

    Args:
        x (Tensor): Normalised images, as a data preprocessor makes them.
        mean (Tensor, optional): The preprocessor's (C, 1, 1) mean.
        std (Tensor, optional): The preprocessor's (C, 1, 1) std. Without
            ``mean`` and ``std`` the values are taken to lie in [0, 1].

    Returns:
        np.ndarray: (B, H, W, C) uint8, clipped to [0, 255].
    """
    x = x.detach().float()
    if mean is not None and std is not None:
        x = x * std.to(x.device) + mean.to(x.device)
    else:
        x = x * 255
    return x.clamp(0, 255).byte().permute(0, 2, 3, 1).cpu().numpy()


def grey_out(images: np.ndarray,
             mask: np.ndarray,
             value: int = 127) -> np.ndarray:
    """A copy of (B, H, W, C) pictures with the masked pixels set to grey.

    Args:
        images (np.ndarray): (B, H, W, C) uint8.
        mask (np.ndarray): (B, H, W) bool, True = removed (painted).
        value (int): The grey. Defaults to 127.
    """
    out = np.array(images, copy=True)
    out[np.asarray(mask, dtype=bool)] = value
    return out


def reconstruction_grid(inputs: torch.Tensor,
                        mask: torch.Tensor,
                        reconstruction: torch.Tensor,
                        pasted: torch.Tensor,
                        mean: Optional[torch.Tensor] = None,
                        std: Optional[torch.Tensor] = None,
                        pad: int = 2) -> np.ndarray:
    """Masked-image modelling at a glance: one row per image, four columns.

    The columns are the original, the masked input (removed patches grey),
    the reconstruction and the reconstruction with the visible patches
    pasted back.

    Args:
        inputs (Tensor): (B, C, H, W) normalised images.
        mask (Tensor): (B, 1, H, W) pixel mask, 1 = removed.
        reconstruction (Tensor): (B, C, H, W), normalised like ``inputs``.
        pasted (Tensor): (B, C, H, W), normalised like ``inputs``.
        mean, std (Tensor, optional): See :func:`denormalize_images`.
        pad (int): Gap and border in pixels. Defaults to 2.

    Returns:
        np.ndarray: (B * (H + pad) + pad, 4 * (W + pad) + pad, C) uint8,
        in the channel order of ``inputs``.
    """
    original = denormalize_images(inputs, mean, std)
    masked = grey_out(original, mask[:, 0].bool().cpu().numpy())
    columns = [
        original, masked,
        denormalize_images(reconstruction, mean, std),
        denormalize_images(pasted, mean, std)
    ]
    rows = [[col[b] for col in columns] for b in range(len(original))]
    return tile_images(rows, pad=pad, border=True)


def label_palette(num_classes: int, seed: int = 3) -> np.ndarray:
    """(num_classes, 3) uint8 colours; class 0 (background) is black.

    The colours are drawn from ``seed``, so every picture of a run, and of
    runs with the same number of classes, uses the same ones.
    """
    rng = np.random.default_rng(seed)
    colours = rng.integers(64, 256, (num_classes, 3)).astype(np.uint8)
    colours[0] = 0
    return colours


def prediction_grid(images: np.ndarray,
                    labels: np.ndarray,
                    predictions: Dict[str, np.ndarray],
                    num_classes: int,
                    scale: int = 2) -> np.ndarray:
    """One row per image: the image, its labels, then each prediction.

    Args:
        images (np.ndarray): (n, H, W, 3) uint8 BGR images.
        labels (np.ndarray): (n, H, W) labels (255: ignored, shown white).
        predictions (dict[str, np.ndarray]): Column name -> (n, H, W)
            predicted classes, in column order.
        num_classes (int): Number of classes (for the colours).
        scale (int): Nearest-neighbour upscaling. Defaults to 2.

    Returns:
        np.ndarray: (n * H * scale, (2 + len(predictions)) * W * scale, 3)
        uint8 BGR picture, with a 2-pixel white gap between cells.
    """
    palette = np.concatenate([
        label_palette(num_classes),
        np.full((256 - num_classes, 3), 255, np.uint8)
    ])
    rows = []
    for i in range(len(images)):
        cells = [images[i], palette[labels[i]]]
        cells += [
            palette[np.asarray(p[i]).astype(np.int64)]
            for p in predictions.values()
        ]
        rows.append([c.repeat(scale, 0).repeat(scale, 1) for c in cells])
    return tile_images(rows, pad=2)
