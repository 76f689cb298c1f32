# Copyright (c) mmssl contributors. All rights reserved.
"""The convolutional decoder of data2vec 2.0 (fairseq ``Decoder2d``)."""
from typing import Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule

from mmssl.registry import MODELS
from mmssl.utils.validation import check_float, check_int
from ..utils.channels_last import conv1d_channels_last
from ..utils.masking import unshuffle_tokens


def fill_masked(x: torch.Tensor, ids_restore: torch.Tensor,
                noise_std: float) -> torch.Tensor:
    """Visible tokens + fresh ``N(0, noise_std^2)`` tokens, original order.

    Args:
        x (Tensor): (B, V, C) encoded visible tokens (no extra tokens).
        ids_restore (Tensor): (B, N) from the encoder's masking.
        noise_std (float): Std of the tokens put at removed positions.

    Returns:
        Tensor: (B, N, C).
    """
    B, V, C = x.shape
    noise = x.new_empty(B, ids_restore.shape[1] - V, C).normal_(0, noise_std)
    return unshuffle_tokens(x, noise, ids_restore)


class ConvLNGELU(nn.Module):
    """Conv k (grouped, 'same' size) -> LayerNorm over channels without
    affine -> GELU: one block of fairseq's ``Decoder1d`` / ``Decoder2d``.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        kernel_size (int): Kernel (an even one is cropped back to the input
            size, fairseq ``SamePad``).
        groups (int): Conv groups.
        spatial_dims (int): 1 for (B, C, L) sequences, 2 for (B, C, h, w)
            maps. Defaults to 2.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_size: int,
                 groups: int,
                 spatial_dims: int = 2) -> None:
        super().__init__()
        conv = {1: nn.Conv1d, 2: nn.Conv2d}[spatial_dims]
        self.conv = conv(
            in_channels,
            out_channels,
            kernel_size=kernel_size,
            padding=kernel_size // 2,
            groups=groups)
        # an even kernel grows each spatial size by one; crop it back
        self.crop = (slice(None, -1), ) * spatial_dims \
            if kernel_size % 2 == 0 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, *S) -> (B, C_out, *S)."""
        # 1-D: keeps a (B, C, L) view of (B, L, C) memory (the decoder's
        # input) in that layout, no copies (conv1d_channels_last)
        x = conv1d_channels_last(self.conv, x) if isinstance(
            self.conv, nn.Conv1d) else self.conv(x)
        if self.crop is not None:
            x = x[(..., ) + self.crop]
        # GELU on the contiguous channels-last LayerNorm output, then back:
        # vectorised there (on the strided view torch runs a scalar loop)
        x = F.layer_norm(x.movedim(1, -1), x.shape[1:2])
        return F.gelu(x).movedim(-1, 1)


def check_conv_decoder_args(name: str, in_channels: int, embed_dims: int,
                            num_layers: int, kernel_size: int, groups: int,
                            noise_std: float) -> None:
    """The arguments both conv decoders share, each error naming its
    ``model.neck`` key."""
    for key, value in (('in_channels', in_channels),
                       ('embed_dims', embed_dims), ('num_layers', num_layers),
                       ('kernel_size', kernel_size), ('groups', groups)):
        check_int(value, f'model.neck.{key}', name)
    if in_channels % groups or embed_dims % groups:
        raise ValueError(f'model.neck.groups={groups} must divide '
                         f'in_channels={in_channels} and embed_dims='
                         f'{embed_dims}')
    check_float(noise_std, 'model.neck.noise_std', name, low=0)


def run_conv_blocks(blocks: nn.ModuleList, x: torch.Tensor,
                    residual: bool) -> torch.Tensor:
    """The block stack, each block with a residual add of its input when
    ``residual`` and the shapes match: (B, C_in, *S) -> (B, C, *S)."""
    for block in blocks:
        out = block(x)
        x = out + x if residual and out.shape == x.shape else out
    return x


@MODELS.register_module()
class D2V2ConvDecoder2d(BaseModule):
    """Fill the masked positions and predict targets everywhere (data2vec 2.0).

    The visible encoder tokens are put back in place and every removed
    position gets a fresh ``N(0, noise_std^2)`` token (no learned mask token,
    no position embedding); the (B, C, h, w) map then goes through
    ``num_layers`` blocks of {grouped Conv2d k x k, LayerNorm over channels
    without affine, GELU}, each with a residual add of its input when the
    widths match, and a per-position Linear back to ``in_channels``.

    Args:
        in_channels (int): Encoder width C (also the output width).
        embed_dims (int): Decoder width. Defaults to 768.
        num_layers (int): Conv blocks. Defaults to 6.
        kernel_size (int): Conv kernel. Defaults to 3.
        groups (int): Conv groups; must divide ``in_channels`` and
            ``embed_dims``. Defaults to 16.
        residual (bool): Residual adds around the blocks. Defaults to True.
        noise_std (float): Std of the tokens put at removed positions.
            Defaults to 0.01.
        channels_last (bool): Run the conv stack on channels-last maps: the
            (B, N, C) tokens are viewed as (B, C, h, w) without a copy and
            every conv, LayerNorm and residual add keeps that layout (no
            NCHW <-> NHWC transforms around the convs). The same function
            up to float rounding. Defaults to False.
        init_cfg (dict, optional): Defaults to None (PyTorch's default init,
            as the reference).
    """

    def __init__(self,
                 in_channels: int,
                 embed_dims: int = 768,
                 num_layers: int = 6,
                 kernel_size: int = 3,
                 groups: int = 16,
                 residual: bool = True,
                 noise_std: float = 0.01,
                 channels_last: bool = False,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        check_conv_decoder_args(
            type(self).__name__, in_channels, embed_dims, num_layers,
            kernel_size, groups, noise_std)
        self.in_channels = in_channels
        self.embed_dims = embed_dims
        self.residual = residual
        self.noise_std = float(noise_std)
        self.channels_last = bool(channels_last)
        self.blocks = nn.ModuleList([
            ConvLNGELU(in_channels if i == 0 else embed_dims, embed_dims,
                       kernel_size, groups) for i in range(num_layers)
        ])
        self.proj = nn.Linear(embed_dims, in_channels)

    def fill(self, x: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
        """Visible tokens + noise tokens in the original order.

        Args:
            x (Tensor): (B, V, C) encoded visible tokens (no CLS).
            ids_restore (Tensor): (B, N) from the encoder.

        Returns:
            Tensor: (B, N, C).
        """
        return fill_masked(x, ids_restore, self.noise_std)

    def forward(self,
                x: torch.Tensor,
                ids_restore: torch.Tensor,
                grid: Optional[Sequence[int]] = None) -> torch.Tensor:
        """Predict all N positions from the visible tokens.

        Args:
            x (Tensor): (B, V, C) encoded visible tokens, CLS removed.
            ids_restore (Tensor): (B, N) long.
            grid (tuple[int, int], optional): Patch grid (h, w); square if
                None.

        Returns:
            Tensor: (B, N, C) predictions (only removed positions are
            trained).
        """
        x = self.fill(x, ids_restore)
        B, N, C = x.shape
        if grid is None:
            side = int(round(N**0.5))
            grid = (side, side)
        h, w = grid
        if h * w != N:
            raise ValueError(f'{N} tokens do not form a {h}x{w} grid')
        if self.channels_last:  # (B, h, w, C) memory, (B, C, h, w) view
            x = run_conv_blocks(self.blocks,
                                x.reshape(B, h, w, C).permute(0, 3, 1, 2),
                                self.residual)
            x = x.permute(0, 2, 3, 1).reshape(B, N, self.embed_dims)
        else:
            x = run_conv_blocks(self.blocks,
                                x.transpose(1, 2).reshape(B, C, h, w),
                                self.residual)
            x = x.reshape(B, self.embed_dims, N).transpose(1, 2)
        return self.proj(x)
