# Copyright (c) mmssl contributors. All rights reserved.
"""Self-supervised algorithms, one per file."""
from .albert import AlbertPretrainer
from .data2vec2 import Data2VecV2
from .densecl import DenseCL
from .mae import MAE, MAEViT
from .mae_poslabel import MAEPosLabel
from .simclr import SimCLR

__all__ = [
    'MAE', 'MAEViT', 'MAEPosLabel', 'Data2VecV2', 'SimCLR', 'DenseCL',
    'AlbertPretrainer'
]
