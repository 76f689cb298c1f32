# Copyright (c) mmssl contributors. All rights reserved.
from .masking import InverseBlockMaskGenerator, RandomMaskGenerator

__all__ = ['InverseBlockMaskGenerator', 'RandomMaskGenerator']
