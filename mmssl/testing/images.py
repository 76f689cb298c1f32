# Copyright (c) mmssl contributors. All rights reserved.
"""Small labelled image folders for tests and examples."""
import os
import os.path as osp
from typing import Sequence, Tuple

import numpy as np
from PIL import Image


def write_image_folder(root: str,
                       per_class: int,
                       seed: int = 0,
                       classes: Sequence[Tuple[str,
                                               int]] = (('a', 40), ('b', 200)),
                       size: int = 32) -> str:
    """Write an ImageNet-style folder ``root/<class>/<i>.png``.

    Each class is a grey level (``classes``: (name, level) pairs) plus
    Gaussian noise of std 20, so classes are told apart by brightness.

    Args:
        root (str): the folder to fill (created).
        per_class (int): images per class.
        seed (int): seed of the noise.
        classes (sequence): (class name, mean grey level 0-255) pairs.
        size (int): image height and width.

    Returns:
        str: ``root``.
    """
    rng = np.random.default_rng(seed)
    for name, level in classes:
        folder = osp.join(str(root), name)
        os.makedirs(folder)
        for i in range(per_class):
            img = np.clip(level + rng.normal(0, 20, (size, size, 3)), 0, 255)
            Image.fromarray(img.astype(np.uint8)).save(
                osp.join(folder, f'{i}.png'))
    return str(root)
