# Copyright (c) mmssl contributors. All rights reserved.
"""Mask-generator transforms: M masks per image, drawn in the data workers.

They write ``results['mask']``, a (M, h, w) bool tensor (True = removed)
that ``PackInputs(algorithm_keys=['mask'])`` puts in the data sample, the
same mechanism as mmpretrain's ``BEiTMaskGenerator`` /
``SimMIMMaskGenerator``. The masks come from the shared pure functions in
:mod:`mmssl.models.utils.masking` and use torch's random generator, which
PyTorch seeds differently in every data-loader worker.
"""
from typing import Optional, Sequence, Union

import torch
from mmcv.transforms import BaseTransform
from mmengine.utils import to_2tuple

from mmssl.models.utils.masking import (check_mask_ratio, inverse_block_mask,
                                        num_visible, random_mask)
from mmssl.registry import TRANSFORMS
from mmssl.utils.validation import check_float, check_int


class _MaskGenerator(BaseTransform):
    """Shared checks and bookkeeping of the mask-generator transforms."""

    def __init__(self, input_size: Union[int, Sequence[int]],
                 mask_ratio: float, num_masks: int) -> None:
        name = f'mmssl.{type(self).__name__}'
        size = to_2tuple(input_size)
        self.grid_h, self.grid_w = [
            check_int(s, 'input_size', name) for s in size
        ]
        self.mask_ratio = check_mask_ratio(mask_ratio, owner=name)
        self.num_masks = check_int(num_masks, 'num_masks', name)

    @property
    def num_visible(self) -> int:
        """Visible patches per mask, the same for every mask."""
        return num_visible(self.grid_h * self.grid_w, self.mask_ratio)

    def generate(self,
                 generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """(M, h, w) bool masks, True = removed."""
        raise NotImplementedError

    def transform(self, results: dict) -> dict:
        results['mask'] = self.generate()
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(input_size=({self.grid_h}, '
                f'{self.grid_w}), mask_ratio={self.mask_ratio}, '
                f'num_masks={self.num_masks})')


@TRANSFORMS.register_module()
class InverseBlockMaskGenerator(_MaskGenerator):
    """Inverse block masks of data2vec 2.0 (blocks of *kept* patches).

    **Added keys**: ``mask`` — (num_masks, h, w) bool tensor, True = removed;
    every mask keeps exactly ``int(h * w * (1 - mask_ratio))`` patches.

    Args:
        input_size (int | tuple[int, int]): Patch grid (h, w), e.g. 14 for
            224 px images and 16 px patches.
        mask_ratio (float): Fraction removed. Defaults to 0.8.
        num_masks (int): Masks per image (the clone batch M). Defaults to 16.
        block_size (int): Side of the kept blocks. Defaults to 3.
        adjust (float): Centre-count adjustment. Defaults to 0.07.
    """

    def __init__(self,
                 input_size: Union[int, Sequence[int]] = 14,
                 mask_ratio: float = 0.8,
                 num_masks: int = 16,
                 block_size: int = 3,
                 adjust: float = 0.07) -> None:
        super().__init__(input_size, mask_ratio, num_masks)
        name = f'mmssl.{type(self).__name__}'
        self.block_size = check_int(block_size, 'block_size', name)
        self.adjust = check_float(adjust, 'adjust', name)

    def generate(self,
                 generator: Optional[torch.Generator] = None) -> torch.Tensor:
        return inverse_block_mask(self.grid_h, self.grid_w, self.mask_ratio,
                                  self.num_masks, self.block_size, self.adjust,
                                  generator)

    def __repr__(self) -> str:
        return (super().__repr__()[:-1] +
                f', block_size={self.block_size}, adjust={self.adjust})')


@TRANSFORMS.register_module()
class RandomMaskGenerator(_MaskGenerator):
    """Uniformly random patch masks (MAE-style), for comparison.

    **Added keys**: ``mask`` — (num_masks, h, w) bool tensor, True = removed.

    Args:
        input_size (int | tuple[int, int]): Patch grid (h, w).
        mask_ratio (float): Fraction removed. Defaults to 0.75.
        num_masks (int): Masks per image. Defaults to 1.
    """

    def __init__(self,
                 input_size: Union[int, Sequence[int]] = 14,
                 mask_ratio: float = 0.75,
                 num_masks: int = 1) -> None:
        super().__init__(input_size, mask_ratio, num_masks)

    def generate(self,
                 generator: Optional[torch.Generator] = None) -> torch.Tensor:
        return random_mask(self.grid_h, self.grid_w, self.mask_ratio,
                           self.num_masks, generator)
