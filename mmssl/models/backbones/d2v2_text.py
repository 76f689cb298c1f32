# Copyright (c) mmssl contributors. All rights reserved.
"""The text encoder of data2vec 2.0 (fairseq ``TextEncoder``).

The text modality of :class:`~mmssl.models.backbones.D2V2EncoderBase`:

* local encoder (``embed``, run on the whole sequence *before* the token
  selection): token embedding (the padding id's row is zero and stays
  zero), plus a learned position embedding, LayerNorm, dropout (fairseq's
  ``TextLocalEncoder`` with ``learned_pos``, ``layernorm_embedding``,
  ``no_scale_embedding``);
* context encoder (``context``, after the selection): nothing
  (``prenet_depth: 0``), no extra tokens;
* the shared stack of post-LN :class:`~mmssl.models.backbones.D2V2Block`
  blocks, no final norm.

The reference's EMA teacher covers the blocks only (``ema_encoder_only``)
and takes the student's local features of the unmasked sequence, so
``teacher_input = 'student_embedding'``: :class:`mmssl.Data2VecV2` feeds the
teacher's blocks ``student.embed(ids)``.

One class serves the three uses of a text encoder here:

* data2vec 2.0 pretraining: ``forward(ids, mask=..., num_clones=M)`` (the
  visible-token student path) and ``forward_targets`` (the teacher);
* MLM pretraining of the same encoder with ``mmssl.AlbertPretrainer``
  (``sop_head=None``) and fine-tuning with ``mmssl.TextClassifier``: called
  as ``forward(input_ids, token_type_ids, attention_mask) -> (sequence (B,
  T, C), pooled (B, C) or None)``, with ``word_embeddings``,
  ``hidden_size``, ``embedding_size`` and ``vocab_size`` as those models
  expect. Segment ids are ignored (RoBERTa-style, no segment embedding);
  padding keys (``attention_mask == 0``) get no attention.

Token ids, vocabulary size and the padding id are the tokenizer's
(``mmssl.SentencePieceTokenizer``: ``<pad>`` 0, ``[CLS]`` 2 as the
sequence start, ``[SEP]`` 3), the conventions of
``mmssl.TextDataPreprocessor``. A pretrained encoder loads into the
fine-tuning model with ``init_cfg=dict(type='Pretrained', checkpoint=...,
prefix='backbone.')`` from either pretraining's checkpoint.
"""
from typing import Optional, Tuple, Union

import numpy as np
import torch
import torch.nn as nn

from mmssl.registry import MODELS
from mmssl.utils.validation import check_float, check_int
from ..utils.masking import check_token_ids, tensor_check
from .d2v2_encoder import D2V2EncoderBase
from .d2v2_vit import D2V2Block

__all__ = ['D2V2TextEncoder']

PAD_ID = 0  # mmssl.datasets.tokenizer.PAD_ID


@MODELS.register_module()
class D2V2TextEncoder(D2V2EncoderBase):
    """data2vec 2.0 text encoder: token + learned position embedding,
    LayerNorm, dropout, post-LN blocks.

    Args:
        arch (str | dict): ``'base'`` (12 blocks, 768 wide, 12 heads, FFN
            3072), ``'small'`` (4 blocks, 256, 4 heads, 1024), ``'tiny'``
            (4 blocks, 64, 2 heads, 256), or a dict with ``embed_dims``,
            ``num_layers``, ``num_heads``, ``feedforward_channels``.
            Defaults to ``'base'``.
        vocab_size (int): The tokenizer's vocabulary. Defaults to 30000.
        max_position (int): Rows of the learned position table, the longest
            sequence (fairseq ``max_source_positions``). Defaults to 512.
        pad_token_id (int): The tokenizer's padding id. Defaults to 0.
        drop_rate (float): Dropout on the embedding, after the attention
            projection and after the FFN (fairseq ``dropout``,
            ``encoder_dropout``, ``post_mlp_drop``). Defaults to 0.1.
        attn_drop_rate (float): Attention dropout. Defaults to 0.1.
        ffn_drop_rate (float): Dropout inside the FFN (``activation_
            dropout``). Defaults to 0.
        drop_path_rate (float): Stochastic depth, rising linearly over the
            blocks. Defaults to 0.
        norm_eps (float): LayerNorm epsilon. Defaults to 1e-5.
        with_pooler (bool): A ``tanh(Linear)`` pooler on the first token for
            sentence classification (RoBERTa's classification head's dense
            layer). Defaults to True.
        init_cfg (dict, optional): e.g. ``dict(type='Pretrained',
            checkpoint=..., prefix='backbone.')``. BERT initialisation is
            applied at construction.
    """

    arch_zoo = {
        'base':
        dict(
            embed_dims=768,
            num_layers=12,
            num_heads=12,
            feedforward_channels=3072),
        'small':
        dict(
            embed_dims=256,
            num_layers=4,
            num_heads=4,
            feedforward_channels=1024),
        'tiny':
        dict(
            embed_dims=64, num_layers=4, num_heads=2,
            feedforward_channels=256),
    }
    teacher_input = 'student_embedding'
    embedding_modules = ('token_embed', 'pos_embed', 'ln_embed')

    def __init__(self,
                 arch: Union[str, dict] = 'base',
                 vocab_size: int = 30000,
                 max_position: int = 512,
                 pad_token_id: int = PAD_ID,
                 drop_rate: float = 0.1,
                 attn_drop_rate: float = 0.1,
                 ffn_drop_rate: float = 0.,
                 drop_path_rate: float = 0.,
                 norm_eps: float = 1e-5,
                 with_pooler: bool = True,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        name = type(self).__name__
        cfg = self._parse_arch(arch)
        self.embed_dims = check_int(cfg['embed_dims'],
                                    'model.backbone.arch.embed_dims', name)
        self.num_layers = check_int(cfg['num_layers'],
                                    'model.backbone.arch.num_layers', name)
        num_heads = check_int(cfg['num_heads'], 'model.backbone.arch.'
                              'num_heads', name)
        if self.embed_dims % num_heads:
            raise ValueError(
                f'model.backbone.arch: embed_dims={self.embed_dims} must be '
                f'divisible by num_heads={num_heads}')
        self.vocab_size = check_int(vocab_size, 'model.backbone.vocab_size',
                                    name)
        self.max_position = check_int(max_position,
                                      'model.backbone.max_position', name)
        self.pad_token_id = check_int(
            pad_token_id,
            'model.backbone.pad_token_id',
            name,
            minimum=0,
            maximum=self.vocab_size - 1)
        for key, value in (('drop_rate', drop_rate), ('attn_drop_rate',
                                                      attn_drop_rate),
                           ('ffn_drop_rate', ffn_drop_rate), ('drop_path_rate',
                                                              drop_path_rate)):
            check_float(
                value,
                f'model.backbone.{key}',
                name,
                low=0,
                high=1,
                inclusive=(True, False))

        C = self.embed_dims
        self.token_embed = nn.Embedding(
            self.vocab_size, C, padding_idx=self.pad_token_id)
        self.pos_embed = nn.Embedding(self.max_position, C)
        self.ln_embed = nn.LayerNorm(C, eps=norm_eps)
        self.drop_embed = nn.Dropout(drop_rate)
        dpr = np.linspace(0, drop_path_rate, self.num_layers)
        self.layers = nn.ModuleList([
            D2V2Block(
                C,
                num_heads,
                cfg['feedforward_channels'],
                drop_rate=drop_rate,
                attn_drop_rate=attn_drop_rate,
                ffn_drop_rate=ffn_drop_rate,
                drop_path_rate=float(dpr[i]),
                norm_eps=norm_eps) for i in range(self.num_layers)
        ])
        self.pooler = nn.Linear(C, C) if with_pooler else None
        self._bert_init()

    def _bert_init(self) -> None:
        """BERT init: Linear and Embedding N(0, 0.02), zero biases, the
        padding row zero, LayerNorm (1, 0)."""
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, mean=0., std=0.02)
                if isinstance(m, nn.Linear) and m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm) and m.elementwise_affine:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        with torch.no_grad():
            self.token_embed.weight[self.pad_token_id].zero_()

    # ------------------------------------------- AlbertPretrainer interface
    @property
    def word_embeddings(self) -> nn.Embedding:
        """The (V, C) token embedding (an MLM decoder ties to it)."""
        return self.token_embed

    @property
    def hidden_size(self) -> int:
        return self.embed_dims

    @property
    def embedding_size(self) -> int:
        return self.embed_dims

    # ------------------------------------------------------ modality hooks
    def check_ids(self, ids: torch.Tensor) -> None:
        """Refuse ids that are not (B, T) tokens of this model."""
        name = type(self).__name__
        if ids.dim() != 2 or ids.is_floating_point():
            raise ValueError(
                f'{name}: expected (B, T) integer token ids, got a '
                f'{tuple(ids.shape)} {ids.dtype} tensor')
        if ids.shape[1] > self.max_position:
            raise ValueError(
                f'{name}: a sequence of {ids.shape[1]} tokens is longer than '
                f'the {self.max_position} learned positions '
                f'(model.backbone.max_position={self.max_position}); cut the '
                f'text to at most {self.max_position} tokens (the data set\'s '
                'tokens_per_sample / max_length) or raise '
                'model.backbone.max_position')
        check_token_ids(ids, self.vocab_size, name)

    def token_layout(self, x: torch.Tensor) -> Tuple[int]:
        """(T, ) of a (B, T) batch of token ids."""
        return (x.shape[1], )

    def embed(self, x: torch.Tensor) -> Tuple[torch.Tensor, Tuple[int]]:
        """Local encoder: (B, T) ids -> (B, T, C) tokens, (T, )."""
        self.check_ids(x)
        pos = torch.arange(x.shape[1], device=x.device)
        tokens = self.token_embed(x) + self.pos_embed(pos)[None]
        return self.drop_embed(self.ln_embed(tokens)), (x.shape[1], )

    def forward_plain(
        self,
        x: torch.Tensor,
        attention_mask: Optional[torch.Tensor] = None
    ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """(B, T) ids -> (sequence (B, T, C), pooled (B, C) or None).

        ``attention_mask`` (B, T), 1 real / 0 padding, keeps padded keys
        out of the attention.
        """
        tokens, _ = self.embed(x)
        pad = None
        if attention_mask is not None:
            if attention_mask.shape != x.shape:
                raise ValueError(
                    f'{type(self).__name__}: attention_mask '
                    f'{tuple(attention_mask.shape)} must have the shape of '
                    f'the token ids {tuple(x.shape)}')
            pad = attention_mask == 0
            pad = pad if bool(pad.any()) else None
        h = self.context(tokens)
        for layer in self.layers:
            h, _ = layer(h, pad)
        pooled = None
        if self.pooler is not None:
            pooled = torch.tanh(self.pooler(h[:, 0]))
        return h, pooled

    def forward(self,
                input_ids: torch.Tensor,
                token_type_ids: Optional[torch.Tensor] = None,
                attention_mask: Optional[torch.Tensor] = None,
                *,
                mask: Optional[torch.Tensor] = None,
                num_clones: int = 1,
                tokens: Optional[torch.Tensor] = None,
                num_keep: Optional[int] = None):
        """The student path with ``mask`` (see
        :meth:`D2V2EncoderBase.forward`), else :meth:`forward_plain`.

        ``token_type_ids`` is accepted for the text models' call
        convention and ignored. Padding inside the student path is refused:
        data2vec 2.0 pretraining takes packed, unpadded sequences.
        """
        if mask is None or mask is False:
            return self.forward_plain(input_ids, attention_mask)
        if attention_mask is not None:
            tensor_check(
                attention_mask.bool(), lambda:
                f'{type(self).__name__}: the masked student path takes '
                'packed sequences without padding; use '
                "mmssl.TextBlockDataset(sample_break_mode='none')")
        return super().forward(input_ids, mask, num_clones, tokens, num_keep)
