# Copyright (c) mmssl contributors. All rights reserved.
"""DenseCL's projection heads with BN after the hidden layers."""
from typing import List, Optional, Union

import torch.nn as nn
from mmpretrain.models.necks import DenseCLNeck as _MMPretrainDenseCLNeck

from mmssl.registry import MODELS
from ..utils.split_bn import SplitBatchNorm


@MODELS.register_module()
class DenseCLNeckBN(_MMPretrainDenseCLNeck):
    """mmpretrain's ``DenseCLNeck`` with BN after the hidden layers.

    The global head is ``Linear - BN - ReLU - Linear`` and the dense head
    ``Conv1x1 - BN - ReLU - Conv1x1`` (as SimCLR's and MoCo v3's heads),
    instead of the paper's ``Linear - ReLU - Linear`` and ``Conv - ReLU -
    Conv``. The BN layers are :class:`SplitBatchNorm` with ``num_splits``
    groups, so that the heads see the same per-"process" statistics as the
    backbone. Outputs are those of ``DenseCLNeck``.

    Args:
        in_channels (int): Backbone width.
        hid_channels (int): Hidden width.
        out_channels (int): Projection width D.
        num_grid (int, optional): Pool the dense map to this grid.
        num_splits (int): Groups of the BN layers. Defaults to 8.
        init_cfg (dict | list[dict], optional): Initialisation config.
    """

    def __init__(self,
                 in_channels: int,
                 hid_channels: int,
                 out_channels: int,
                 num_grid: Optional[int] = None,
                 num_splits: int = 8,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        super().__init__(
            in_channels,
            hid_channels,
            out_channels,
            num_grid=num_grid,
            init_cfg=init_cfg)
        self.mlp = nn.Sequential(
            nn.Linear(in_channels, hid_channels),
            SplitBatchNorm(hid_channels, num_splits), nn.ReLU(inplace=True),
            nn.Linear(hid_channels, out_channels))
        self.mlp2 = nn.Sequential(
            nn.Conv2d(in_channels, hid_channels, 1),
            SplitBatchNorm(hid_channels, num_splits), nn.ReLU(inplace=True),
            nn.Conv2d(hid_channels, out_channels, 1))
