# Copyright (c) mmssl contributors. All rights reserved.
"""Model-side mask generators of data2vec 2.0.

Images draw their masks in the data workers (a pipeline step, see
``mmssl.datasets.transforms.masking``). For text and speech the token layout
of a batch is known only inside the model (after the tokeniser's packing or
the conv feature extractor), so their masks are drawn there, by a generator
the model builds from ``model.mask_generator``. Every generator is called as
``gen(batch_size, layout, device)`` and returns (B, M, *layout) bool, True =
removed, with the same number of removed tokens in every row (the encoder
drops them, so rows must stay rectangular).
"""
from typing import Optional, Sequence

import torch

from mmssl.registry import MODELS
from mmssl.utils.validation import check_int
from .masking import check_mask_ratio, random_mask


@MODELS.register_module()
class RandomTokenMasker:
    """Uniformly random token masks with an exact count (data2vec 2.0 text).

    Each of the M masks of a sample removes ``N - int(N * (1 - mask_ratio))``
    of its N tokens, chosen uniformly at random (fairseq's
    ``compute_mask_indices`` with ``mask_length=1`` and
    ``require_same_masks=True``, which the text recipe uses with
    ``mask_prob=0.48``).

    Args:
        mask_ratio (float): Fraction of tokens removed, in [0, 1).
            Defaults to 0.48 (the text recipe).
        num_masks (int): Masks per sample, the clone batch M. Defaults to 8.
        seed (int, optional): Seed of a private generator (reproducible
            masks); None uses the global torch generator, which mmengine
            seeds with the run's ``randomness.seed``.
    """

    def __init__(self,
                 mask_ratio: float = 0.48,
                 num_masks: int = 8,
                 seed: Optional[int] = None) -> None:
        name = type(self).__name__
        self.mask_ratio = check_mask_ratio(mask_ratio,
                                           'model.mask_generator.mask_ratio',
                                           name)
        self.num_masks = check_int(
            num_masks,
            'model.mask_generator.num_masks',
            name,
            note='masks per sample, the clone batch M')
        self.generator = None
        if seed is not None:
            self.generator = torch.Generator().manual_seed(int(seed))

    def __call__(self, batch_size: int, layout: Sequence[int],
                 device: torch.device) -> torch.Tensor:
        """(B, M, *layout) bool masks for a batch of B samples.

        Args:
            batch_size (int): B.
            layout (Sequence[int]): Token layout, e.g. (L, ) for text.
            device (torch.device): Where the masks go.
        """
        n = 1
        for d in layout:
            n *= int(d)
        masks = [
            random_mask(1, n, self.mask_ratio, self.num_masks, self.generator)
            for _ in range(batch_size)
        ]
        out = torch.stack(masks).view(batch_size, self.num_masks,
                                      *[int(d) for d in layout])
        return out.to(device)

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(mask_ratio={self.mask_ratio}, '
                f'num_masks={self.num_masks})')


__all__ = ['RandomTokenMasker']
