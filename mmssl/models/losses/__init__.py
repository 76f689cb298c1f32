# Copyright (c) mmssl contributors. All rights reserved.
"""Losses: a pure function on tensors and a thin registered module each."""
from .d2v2_loss import D2V2RegressionLoss, d2v2_regression_loss
from .dense_contrastive import (DenseCLLoss, dense_contrastive_loss,
                                dense_correspondence, queue_info_nce_loss)
from .label_smooth import LabelSmoothLoss
from .mlm_loss import MaskedLMLoss, masked_lm_loss
from .nt_xent import NTXentLoss, nt_xent_loss

__all__ = [
    'D2V2RegressionLoss', 'd2v2_regression_loss', 'DenseCLLoss',
    'dense_contrastive_loss', 'dense_correspondence', 'queue_info_nce_loss',
    'NTXentLoss', 'nt_xent_loss', 'MaskedLMLoss', 'masked_lm_loss',
    'LabelSmoothLoss'
]
