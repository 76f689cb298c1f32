# Copyright (c) mmssl contributors. All rights reserved.
"""mmpretrain's label-smoothing loss with its label check inside the graph.

For index labels y (N,) of C classes, as mmpretrain's ``LabelSmoothLoss``
(``mode='original'``, epsilon ``eps``)::

    q = (1 - eps) * one_hot(y, C) + eps / C
    L = mean_n( -sum_c q_{n,c} * log softmax(s_n)_c )

mmpretrain converts index labels with ``convert_to_one_hot``, whose range
check reads ``torch.max(labels).item()`` on the host. Under
``torch.compile`` (a config's ``compile=True``) that read splits the
fine-tuning step into 8 graphs, and the frame that resumes after it guards
on the value read, so a batch whose largest label differs recompiles it.
:class:`LabelSmoothLoss` checks the range with an in-graph assert
(:func:`mmssl.models.utils.check_index_range`, which also refuses negative
labels and names the bad one in eager mode) and builds the one-hot labels
with ``F.one_hot``; everything else, including soft (mixup / CutMix) labels,
is mmpretrain's.
"""
import torch
import torch.nn.functional as F
from mmpretrain.models.losses import LabelSmoothLoss as _HostLabelSmoothLoss

from mmssl.models.utils.masking import check_index_range
from mmssl.registry import MODELS

__all__ = ['LabelSmoothLoss']


@MODELS.register_module()
class LabelSmoothLoss(_HostLabelSmoothLoss):
    """``mmpretrain.LabelSmoothLoss`` that compiles into the step's graph.

    Same arguments and values as the host loss; use it as
    ``loss=dict(type='mmssl.LabelSmoothLoss', label_smooth_val=0.1,
    mode='original')``.
    """

    def generate_one_hot_like_label(self, label: torch.Tensor) -> torch.Tensor:
        """(N,) or (N, 1) class indices -> (N, C) float one-hot; (N, C) soft
        labels pass through as float."""
        if label.dim() == 1 or (label.dim() == 2 and label.shape[1] == 1):
            label = label.reshape(-1).long()
            check_index_range(
                label, self.num_classes, 'class label',
                'mmssl.LabelSmoothLoss',
                "labels are class indices: set the head's num_classes (and "
                "the loss's) to the data set's number of classes")
            label = F.one_hot(label, self.num_classes)
        return label.float()
