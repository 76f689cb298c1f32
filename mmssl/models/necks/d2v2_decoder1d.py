# Copyright (c) mmssl contributors. All rights reserved.
"""The 1-D convolutional decoder of data2vec 2.0 for text and speech
(fairseq ``Decoder1d``)."""
from typing import Optional, Sequence

import torch
import torch.nn as nn
from mmengine.model import BaseModule

from mmssl.registry import MODELS
from mmssl.utils.validation import check_float, check_int
from .d2v2_decoder import (ConvLNGELU, check_conv_decoder_args, fill_masked,
                           run_conv_blocks)


@MODELS.register_module()
class D2V2ConvDecoder1d(BaseModule):
    """Fill the masked positions of a sequence and predict targets.

    Input dropout on the visible tokens, then a fresh ``N(0, noise_std^2)``
    token at every removed position (no learned mask token), the (B, C, L)
    sequence through ``num_layers`` blocks of {grouped Conv1d, LayerNorm
    over channels without affine, GELU} (each with a residual add of its
    input when ``residual`` and the widths match), and a projection back to
    ``in_channels``: one Linear, or with ``projection_layers`` = P > 1,
    P - 1 {Linear, GELU} pairs (the first widening by ``projection_ratio``)
    and a final Linear.

    The data2vec 2.0 recipes: text ``embed_dims=768, num_layers=5,
    kernel_size=9, groups=1, residual=False, projection_layers=2,
    projection_ratio=2, input_dropout=0.1``; speech ``embed_dims=384,
    num_layers=4, kernel_size=7, groups=16, residual=True,
    projection_layers=1, input_dropout=0.1``.

    Args:
        in_channels (int): Encoder width C (also the output width).
        embed_dims (int): Decoder width. Defaults to 768.
        num_layers (int): Conv blocks. Defaults to 5.
        kernel_size (int): Conv kernel. Defaults to 9.
        groups (int): Conv groups; must divide ``in_channels`` and
            ``embed_dims``. Defaults to 1.
        residual (bool): Residual adds around the blocks. Defaults to False.
        projection_layers (int): Linear layers of the projection.
            Defaults to 2.
        projection_ratio (float): Width factor of the first hidden
            projection layer. Defaults to 2.
        input_dropout (float): Dropout on the visible tokens. Defaults to
            0.1.
        noise_std (float): Std of the tokens put at removed positions.
            Defaults to 0.01.
        init_cfg (dict, optional): Defaults to None (PyTorch's default init,
            as the reference).
    """

    def __init__(self,
                 in_channels: int,
                 embed_dims: int = 768,
                 num_layers: int = 5,
                 kernel_size: int = 9,
                 groups: int = 1,
                 residual: bool = False,
                 projection_layers: int = 2,
                 projection_ratio: float = 2.,
                 input_dropout: float = 0.1,
                 noise_std: float = 0.01,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        name = type(self).__name__
        check_conv_decoder_args(name, in_channels, embed_dims, num_layers,
                                kernel_size, groups, noise_std)
        check_int(projection_layers, 'model.neck.projection_layers', name)
        check_float(
            projection_ratio,
            'model.neck.projection_ratio',
            name,
            low=0,
            inclusive=False)
        check_float(
            input_dropout,
            'model.neck.input_dropout',
            name,
            low=0,
            high=1,
            inclusive=(True, False))
        self.in_channels = in_channels
        self.embed_dims = embed_dims
        self.residual = residual
        self.noise_std = float(noise_std)
        self.input_dropout = nn.Dropout(input_dropout)
        self.blocks = nn.ModuleList([
            ConvLNGELU(
                in_channels if i == 0 else embed_dims,
                embed_dims,
                kernel_size,
                groups,
                spatial_dims=1) for i in range(num_layers)
        ])
        projs = []
        width = embed_dims
        for i in range(projection_layers - 1):
            nxt = int(width * projection_ratio) if i == 0 else width
            projs += [nn.Linear(width, nxt), nn.GELU()]
            width = nxt
        projs.append(nn.Linear(width, in_channels))
        self.proj = projs[0] if len(projs) == 1 else nn.Sequential(*projs)

    def forward(self,
                x: torch.Tensor,
                ids_restore: torch.Tensor,
                layout: Optional[Sequence[int]] = None) -> torch.Tensor:
        """Predict all N positions from the visible tokens.

        Args:
            x (Tensor): (B, V, C) encoded visible tokens, extra tokens
                removed.
            ids_restore (Tensor): (B, N) long.
            layout (Sequence[int], optional): (N, ) checked when given.

        Returns:
            Tensor: (B, N, C) predictions (only removed positions are
            trained).
        """
        x = fill_masked(self.input_dropout(x), ids_restore, self.noise_std)
        if layout is not None and tuple(layout) != (x.shape[1], ):
            raise ValueError(f'{x.shape[1]} tokens do not form the sequence '
                             f'layout {tuple(layout)}')
        x = run_conv_blocks(self.blocks, x.transpose(1, 2), self.residual)
        return self.proj(x.transpose(1, 2))


__all__ = ['D2V2ConvDecoder1d']
