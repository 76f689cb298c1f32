# Copyright (c) mmssl contributors. All rights reserved.
"""Universal detection (Large-UniDet): hierarchy-aware loss and heads."""
from .hierarchy_loss import (HierarchyBCELoss, hierarchy_bce_loss,
                             hierarchy_targets)
from .regnet import TorchvisionRegNet
from .unidet_head import UniDetBBoxHead, UniDetCascadeRCNN

__all__ = [
    'HierarchyBCELoss', 'hierarchy_bce_loss', 'hierarchy_targets',
    'UniDetBBoxHead', 'UniDetCascadeRCNN', 'TorchvisionRegNet'
]
