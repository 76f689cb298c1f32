# Copyright (c) mmssl contributors. All rights reserved.
"""lightly's SimCLR as an mmengine model, the peer of mmssl's SimCLR in
benchmarks.

lightly's ImageNet SimCLR benchmark builds the model from a torchvision
ResNet without its classifier, its ``SimCLRProjectionHead`` (Linear, BN,
ReLU, Linear, BN) and its ``NTXentLoss``; both views go through the network as
one batch. This module runs exactly those parts (nothing re-implemented)
behind mmengine's ``BaseModel`` interface, so
``tools/analysis_tools/benchmark_train.py`` times it beside an mmssl SimCLR
config in one interleaved run, with the same data preprocessor, optimizer
wrapper and synthetic two-view batch.

lightly is an optional benchmark dependency (``requirements/benchmark.txt``),
never a runtime one: it is imported when the model is built.
"""
from typing import Dict, List, Optional, Union

import torch
import torch.nn as nn
from mmengine.model import BaseModel

from mmssl.registry import MODELS
from .lightly_mae import _INSTALL_HINT

#: torchvision ResNet depths
RESNET_DEPTHS = (18, 34, 50, 101, 152)


def _import_lightly():
    try:
        import torchvision
        from lightly.loss import NTXentLoss
        from lightly.models.modules import SimCLRProjectionHead
    except ImportError as err:  # pragma: no cover - exercised without it
        raise ImportError(
            f'mmssl.LightlySimCLR runs lightly\'s own SimCLR and needs the '
            f'lightly package ({err}); install it with: {_INSTALL_HINT}'
        ) from err
    return torchvision, NTXentLoss, SimCLRProjectionHead


@MODELS.register_module()
class LightlySimCLR(BaseModel):
    """lightly's SimCLR (torchvision ResNet + lightly's projection head and
    NT-Xent loss).

    Args:
        depth (int): torchvision ResNet depth (18, 34, 50, 101, 152).
            Defaults to 50.
        hidden_dim (int, optional): Projection head hidden width; the
            backbone's feature width when None (lightly's default for
            ResNet-50: 2048).
        out_dim (int): Projection width. Defaults to 128.
        temperature (float): NT-Xent temperature. Defaults to 0.1.
        data_preprocessor (dict, optional): mmengine data preprocessor, as in
            the mmssl config this model is compared with.
        init_cfg (dict, optional): Unused (torchvision and lightly
            initialise their parts).

    Shapes: ``inputs`` is a list of two (B, 3, H, W) preprocessed view
    batches (mmssl's ``MultiView`` + ``SelfSupDataPreprocessor`` format);
    the loss is lightly's mean NT-Xent over the 2B anchors.
    """

    def __init__(self,
                 depth: int = 50,
                 hidden_dim: Optional[int] = None,
                 out_dim: int = 128,
                 temperature: float = 0.1,
                 data_preprocessor: Optional[Union[dict, object]] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor)
        torchvision, loss_cls, head_cls = _import_lightly()
        if depth not in RESNET_DEPTHS:
            raise ValueError(f'model.depth must be one of '
                             f'{list(RESNET_DEPTHS)}, got {depth!r}')
        resnet = getattr(torchvision.models, f'resnet{depth}')()
        # lightly's benchmark: the ResNet without its fc layer
        self.backbone = nn.Sequential(*list(resnet.children())[:-1])
        width = resnet.fc.in_features  # the pooled feature width
        self.projection_head = head_cls(width, hidden_dim or width, out_dim)
        self.criterion = loss_cls(temperature=temperature)

    def init_weights(self) -> None:
        """torchvision and lightly initialise their parts when built."""

    def loss(self,
             inputs: List[torch.Tensor],
             data_samples: Optional[List] = None) -> Dict[str, torch.Tensor]:
        """lightly's SimCLR training loss of two (B, 3, H, W) view
        batches."""
        if not isinstance(inputs, (list, tuple)) or len(inputs) != 2:
            raise ValueError(
                'mmssl.LightlySimCLR takes a list of two view batches (a '
                'MultiView(num_views=2) step in the training pipeline), got '
                f'{type(inputs).__name__}')
        features = self.backbone(torch.cat(list(inputs))).flatten(1)
        z0, z1 = self.projection_head(features).chunk(2)
        return dict(loss=self.criterion(z0, z1))

    def forward(self,
                inputs: List[torch.Tensor],
                data_samples: Optional[List] = None,
                mode: str = 'loss'):
        if mode != 'loss':
            raise ValueError(f'mmssl.LightlySimCLR is a benchmark peer and '
                             f'has only mode="loss", got mode={mode!r}')
        return self.loss(inputs, data_samples)
