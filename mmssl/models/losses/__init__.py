# Copyright (c) mmssl contributors. All rights reserved.
from .dense_contrastive import (DenseCLLoss, dense_contrastive_loss,
                                dense_correspondence, queue_info_nce_loss)

__all__ = [
    'DenseCLLoss', 'dense_contrastive_loss', 'dense_correspondence',
    'queue_info_nce_loss'
]
