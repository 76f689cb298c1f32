# Copyright (c) mmssl contributors. All rights reserved.
"""mmpretrain's multi-head attention, with q, k, v split by one ``unbind``,
and the attention kernel call every mmssl attention shares.

mmpretrain's ``MultiheadAttention`` takes ``q, k, v = qkv[0], qkv[1],
qkv[2]``: three ``select`` views, whose backward writes each gradient into a
zero-filled tensor the size of the whole (3, B, H, N, d) projection and adds
the three. ``qkv.unbind(0)`` gives the same views with one backward that
stacks the three gradients: the same numbers (bit for bit), without three
fills, three copies and two additions of that size per block. On the CPU a
ViT-B attention step (forward + backward, batch 8, 2 threads) takes 10-25 %
less time this way (MAE's encoder and decoder shapes).

:func:`unbind_qkv_attention` gives the mmpretrain attention modules of a
built model this forward; parameters, buffers and state-dict keys stay
those of mmpretrain's class.

:func:`scaled_dot_product_attention` is ``F.scaled_dot_product_attention``
except under bf16 autocast on the CPU with fewer than
:data:`CPU_BF16_ATTENTION_MIN_KEYS` keys: there PyTorch's CPU flash kernel is
faster in fp32 than in bf16, so the attention runs in fp32 (which is also
the more precise). Forward + backward, 2 threads, a CPU with AMX
(``tools/analysis_tools/benchmark_attention.py``, ``configs/mae/README.md``):
18.0 ms in fp32 against 32.9 ms in bf16 at MAE's ViT-B decoder shape (B, H,
N, d) = (8, 16, 197, 32), 2.6 against 9.2 ms at its encoder shape (8, 12,
50, 64); about level at 256 keys (70.0 against 66.6 ms at (16, 12, 256,
64)), bf16 faster from 384 keys (97.6 against 65.7 ms at (2, 12, 1024, 64)).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.models.utils.attention import \
    MultiheadAttention as _MMPretrainMultiheadAttention

__all__ = [
    'CPU_BF16_ATTENTION_MIN_KEYS', 'UnbindMultiheadAttention',
    'scaled_dot_product_attention', 'unbind_qkv_attention'
]

#: Under CPU bf16 autocast, attention over fewer keys runs in fp32.
CPU_BF16_ATTENTION_MIN_KEYS = 256


def scaled_dot_product_attention(q: torch.Tensor,
                                 k: torch.Tensor,
                                 v: torch.Tensor,
                                 attn_mask=None,
                                 dropout_p: float = 0.) -> torch.Tensor:
    """``F.scaled_dot_product_attention`` (B, H, N, d) q, (B, H, M, d) k, v
    -> (B, H, N, d), in fp32 under CPU autocast when ``M`` is below
    :data:`CPU_BF16_ATTENTION_MIN_KEYS` (see the module docstring).

    Elsewhere (no autocast, CUDA, long sequences) it is PyTorch's call
    unchanged, so the numbers there are the same bit for bit. Under CPU
    autocast the output is fp32 for short sequences (the next projection
    casts it back to bf16) and the gradients of bf16 ``q``, ``k``, ``v`` are
    bf16.
    """
    if (q.device.type == 'cpu' and torch.is_autocast_enabled('cpu')
            and k.shape[-2] < CPU_BF16_ATTENTION_MIN_KEYS):
        if attn_mask is not None and attn_mask.is_floating_point():
            attn_mask = attn_mask.float()
        with torch.autocast('cpu', enabled=False):
            return F.scaled_dot_product_attention(
                q.float(),
                k.float(),
                v.float(),
                attn_mask=attn_mask,
                dropout_p=dropout_p)
    return F.scaled_dot_product_attention(
        q, k, v, attn_mask=attn_mask, dropout_p=dropout_p)


class UnbindMultiheadAttention(_MMPretrainMultiheadAttention):
    """mmpretrain's ``MultiheadAttention`` with ``qkv.unbind(0)``.

    Same arguments and state as ``mmpretrain.models.utils.
    MultiheadAttention``; ``forward`` maps (B, N, input_dims) to
    (B, N, embed_dims) with the same numbers.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, input_dims) tokens -> (B, N, embed_dims)."""
        B, N, _ = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads,
                                  self.head_dims).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        attn_drop = self.attn_drop if self.training else 0.
        if self.scaled_dot_product_attention is F.scaled_dot_product_attention:
            x = scaled_dot_product_attention(q, k, v, dropout_p=attn_drop)
        else:  # mmpretrain's Python attention (its qk_scale), as it is
            x = self.scaled_dot_product_attention(q, k, v, dropout_p=attn_drop)
        x = x.transpose(1, 2).reshape(B, N, self.embed_dims)
        x = self.proj(x)
        x = self.out_drop(self.gamma1(self.proj_drop(x)))
        if self.v_shortcut:
            x = v.squeeze(1) + x
        return x

    def forward_queries(self, x_q: torch.Tensor,
                        x: torch.Tensor) -> torch.Tensor:
        """Outputs at a subset of the tokens only.

        ``forward_queries(gather(x), x)`` equals ``gather(forward(x))``
        (up to rounding): the queries come from ``x_q``, the keys and values
        from all of ``x``, and the query projection, attention and output
        projection run on the ``Q`` query tokens only.

        Args:
            x_q (Tensor): (B, Q, input_dims) the tokens whose outputs are
                wanted (a subset of ``x``, already normalised as ``x``).
            x (Tensor): (B, N, input_dims) all tokens.

        Returns:
            Tensor: (B, Q, embed_dims).
        """
        if self.v_shortcut:
            raise ValueError('forward_queries: v_shortcut attention has one '
                             'query per token; call forward instead')
        B, Q, _ = x_q.shape
        N = x.shape[1]
        C = self.embed_dims
        w, b = self.qkv.weight, self.qkv.bias
        q = F.linear(x_q, w[:C], None if b is None else b[:C])
        kv = F.linear(x, w[C:], None if b is None else b[C:])
        q = q.reshape(B, Q, self.num_heads, self.head_dims).transpose(1, 2)
        k, v = kv.reshape(B, N, 2, self.num_heads,
                          self.head_dims).permute(2, 0, 3, 1, 4).unbind(0)
        attn_drop = self.attn_drop if self.training else 0.
        if self.scaled_dot_product_attention is F.scaled_dot_product_attention:
            x = scaled_dot_product_attention(q, k, v, dropout_p=attn_drop)
        else:
            x = self.scaled_dot_product_attention(q, k, v, dropout_p=attn_drop)
        x = x.transpose(1, 2).reshape(B, Q, C)
        x = self.proj(x)
        return self.out_drop(self.gamma1(self.proj_drop(x)))


def unbind_qkv_attention(module: nn.Module) -> int:
    """Give every mmpretrain ``MultiheadAttention`` under ``module`` the
    ``unbind`` forward of :class:`UnbindMultiheadAttention`.

    Only modules of exactly mmpretrain's class change (a subclass keeps its
    own forward). Idempotent.

    Args:
        module (nn.Module): Any model.

    Returns:
        int: How many attention modules changed.
    """
    changed = 0
    for m in module.modules():
        if type(m) is _MMPretrainMultiheadAttention:
            m.__class__ = UnbindMultiheadAttention
            changed += 1
    return changed
