# Copyright (c) mmssl contributors. All rights reserved.
"""SimCLR on mmpretrain's implementation, with the exact distributed
gradient.

mmpretrain's ``SimCLR`` (Chen et al., "A Simple Framework for Contrastive
Learning of Visual Representations", ICML 2020) is right in one process, but
its ``GatherLayer`` backward keeps only the local slice of the local gradient
while every rank computes the full 2N x 2N loss, so after DDP's averaging the
gradient is ``1 / world_size`` of the true one (see
:mod:`mmssl.models.utils.dist`). mmssl's ``SimCLR`` keeps mmpretrain's
backbone / neck / data layout and computes the loss with
:class:`mmssl.NTXentLoss`: each rank takes its own 2n anchors against the
gathered keys of all ranks, and the gather's backward sums the gradients
across ranks, which gives exactly the single-process gradient.
"""
from typing import Dict, List

import torch
from mmpretrain.models.selfsup.simclr import SimCLR as _MMPretrainSimCLR
from mmpretrain.structures import DataSample

from mmssl.registry import MODELS


@MODELS.register_module()
class SimCLR(_MMPretrainSimCLR):
    """SimCLR self-supervisor.

    Same arguments as ``mmpretrain.SimCLR``; ``head`` is the loss, e.g.
    ``dict(type='mmssl.NTXentLoss', temperature=0.1)`` (a module called as
    ``head(z1, z2)`` on the (n, D) projections of the two views).
    """

    def __init__(self, *args, **kwargs) -> None:
        msg = ('model.head must be a loss module config called as '
               "head(z1, z2), such as dict(type='mmssl.NTXentLoss', "
               'temperature=0.1)')
        if not isinstance(kwargs.get('head'), dict):
            raise ValueError(msg)
        super().__init__(*args, **kwargs)
        if type(self.head).forward is torch.nn.Module.forward:
            raise ValueError(f'{msg}; got {type(self.head).__name__}')

    def project(self, inputs: List[torch.Tensor]) -> torch.Tensor:
        """Projections of both views.

        Args:
            inputs (list[Tensor]): two (n, 3, H, W) view batches.

        Returns:
            Tensor: (2n, D) projections, ``[view 1 rows, view 2 rows]``.
        """
        if not isinstance(inputs, (list, tuple)) or len(inputs) != 2:
            raise ValueError('SimCLR expects 2 views per image; use '
                             "dict(type='MultiView', num_views=2, ...) in "
                             'the pipeline')
        x = self.backbone(torch.cat(list(inputs)))
        return self.neck(x)[0]

    def loss(self, inputs: List[torch.Tensor], data_samples: List[DataSample],
             **kwargs) -> Dict[str, torch.Tensor]:
        """NT-Xent loss of a batch of two-view images.

        Args:
            inputs (list[Tensor]): two (n, 3, H, W) view batches.
            data_samples (list[DataSample]): unused.

        Returns:
            dict: ``loss``, the mean NT-Xent over this rank's 2n anchors.
        """
        z = self.project(inputs)
        z1, z2 = z.chunk(2)
        return dict(loss=self.head(z1, z2))
