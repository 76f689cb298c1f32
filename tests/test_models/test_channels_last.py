# Copyright (c) mmssl contributors. All rights reserved.
"""conv1d_channels_last: Conv1d's values, kept (B, L, C) memory."""
import pytest
import torch
import torch.nn as nn

from mmssl.models.utils import conv1d_channels_last
from mmssl.testing.ops import OpRecorder


@pytest.mark.parametrize('kw', [
    dict(kernel_size=3, padding=1),
    dict(kernel_size=4, stride=2, bias=False),
    dict(kernel_size=5, padding=4, dilation=2, groups=4),
    dict(kernel_size=1),
])
def test_equals_conv1d_and_keeps_the_layout(kw):
    torch.manual_seed(0)
    conv = nn.Conv1d(8, 12, **kw).double()
    tokens = torch.randn(3, 17, 8, dtype=torch.float64, requires_grad=True)
    x = tokens.transpose(1, 2)  # (B, C, L) view of (B, L, C) memory
    with OpRecorder() as rec:
        out = conv1d_channels_last(conv, x)
    ref = conv(x)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    assert out.transpose(1, 2).is_contiguous()  # (B, L', C_out) memory
    assert not rec.named('clone') and not rec.named('copy_')
    g = torch.randn_like(ref)
    grads = torch.autograd.grad(out, [tokens, *conv.parameters()], g)
    ref_grads = torch.autograd.grad(ref, [tokens, *conv.parameters()], g)
    for a, b in zip(grads, ref_grads):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_refuses_string_padding_and_other_padding_modes():
    for conv in (nn.Conv1d(2, 2, 3, padding='same'),
                 nn.Conv1d(2, 2, 3, padding=1, padding_mode='reflect')):
        with pytest.raises(
                ValueError, match=r'numeric zero padding.*int padding'):
            conv1d_channels_last(conv, torch.randn(1, 2, 5))
