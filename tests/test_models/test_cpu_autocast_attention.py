# Copyright (c) mmssl contributors. All rights reserved.
"""The shared attention call: PyTorch's own everywhere, fp32 under CPU bf16
autocast for fewer than CPU_BF16_ATTENTION_MIN_KEYS keys, in every mmssl
attention path."""
import pytest
import torch
import torch.nn.functional as F

from mmssl.models.backbones.albert import AlbertAttention
from mmssl.models.backbones.d2v2_vit import D2V2Block
from mmssl.models.utils import (UnbindMultiheadAttention,
                                scaled_dot_product_attention)
from mmssl.models.utils.attention import CPU_BF16_ATTENTION_MIN_KEYS
from mmssl.registry import MODELS
from mmssl.testing import tiny_mae_cfg
from mmssl.testing.ops import OpRecorder

FLASH = '_scaled_dot_product_flash_attention_for_cpu'


def _qkv(m, dtype=torch.float32, n=None):
    torch.manual_seed(0)
    n = n or m
    q = torch.randn(2, 3, n, 8, dtype=dtype, requires_grad=True)
    k, v = (
        torch.randn(2, 3, m, 8, dtype=dtype, requires_grad=True)
        for _ in range(2))
    return q, k, v


def test_the_threshold():
    assert CPU_BF16_ATTENTION_MIN_KEYS == 256


def test_without_autocast_it_is_pytorchs_call():
    q, k, v = _qkv(10)
    mask = torch.randn(2, 1, 10, 10)
    for kwargs in (dict(), dict(attn_mask=mask), dict(attn_mask=mask > 0)):
        out = scaled_dot_product_attention(q, k, v, **kwargs)
        assert torch.equal(out,
                           F.scaled_dot_product_attention(q, k, v, **kwargs))


@pytest.mark.parametrize('m', [1, 10, CPU_BF16_ATTENTION_MIN_KEYS - 1])
def test_short_sequences_run_in_fp32_under_cpu_autocast(m):
    q, k, v = _qkv(m, torch.bfloat16, n=5)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = scaled_dot_product_attention(q, k, v)
    assert out.dtype == torch.float32
    ref = F.scaled_dot_product_attention(q.float(), k.float(), v.float())
    assert torch.equal(out, ref)
    out.sum().backward()
    assert q.grad.dtype == k.grad.dtype == v.grad.dtype == torch.bfloat16
    # fp32 inputs too: autocast would have cast them to bf16
    q, k, v = _qkv(m, n=5)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = scaled_dot_product_attention(q, k, v)
    assert torch.equal(out, F.scaled_dot_product_attention(q, k, v))


def test_long_sequences_keep_autocasts_bf16():
    q, k, v = _qkv(CPU_BF16_ATTENTION_MIN_KEYS, n=4)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = scaled_dot_product_attention(q, k, v)
        ref = F.scaled_dot_product_attention(q, k, v)
    assert out.dtype == torch.bfloat16
    assert torch.equal(out, ref)


def test_a_bf16_additive_mask_follows_to_fp32():
    q, k, v = _qkv(6, torch.bfloat16)
    bias = torch.randn(2, 3, 6, 6).bfloat16()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = scaled_dot_product_attention(q, k, v, attn_mask=bias)
    ref = F.scaled_dot_product_attention(
        q.float(), k.float(), v.float(), attn_mask=bias.float())
    assert torch.equal(out, ref)
    keep = torch.rand(2, 1, 1, 6) > 0.3
    keep[..., 0] = True
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = scaled_dot_product_attention(q, k, v, attn_mask=keep)
    assert torch.equal(
        out,
        F.scaled_dot_product_attention(
            q.float(), k.float(), v.float(), attn_mask=keep))


def _flash_dtypes(fn):
    with torch.autocast('cpu', dtype=torch.bfloat16), OpRecorder() as rec:
        fn().float().sum().backward()
    calls = rec.named(FLASH)
    assert calls
    return {t.dtype for c in calls for t in c.inputs[:3]}  # q, k, v


def test_every_mmssl_attention_path_uses_it():
    torch.manual_seed(0)
    attn = UnbindMultiheadAttention(embed_dims=32, num_heads=4)
    x = torch.randn(2, 9, 32)
    assert _flash_dtypes(lambda: attn(x)) == {torch.float32}
    long_x = torch.randn(1, CPU_BF16_ATTENTION_MIN_KEYS, 32)
    assert _flash_dtypes(lambda: attn(long_x)) == {torch.bfloat16}
    # the queries-only path of MAE's last decoder block
    assert _flash_dtypes(lambda: attn.forward_queries(x[:, :3], x)) == {
        torch.float32
    }
    block = D2V2Block(embed_dims=32, num_heads=4, feedforward_channels=64)
    pad = torch.zeros(2, 9, dtype=torch.bool)
    pad[0, -2:] = True
    bias = torch.randn(2, 4, 9, 9)
    assert _flash_dtypes(lambda: block(x, pad, bias)[0]) == {torch.float32}
    albert = AlbertAttention(32, 4)
    keys = torch.ones(2, 1, 1, 9, dtype=torch.bool)
    assert _flash_dtypes(lambda: albert(x, keys)) == {torch.float32}
    mae = MODELS.build(tiny_mae_cfg())
    imgs = torch.randn(2, 3, 32, 32)
    assert _flash_dtypes(lambda: mae.loss(imgs, [])['loss']) == {torch.float32}
