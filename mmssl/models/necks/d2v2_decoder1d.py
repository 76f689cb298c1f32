# Copyright (c) mmssl contributors. All rights reserved.
"""The 1-D convolutional decoder of data2vec 2.0 for text and speech
(fairseq ``Decoder1d``)."""
from typing import Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule

from mmssl.registry import MODELS
from mmssl.utils.validation import check_float, check_int
from .d2v2_decoder import fill_masked


class _Conv1dLNGELU(nn.Module):
    """Conv1d k (grouped, 'same' length) -> LayerNorm over channels without
    affine -> GELU (fairseq ``Decoder1d.make_block``)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int,
                 groups: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(
            in_channels,
            out_channels,
            kernel_size=kernel_size,
            padding=kernel_size // 2,
            groups=groups)
        # an even kernel grows the sequence by one; crop it back (SamePad)
        self.crop = 1 if kernel_size % 2 == 0 else 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, L) -> (B, C_out, L)."""
        x = self.conv(x)
        if self.crop:
            x = x[..., :-self.crop]
        x = F.layer_norm(x.transpose(1, 2), x.shape[1:2])
        return F.gelu(x.transpose(1, 2))


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
        for key, value in (('in_channels', in_channels),
                           ('embed_dims', embed_dims), ('num_layers',
                                                        num_layers),
                           ('kernel_size', kernel_size), ('groups', groups),
                           ('projection_layers', projection_layers)):
            check_int(value, f'model.neck.{key}', name)
        if in_channels % groups or embed_dims % groups:
            raise ValueError(
                f'model.neck.groups={groups} must divide in_channels='
                f'{in_channels} and embed_dims={embed_dims}')
        check_float(
            projection_ratio,
            'model.neck.projection_ratio',
            name,
            low=0,
            inclusive=(False, True))
        check_float(
            input_dropout,
            'model.neck.input_dropout',
            name,
            low=0,
            high=1,
            inclusive=(True, False))
        check_float(noise_std, 'model.neck.noise_std', name, low=0)
        self.in_channels = in_channels
        self.embed_dims = embed_dims
        self.residual = residual
        self.noise_std = float(noise_std)
        self.input_dropout = nn.Dropout(input_dropout)
        self.blocks = nn.ModuleList([
            _Conv1dLNGELU(in_channels if i == 0 else embed_dims, embed_dims,
                          kernel_size, groups) for i in range(num_layers)
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
        x = x.transpose(1, 2)
        for block in self.blocks:
            out = block(x)
            x = out + x if self.residual and out.shape == x.shape else out
        return self.proj(x.transpose(1, 2))


__all__ = ['D2V2ConvDecoder1d']
