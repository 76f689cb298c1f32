# Copyright (c) mmssl contributors. All rights reserved.
"""Image files to tensors in [-1, 1] and back.

The readers and writers of DiffFashion's inputs (garment, reference, masks)
and outputs (results, masks, grids, ``metrics.json``). Images in memory are
float tensors in [-1, 1], channels first; grids of them are drawn by
:func:`mmssl.visualization.make_grid`.
"""
import json
import os
import os.path as osp
import tempfile
from typing import Dict, List, Union

import numpy as np
import torch

__all__ = [
    'load_fashion_image', 'load_mask_image', 'to_uint8', 'save_image',
    'write_outputs'
]

#: Pillow modes of 16-bit grayscale images (PNG, TIFF)
_MODES_16BIT = ('I;16', 'I;16L', 'I;16B', 'I;16N')


def _to_8bit(img, path: str):
    """An image with more than 8 bits per channel as an 8-bit ``L`` image.

    ``convert('RGB')`` clips such values at 255, which turns a 16-bit
    grayscale image (nearly) all white; here they are scaled instead.
    """
    from PIL import Image
    arr = np.asarray(img)
    if img.mode in _MODES_16BIT:
        top = 65535
    elif img.mode == 'I':  # 16-bit PNGs in older Pillow versions
        if arr.min() < 0 or arr.max() > 65535:
            raise ValueError(
                f'{path}: 32-bit integer pixels (range {arr.min()} .. '
                f'{arr.max()}) cannot be read as an image; save it with 8 or '
                '16 bits per channel')
        top = 65535 if arr.max() > 255 else 255
    else:  # 'F'
        raise ValueError(f'{path}: floating-point pixels (mode F) cannot be '
                         'read as an image; save it with 8 or 16 bits per '
                         'channel')
    scaled = np.round(arr.astype(np.float64) * (255.0 / top))
    return Image.fromarray(scaled.astype(np.uint8), mode='L')


def load_fashion_image(path: str, size: int) -> torch.Tensor:
    """Read an image as a (1, 3, size, size) tensor in [-1, 1].

    Conversions: grayscale (and palette) images become RGB by repeating the
    channel; 16-bit grayscale images are scaled to 8 bits (not clipped);
    images with alpha (an alpha channel or a transparent colour) are
    composited onto a white background; any size is
    resized to ``size x size`` (Lanczos), ignoring the aspect ratio, as the
    reference code does.

    Args:
        path (str): image file.
        size (int): output side.

    Returns:
        Tensor: (1, 3, size, size) in [-1, 1].

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not a readable image, has floating-point or
            32-bit pixels, or is smaller than 8 px.
    """
    from PIL import Image, UnidentifiedImageError
    if not osp.isfile(path):
        raise FileNotFoundError(f'image file not found: {path}')
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode in _MODES_16BIT + ('I', 'F'):
                img = _to_8bit(img, path)
            # an alpha channel, or a transparent colour (palette index,
            # grey level or RGB triple) of a PNG / GIF
            if img.mode in ('RGBA', 'LA', 'PA') or 'transparency' in img.info:
                img = img.convert('RGBA')
                bg = Image.new('RGBA', img.size, 'white')
                img = Image.alpha_composite(bg, img)
            img = img.convert('RGB')
    except (UnidentifiedImageError, OSError) as err:
        raise ValueError(f'{path} is not a readable image: {err}') from err
    if min(img.size) < 8:
        raise ValueError(f'{path} is too small ({img.size[0]}x{img.size[1]}'
                         ' px); need at least 8 px per side')
    img = img.resize((size, size), Image.LANCZOS)
    arr = torch.from_numpy(np.asarray(img, dtype=np.float32).copy())
    return (arr.permute(2, 0, 1)[None] / 127.5) - 1


def load_mask_image(path: str, size: int) -> torch.Tensor:
    """Read a mask image (white = garment) as (1, 1, size, size) in {0, 1}.

    The image is read and resized as by :func:`load_fashion_image`; a pixel
    is garment when the mean of its channels is above mid-grey.
    """
    return (load_fashion_image(path, size).mean(1, keepdim=True) > 0).float()


def to_uint8(img: torch.Tensor) -> np.ndarray:
    """(3, H, W) or (1, H, W) in [-1, 1] -> (H, W, 3) uint8."""
    img = img.detach().float().cpu().clamp(-1, 1)
    if img.shape[0] == 1:
        img = img.expand(3, -1, -1)
    return ((img + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()


def save_image(img: torch.Tensor, path: str) -> None:
    """Save a (3, H, W) or (1, H, W) tensor in [-1, 1] as an image file."""
    from PIL import Image
    Image.fromarray(to_uint8(img)).save(path)


def write_outputs(out_dir: str, files: Dict[str, Union[torch.Tensor,
                                                       dict]]) -> List[str]:
    """Write images all-or-nothing: into a temporary folder inside
    ``out_dir``, then moved into ``out_dir`` file by file with atomic
    renames once every picture has been encoded.

    Args:
        out_dir (str): target folder (created).
        files (dict): file name -> (3 or 1, H, W) tensor in [-1, 1], or
            a dict written as JSON.

    Returns:
        list[str]: the written paths.

    Raises:
        NotADirectoryError: ``out_dir`` (or a folder above it) is a file.
    """
    if osp.exists(out_dir) and not osp.isdir(out_dir):
        raise NotADirectoryError(f'the output folder {out_dir} is a file; '
                                 'name a folder')
    os.makedirs(out_dir, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix='.tmp-', dir=out_dir)
    try:
        for name, img in files.items():
            if isinstance(img, dict):
                with open(osp.join(tmp, name), 'w') as f:
                    json.dump(img, f, indent=2)
            else:
                save_image(img, osp.join(tmp, name))
        paths = []
        for name in files:
            dst = osp.join(out_dir, name)
            os.replace(osp.join(tmp, name), dst)
            paths.append(dst)
    finally:
        for f in os.listdir(tmp):
            os.remove(osp.join(tmp, f))
        os.rmdir(tmp)
    return paths
