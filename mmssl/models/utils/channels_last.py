# Copyright (c) mmssl contributors. All rights reserved.
"""1-D convolutions that keep (B, L, C) memory.

Token models hold sequences as (B, L, C); a conv over L takes the (B, C, L)
view ``x.transpose(1, 2)``, and a LayerNorm over channels then wants (B, L,
C) memory again. ``nn.Conv1d`` copies such a view to (B, C, L) and writes
(B, C, L), so every conv -> LayerNorm pair transposes twice each way,
forward and backward, and element-wise kernels on the strided views run
torch's scalar loops. :func:`conv1d_channels_last` runs the same module as a
1 x k ``conv2d`` on the channels-last (B, C, 1, L) map that view already is:
oneDNN reads and writes channels-last, the result is again a (B, C, L) view
of (B, L, C) memory, and ``movedim(1, -1)`` of it is contiguous.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


def conv1d_channels_last(conv: nn.Conv1d, x: torch.Tensor) -> torch.Tensor:
    """``conv(x)`` as a 1 x k ``conv2d``: the same values to float rounding
    and the module's own parameters, without layout copies for a (B, C_in,
    L) view of (B, L, C_in) memory.

    Args:
        conv (nn.Conv1d): The convolution (zero padding given as a number).
        x (Tensor): (B, C_in, L), best a view of (B, L, C_in) memory.

    Returns:
        Tensor: (B, C_out, L'), a view of (B, L', C_out) memory when ``x``
        was one.
    """
    if conv.padding_mode != 'zeros' or isinstance(conv.padding, str):
        raise ValueError(
            f'conv1d_channels_last takes a Conv1d with numeric zero padding, '
            f'got padding={conv.padding!r}, padding_mode='
            f'{conv.padding_mode!r}: build it with an int padding (e.g. '
            f'kernel_size // 2 for a same-size output) and '
            f"padding_mode='zeros', or call the module itself")
    out = F.conv2d(
        x.unsqueeze(2),
        conv.weight.unsqueeze(2),
        conv.bias,
        stride=(1, conv.stride[0]),
        padding=(0, conv.padding[0]),
        dilation=(1, conv.dilation[0]),
        groups=conv.groups)
    return out.squeeze(2)
