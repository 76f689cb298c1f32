# Copyright (c) mmssl contributors. All rights reserved.
"""The post-LN vision transformer of data2vec 2.0.

fairseq's data2vec 2.0 image encoder (``Data2VecMultiModel`` with an
``ImageEncoder``) is a ViT whose blocks put the LayerNorm *after* each
residual add (``AltBlock(layer_norm_first=False)``), with a LayerNorm on the
embedded input and no final norm. mmpretrain's ``VisionTransformer`` is
pre-LN, so it cannot load or reproduce these weights; :class:`D2V2ViT` is
that encoder, built from mmpretrain's / mmcv's parts (``PatchEmbed``,
``MultiheadAttention`` with one ``unbind`` of q, k, v
(:class:`~mmssl.models.utils.UnbindMultiheadAttention`), ``FFN``,
``build_2d_sincos_position_embedding``).

It has three entry points:

* ``forward(x)`` / ``forward(x, mask=None)``: plain features of the whole
  image, formatted like mmpretrain's ViT (``out_type``), for kNN, linear
  probing, fine-tuning and ``extract_feat``;
* ``forward(x, mask, num_clones)``: the student path, encoding only the
  visible patches of ``num_clones`` differently masked copies of each image;
* ``forward_targets(x, k)``: the teacher path, the pre-residual FFN outputs
  of the last ``k`` blocks.
"""
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn as nn
from mmcv.cnn.bricks import DropPath
from mmcv.cnn.bricks.transformer import FFN, PatchEmbed
from mmengine.model import BaseModule
from mmengine.utils import to_2tuple
from mmpretrain.models.utils import build_2d_sincos_position_embedding

from mmssl.registry import MODELS
from mmssl.utils.validation import check_choice, check_int
from ..utils.attention import (UnbindMultiheadAttention,
                               scaled_dot_product_attention)
from .d2v2_encoder import D2V2EncoderBase


def sincos_pos_embed_2d(grid_h: int, grid_w: int,
                        embed_dims: int) -> torch.Tensor:
    """Fixed 2-D sin-cos position embedding in the MAE / fairseq layout.

    Token ``k = row * grid_w + col`` gets ``[sin(col w), cos(col w),
    sin(row w), cos(row w)]`` with ``w_i = 10000 ** (-i / (C / 4))``, as
    ``get_2d_sincos_pos_embed`` of MAE (used by data2vec 2.0). It is
    mmpretrain's ``build_2d_sincos_position_embedding`` with the grid given
    as (columns, rows) and the two halves swapped, which also makes
    non-square grids come out right.

    Returns:
        Tensor: (1, grid_h * grid_w, embed_dims), float32.
    """
    pe = build_2d_sincos_position_embedding((grid_w, grid_h), embed_dims)
    half = embed_dims // 2
    return torch.cat([pe[..., half:], pe[..., :half]], dim=-1)


class D2V2Block(BaseModule):
    """Post-LN transformer block (fairseq ``AltBlock``,
    ``layer_norm_first=False``)::

        x = ln1(x + drop_path(attn(x)))
        t = ffn(x)                       # returned as the target
        x = ln2(x + drop_path(t))

    Args:
        embed_dims (int): Token width C.
        num_heads (int): Attention heads.
        feedforward_channels (int): FFN hidden width.
        qkv_bias (bool): Bias in the qkv projection. Defaults to True.
        drop_rate (float): Dropout after the attention / FFN output
            projections. Defaults to 0.
        attn_drop_rate (float): Attention-weight dropout. Defaults to 0.
        ffn_drop_rate (float): Dropout inside the FFN. Defaults to 0.
        drop_path_rate (float): Stochastic depth of both branches.
        norm_eps (float): LayerNorm epsilon. Defaults to 1e-6.
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 feedforward_channels: int,
                 qkv_bias: bool = True,
                 drop_rate: float = 0.,
                 attn_drop_rate: float = 0.,
                 ffn_drop_rate: float = 0.,
                 drop_path_rate: float = 0.,
                 norm_eps: float = 1e-6,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.attn = UnbindMultiheadAttention(
            embed_dims=embed_dims,
            num_heads=num_heads,
            attn_drop=attn_drop_rate,
            proj_drop=drop_rate,
            dropout_layer=dict(type='DropPath', drop_prob=drop_path_rate),
            qkv_bias=qkv_bias)
        self.ln1 = nn.LayerNorm(embed_dims, eps=norm_eps)
        self.ffn = FFN(
            embed_dims=embed_dims,
            feedforward_channels=feedforward_channels,
            num_fcs=2,
            ffn_drop=ffn_drop_rate,
            act_cfg=dict(type='GELU'),
            add_identity=False)
        self.post_ffn_drop = nn.Dropout(drop_rate)
        self.drop_path = DropPath(drop_path_rate) \
            if drop_path_rate > 0 else nn.Identity()
        self.ln2 = nn.LayerNorm(embed_dims, eps=norm_eps)

    def forward(
        self,
        x: torch.Tensor,
        key_padding_mask: Optional[torch.Tensor] = None,
        attn_bias: Optional[torch.Tensor] = None
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """(B, L, C) -> (block output (B, L, C), FFN output (B, L, C)).

        ``key_padding_mask`` (B, L) bool, True = padding: those tokens are
        not attended to (padded text and speech batches); ``attn_bias``
        (B, H, L, L) is added to the attention logits (speech's ALiBi,
        fairseq ``AltBlock(x, padding_mask, alibi_bias)``). With neither the
        block attends to all tokens through ``self.attn``.
        """
        if key_padding_mask is None and attn_bias is None:
            attn = self.attn(x)
        else:
            attn = self._masked_attn(x, key_padding_mask, attn_bias)
        x = self.ln1(x + attn)
        t = self.ffn(x)
        x = self.ln2(x + self.drop_path(self.post_ffn_drop(t)))
        return x, t

    def _masked_attn(self, x: torch.Tensor,
                     key_padding_mask: Optional[torch.Tensor],
                     attn_bias: Optional[torch.Tensor]) -> torch.Tensor:
        """``self.attn(x)`` with padded keys left out and / or an additive
        bias on the logits."""
        a = self.attn
        B, N, _ = x.shape
        qkv = a.qkv(x).reshape(B, N, 3, a.num_heads,
                               a.head_dims).permute(2, 0, 3, 1, 4)
        pad = None if key_padding_mask is None else \
            key_padding_mask.bool()[:, None, None, :]
        if attn_bias is None:
            mask = ~pad
        else:
            mask = attn_bias.to(x.dtype)
            if pad is not None:
                mask = mask.masked_fill(pad, float('-inf'))
        q, k, v = qkv.unbind(0)
        out = scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=mask,
            dropout_p=a.attn_drop if self.training else 0.)
        out = a.proj(out.transpose(1, 2).reshape(B, N, a.embed_dims))
        return a.out_drop(a.gamma1(a.proj_drop(out)))


@MODELS.register_module()
class D2V2ViT(D2V2EncoderBase):
    """Post-LN ViT encoder of data2vec 2.0 (visible tokens only when masked).

    The image modality of :class:`~mmssl.models.backbones.D2V2EncoderBase`,
    which holds the student (visible-token) and teacher paths shared with
    the text and speech encoders.

    Embedding: conv patch embedding, plus a fixed 2-D sin-cos position
    embedding (a buffer, recomputed for other image sizes), then one learned
    CLS token without position, a LayerNorm and dropout; then ``num_layers``
    post-LN blocks and no final norm. Initialisation follows the reference:
    Linear ``N(0, 0.02)`` with zero bias, patch embedding Xavier-uniform, CLS
    token ``N(0, 1)``, LayerNorm ``(1, 0)``.

    Args:
        arch (str | dict): ``'tiny'``, ``'small'``, ``'base'``, ``'large'``,
            ``'huge'`` (or their first letters), or a dict with
            ``embed_dims``, ``num_layers``, ``num_heads``,
            ``feedforward_channels``. Defaults to ``'base'``.
        img_size (int | tuple): Input size; must be divisible by
            ``patch_size``. Defaults to 224.
        patch_size (int): Patch side. Defaults to 16.
        in_channels (int): Image channels. Defaults to 3.
        out_indices (int | Sequence[int]): Blocks whose outputs the plain
            path returns. Defaults to -1.
        out_type (str): Plain-path output of each index: ``'raw'`` tokens
            (B, 1 + N, C), ``'cls_token'`` (B, C), ``'featmap'`` (B, C, h,
            w) or ``'avg_featmap'`` (B, C), the mean of the patch tokens (the
            reference fine-tuning pooling). Defaults to ``'raw'``.
        with_fc_norm (bool): LayerNorm (``ln_fc``) after the
            ``'avg_featmap'`` pooling, as the reference fine-tuning model
            does. Defaults to False.
        qkv_bias (bool): Defaults to True.
        drop_rate (float): Dropout on the input and after projections.
        attn_drop_rate (float): Attention dropout.
        drop_path_rate (float): Stochastic depth, linearly increasing over
            the blocks up to this value.
        norm_eps (float): LayerNorm epsilon. Defaults to 1e-6.
        frozen_stages (int): Freeze the embedding and the first
            ``frozen_stages`` blocks (-1: nothing). Defaults to -1.
        init_cfg (dict, optional): e.g. ``dict(type='Pretrained',
            checkpoint=..., prefix='backbone.')``.
    """

    arch_zoo = {
        **dict.fromkeys(['t', 'tiny'],
                        dict(
                            embed_dims=192,
                            num_layers=12,
                            num_heads=3,
                            feedforward_channels=768)),
        **dict.fromkeys(['s', 'small'],
                        dict(
                            embed_dims=384,
                            num_layers=12,
                            num_heads=6,
                            feedforward_channels=1536)),
        **dict.fromkeys(['b', 'base'],
                        dict(
                            embed_dims=768,
                            num_layers=12,
                            num_heads=12,
                            feedforward_channels=3072)),
        **dict.fromkeys(['l', 'large'],
                        dict(
                            embed_dims=1024,
                            num_layers=24,
                            num_heads=16,
                            feedforward_channels=4096)),
        **dict.fromkeys(['h', 'huge'],
                        dict(
                            embed_dims=1280,
                            num_layers=32,
                            num_heads=16,
                            feedforward_channels=5120)),
    }
    num_extra_tokens = 1
    OUT_TYPES = ('raw', 'cls_token', 'featmap', 'avg_featmap')

    def __init__(self,
                 arch: Union[str, dict] = 'base',
                 img_size: Union[int, Sequence[int]] = 224,
                 patch_size: int = 16,
                 in_channels: int = 3,
                 out_indices: Union[int, Sequence[int]] = -1,
                 out_type: str = 'raw',
                 with_fc_norm: bool = False,
                 qkv_bias: bool = True,
                 drop_rate: float = 0.,
                 attn_drop_rate: float = 0.,
                 drop_path_rate: float = 0.,
                 norm_eps: float = 1e-6,
                 frozen_stages: int = -1,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        arch_cfg = self._parse_arch(arch)
        self.embed_dims = arch_cfg['embed_dims']
        self.num_layers = arch_cfg['num_layers']
        num_heads = arch_cfg['num_heads']
        if self.embed_dims % num_heads or self.embed_dims % 4:
            raise ValueError(
                f'model.backbone.arch: embed_dims={self.embed_dims} must be '
                f'divisible by num_heads={num_heads} and by 4 (sin-cos '
                'position embedding)')
        img_size = to_2tuple(img_size)
        name = type(self).__name__
        check_int(patch_size, 'model.backbone.patch_size', name)
        if any(s % patch_size for s in img_size):
            raise ValueError(
                f'model.backbone.img_size={tuple(img_size)} is not divisible '
                f'by model.backbone.patch_size={patch_size}; pick an image '
                'size that is a multiple of the patch size')
        check_choice(out_type, 'model.backbone.out_type', name, self.OUT_TYPES)
        self.img_size = tuple(img_size)
        self.patch_size = patch_size
        self.out_type = out_type
        self.frozen_stages = frozen_stages

        self.patch_embed = PatchEmbed(
            in_channels=in_channels,
            input_size=img_size,
            embed_dims=self.embed_dims,
            conv_type='Conv2d',
            kernel_size=patch_size,
            stride=patch_size,
            bias=True)
        self.patch_resolution = tuple(self.patch_embed.init_out_size)
        self.register_buffer(
            'pos_embed',
            sincos_pos_embed_2d(*self.patch_resolution, self.embed_dims),
            persistent=False)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, self.embed_dims))
        self.ln_pre = nn.LayerNorm(self.embed_dims, eps=norm_eps)
        self.drop_after_pos = nn.Dropout(drop_rate)

        dpr = np.linspace(0, drop_path_rate, self.num_layers)
        self.layers = nn.ModuleList([
            D2V2Block(
                self.embed_dims,
                num_heads,
                arch_cfg['feedforward_channels'],
                qkv_bias=qkv_bias,
                drop_rate=drop_rate,
                attn_drop_rate=attn_drop_rate,
                drop_path_rate=float(dpr[i]),
                norm_eps=norm_eps) for i in range(self.num_layers)
        ])
        self.ln_fc = nn.LayerNorm(self.embed_dims, eps=norm_eps) \
            if with_fc_norm and out_type == 'avg_featmap' else None

        if isinstance(out_indices, int):
            out_indices = [out_indices]
        self.out_indices = []
        for idx in out_indices:
            pos = idx + self.num_layers if idx < 0 else idx
            if not 0 <= pos < self.num_layers:
                raise ValueError(f'model.backbone.out_indices: {idx} is out '
                                 f'of range for {self.num_layers} blocks')
            self.out_indices.append(pos)

        self._reference_init()
        self._freeze_stages()

    # ------------------------------------------------------------ init
    def _reference_init(self) -> None:
        """fairseq's init: BERT Linear, Xavier patch embed, N(0, 1) CLS."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, mean=0., std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm) and m.elementwise_affine:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        w = self.patch_embed.projection.weight.data
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.normal_(self.cls_token, std=1.)

    # ------------------------------------------------------------ freezing
    def _freeze_stages(self) -> None:
        if self.frozen_stages < 0:
            return
        modules = [self.patch_embed, self.ln_pre]
        modules += list(self.layers[:self.frozen_stages])
        if self.frozen_stages >= self.num_layers and self.ln_fc is not None:
            modules.append(self.ln_fc)
        self.cls_token.requires_grad = False
        for m in modules:
            m.eval()
            for p in m.parameters():
                p.requires_grad = False

    def train(self, mode: bool = True) -> 'D2V2ViT':
        super().train(mode)
        self._freeze_stages()
        return self

    def get_layer_depth(self,
                        param_name: str,
                        prefix: str = '') -> Tuple[int, int]:
        """Layer depth for layer-wise lr decay (mmpretrain's convention).

        Embedding (``patch_embed``, ``cls_token``, ``ln_pre``) is depth 0,
        ``layers.i`` depth i + 1, everything else (``ln_fc``, the head)
        ``num_layers + 1``, out of ``num_layers + 2``.
        """
        num_layers = self.num_layers + 2
        if not param_name.startswith(prefix):
            return num_layers - 1, num_layers
        name = param_name[len(prefix):]
        stem = ('cls_token', 'pos_embed', 'patch_embed', 'ln_pre')
        if name in stem[:2] or name.startswith(stem[2:]):
            depth = 0
        elif name.startswith('layers.'):
            depth = int(name.split('.')[1]) + 1
        else:
            depth = num_layers - 1
        return depth, num_layers

    # ------------------------------------------------------------ forward
    def _pos(self, grid: Tuple[int, int], like: torch.Tensor) -> torch.Tensor:
        if tuple(grid) == self.patch_resolution:
            pos = self.pos_embed
        else:
            pos = sincos_pos_embed_2d(grid[0], grid[1], self.embed_dims)
        return pos.to(device=like.device, dtype=like.dtype)

    def token_layout(self, x: torch.Tensor) -> Tuple[int, int]:
        """Patch grid (h, w) of images (B, 3, H, W) (data2vec 2.0 core)."""
        return (x.shape[-2] // self.patch_size, x.shape[-1] // self.patch_size)

    def embed(self, x: torch.Tensor) -> Tuple[torch.Tensor, Tuple[int, int]]:
        """Patch tokens with position: (B, 3, H, W) -> (B, N, C), (h, w)."""
        H, W = x.shape[-2:]
        if H % self.patch_size or W % self.patch_size:
            raise ValueError(f'input size {H}x{W} is not divisible by the '
                             f'patch size {self.patch_size}')
        tokens, grid = self.patch_embed(x)
        return tokens + self._pos(grid, tokens), tuple(grid)

    def context(self, x: torch.Tensor) -> torch.Tensor:
        """Prepend the CLS token, then LayerNorm and dropout."""
        cls = self.cls_token.to(x.dtype).expand(x.shape[0], -1, -1)
        return self.drop_after_pos(self.ln_pre(torch.cat([cls, x], dim=1)))

    def forward_plain(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Features of whole images (B, 3, H, W): one output per
        ``out_indices``, formatted by ``out_type``."""
        tokens, grid = self.embed(x)
        outs = self.blocks_forward(self.context(tokens), self.out_indices)
        return tuple(self._format_output(o, grid) for o in outs)

    def _format_output(self, x: torch.Tensor,
                       grid: Tuple[int, int]) -> torch.Tensor:
        if self.out_type == 'raw':
            return x
        if self.out_type == 'cls_token':
            return x[:, 0]
        patches = x[:, self.num_extra_tokens:]
        if self.out_type == 'featmap':
            B, _, C = patches.shape
            return patches.reshape(B, *grid, C).permute(0, 3, 1, 2)
        pooled = patches.mean(dim=1)
        return self.ln_fc(pooled) if self.ln_fc is not None else pooled


__all__ = ['D2V2ViT', 'D2V2Block', 'sincos_pos_embed_2d']
