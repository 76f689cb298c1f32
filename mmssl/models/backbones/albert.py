# Copyright (c) mmssl contributors. All rights reserved.
"""The ALBERT encoder (Lan et al., "ALBERT: A Lite BERT for Self-supervised
Learning of Language Representations", ICLR 2020).

Reference: google-research/albert ``modeling.py`` (TF1); HuggingFace
``transformers`` ``AlbertModel`` mirrors it. One forward on a batch of B
token sequences of length T::

    word [V, E] + position [max_position, E] + segment [2, E]
      -> LayerNorm(E) -> dropout                          (B, T, E)
    -> projection E -> H (only when E != H, as the reference)  (B, T, H)
    -> L post-LN BERT layers; layer l runs the ``inner_group_num`` blocks of
       parameter group g = floor(l * G / L)               (B, T, H)
    -> pooler tanh(Linear(H, H)) on the [CLS] token       (B, H)

Parameter sharing (``share``) is real sharing: the layers that share a part
call the same module, so they hold the same ``Parameter`` objects and their
gradients add up in one ``.grad``. The unique parts live once each in
``attn_blocks`` / ``ffn_blocks`` (so a checkpoint holds every weight once);
:meth:`AlbertEncoder.block_indices` says which block each layer runs.

* ``'all'`` (ALBERT): attention and FFN shared within each group;
* ``'attention'``: attention shared within each group, FFN per layer;
* ``'ffn'``: FFN shared within each group, attention per layer;
* ``'none'`` (BERT): every layer has its own weights.

The attention / FFN ablations are the paper's (Table 4); the public TF code
only has the group-wise all-parameter sharing.
"""
from functools import partial
from typing import Dict, List, Optional, Tuple, Union

import torch
import torch.nn as nn
from mmengine.model import BaseModule

from mmssl.registry import MODELS
from mmssl.utils.validation import check_choice, check_float, check_int
from ..utils.attention import scaled_dot_product_attention
from ..utils.masking import check_token_ids

__all__ = [
    'AlbertEncoder', 'ALBERT_ARCHS', 'SHARE_MODES', 'ACTIVATIONS',
    'albert_num_params', 'count_parameters'
]

#: the paper's sizes (Table 1); BERT rows are the unshared baselines
ALBERT_ARCHS: Dict[str, Dict] = {
    'base':
    dict(
        num_layers=12,
        hidden_size=768,
        num_heads=12,
        ffn_dim=3072,
        embedding_size=128,
        share='all'),
    'large':
    dict(
        num_layers=24,
        hidden_size=1024,
        num_heads=16,
        ffn_dim=4096,
        embedding_size=128,
        share='all'),
    'xlarge':
    dict(
        num_layers=24,
        hidden_size=2048,
        num_heads=16,
        ffn_dim=8192,
        embedding_size=128,
        share='all'),
    'xxlarge':
    dict(
        num_layers=12,
        hidden_size=4096,
        num_heads=64,
        ffn_dim=16384,
        embedding_size=128,
        share='all'),
    'bert-base':
    dict(
        num_layers=12,
        hidden_size=768,
        num_heads=12,
        ffn_dim=3072,
        embedding_size=768,
        share='none'),
    'bert-large':
    dict(
        num_layers=24,
        hidden_size=1024,
        num_heads=16,
        ffn_dim=4096,
        embedding_size=1024,
        share='none'),
}

SHARE_MODES = ('all', 'attention', 'ffn', 'none')

#: activation name -> module class; ``gelu_new`` is the tanh approximation of
#: the reference (and of HuggingFace's ALBERT configs)
ACTIVATIONS = {
    'gelu_new': partial(nn.GELU, approximate='tanh'),
    'gelu': nn.GELU,
    'relu': nn.ReLU,
}

_ARCH_KEYS = ('num_layers', 'hidden_size', 'num_heads', 'ffn_dim',
              'embedding_size', 'share')


def get_activation(act: str, owner: str) -> nn.Module:
    """A new activation module called ``act`` (see :data:`ACTIVATIONS`)."""
    check_choice(act, 'act', owner, tuple(ACTIVATIONS))
    return ACTIVATIONS[act]()


class AlbertEmbeddings(nn.Module):
    """Factorised embeddings: word + position + segment, LayerNorm, dropout.

    Args:
        vocab_size (int): V.
        embedding_size (int): E.
        max_position (int): Rows of the position table.
        type_vocab_size (int): Segment ids (2: sentence A / B).
        dropout (float): Dropout after the LayerNorm.
        eps (float): LayerNorm epsilon. Defaults to 1e-12 (the reference).
    """

    def __init__(self,
                 vocab_size: int,
                 embedding_size: int,
                 max_position: int,
                 type_vocab_size: int,
                 dropout: float = 0.,
                 eps: float = 1e-12) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab_size, embedding_size)
        self.position_embeddings = nn.Embedding(max_position, embedding_size)
        self.token_type_embeddings = nn.Embedding(type_vocab_size,
                                                  embedding_size)
        self.norm = nn.LayerNorm(embedding_size, eps=eps)
        self.dropout = nn.Dropout(dropout)

    def forward(self, input_ids: torch.Tensor,
                token_type_ids: torch.Tensor) -> torch.Tensor:
        """(B, T) ids and segment ids -> (B, T, E) embeddings."""
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        x = (
            self.word_embeddings(input_ids) +
            self.position_embeddings(positions)[None] +
            self.token_type_embeddings(token_type_ids))
        return self.dropout(self.norm(x))


class AlbertAttention(nn.Module):
    """Post-LN multi-head self-attention: ``LN(x + proj(attn(x)))``.

    Args:
        hidden_size (int): H.
        num_heads (int): Heads; must divide H.
        dropout (float): Dropout on the output projection.
        attn_dropout (float): Dropout on the attention probabilities.
        eps (float): LayerNorm epsilon.
    """

    def __init__(self,
                 hidden_size: int,
                 num_heads: int,
                 dropout: float = 0.,
                 attn_dropout: float = 0.,
                 eps: float = 1e-12) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.attn_dropout = attn_dropout
        self.query = nn.Linear(hidden_size, hidden_size)
        self.key = nn.Linear(hidden_size, hidden_size)
        self.value = nn.Linear(hidden_size, hidden_size)
        self.out_proj = nn.Linear(hidden_size, hidden_size)
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(hidden_size, eps=eps)

    def forward(self, x: torch.Tensor,
                key_mask: Optional[torch.Tensor]) -> torch.Tensor:
        """(B, T, H) states, (B, 1, 1, T) bool mask of real keys -> (B, T, H).
        """
        b, t, h = x.shape

        def heads(y):  # (B, T, H) -> (B, heads, T, H / heads)
            return y.view(b, t, self.num_heads, -1).transpose(1, 2)

        out = scaled_dot_product_attention(
            heads(self.query(x)),
            heads(self.key(x)),
            heads(self.value(x)),
            attn_mask=key_mask,
            dropout_p=self.attn_dropout if self.training else 0.)
        out = out.transpose(1, 2).reshape(b, t, h)
        return self.norm(x + self.dropout(self.out_proj(out)))


class AlbertFFN(nn.Module):
    """Post-LN feed-forward block: ``LN(x + W2 act(W1 x))``.

    Args:
        hidden_size (int): H.
        ffn_dim (int): Inner width.
        act (str): Activation (see :data:`ACTIVATIONS`).
        dropout (float): Dropout on the block output.
        eps (float): LayerNorm epsilon.
    """

    def __init__(self,
                 hidden_size: int,
                 ffn_dim: int,
                 act: str = 'gelu_new',
                 dropout: float = 0.,
                 eps: float = 1e-12) -> None:
        super().__init__()
        self.fc1 = nn.Linear(hidden_size, ffn_dim)
        self.fc2 = nn.Linear(ffn_dim, hidden_size)
        self.act = get_activation(act, 'AlbertEncoder')
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(hidden_size, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, H) -> (B, T, H)."""
        return self.norm(x + self.dropout(self.fc2(self.act(self.fc1(x)))))


@MODELS.register_module()
class AlbertEncoder(BaseModule):
    """ALBERT / BERT text encoder with factorised embeddings and cross-layer
    parameter sharing.

    Args:
        arch (str | dict): One of :data:`ALBERT_ARCHS` (``'base'``,
            ``'large'``, ``'xlarge'``, ``'xxlarge'``, ``'bert-base'``,
            ``'bert-large'``) or a dict with any of ``num_layers``,
            ``hidden_size``, ``num_heads``, ``ffn_dim``, ``embedding_size``,
            ``share``. The size arguments below, when given, override it.
            Defaults to ``'base'``.
        vocab_size (int): V, the tokenizer's vocabulary. Defaults to 30000.
        embedding_size (int, optional): E. Defaults to the arch's (128 for
            ALBERT, H for BERT).
        hidden_size (int, optional): H. Defaults to the arch's.
        num_layers (int, optional): L. Defaults to the arch's.
        num_heads (int, optional): Attention heads. Defaults to the arch's.
        ffn_dim (int, optional): FFN inner width. Defaults to the arch's.
        num_hidden_groups (int): G, parameter groups; layer l uses group
            ``floor(l * G / L)``. Defaults to 1.
        inner_group_num (int): Blocks per group, run in turn by every layer
            of the group. Defaults to 1.
        share (str, optional): ``'all'``, ``'attention'``, ``'ffn'`` or
            ``'none'`` (see the module docstring). Defaults to the arch's
            (``'all'`` for ALBERT, ``'none'`` for BERT).
        max_position (int): Rows of the position table. Defaults to 512.
        type_vocab_size (int): Segment ids. Defaults to 2.
        dropout (float): Hidden dropout. Defaults to 0 (ALBERT v2).
        attn_dropout (float): Attention-probability dropout. Defaults to 0.
        act (str): ``'gelu_new'`` (tanh GELU, the reference), ``'gelu'`` or
            ``'relu'``. Defaults to ``'gelu_new'``.
        with_pooler (bool): Build the [CLS] pooler. Without it the pooled
            output is None. Defaults to True.
        projection (bool, optional): Build the E -> H projection. None (the
            default) builds it only when E != H, as the reference; True
            builds it always (HuggingFace's ``AlbertModel`` has one also when
            E == H).
        init_cfg (dict | list[dict], optional): Defaults to truncated normal
            (std 0.02, cut at 2 std) for Linear and Embedding weights, zero
            biases, LayerNorm (1, 0).
    """

    def __init__(self,
                 arch: Union[str, Dict] = 'base',
                 vocab_size: int = 30000,
                 embedding_size: Optional[int] = None,
                 hidden_size: Optional[int] = None,
                 num_layers: Optional[int] = None,
                 num_heads: Optional[int] = None,
                 ffn_dim: Optional[int] = None,
                 num_hidden_groups: int = 1,
                 inner_group_num: int = 1,
                 share: Optional[str] = None,
                 max_position: int = 512,
                 type_vocab_size: int = 2,
                 dropout: float = 0.,
                 attn_dropout: float = 0.,
                 act: str = 'gelu_new',
                 with_pooler: bool = True,
                 projection: Optional[bool] = None,
                 init_cfg: Optional[Union[Dict, List[Dict]]] = None) -> None:
        if init_cfg is None:
            init_cfg = [
                dict(
                    type='TruncNormal',
                    layer=['Linear', 'Embedding'],
                    std=0.02,
                    a=-0.04,
                    b=0.04,
                    bias=0.),
                dict(type='Constant', layer='LayerNorm', val=1., bias=0.)
            ]
        super().__init__(init_cfg=init_cfg)
        name = type(self).__name__
        cfg = self._arch_settings(arch, name)
        overrides = dict(
            num_layers=num_layers,
            hidden_size=hidden_size,
            num_heads=num_heads,
            ffn_dim=ffn_dim,
            embedding_size=embedding_size,
            share=share)
        cfg.update({k: v for k, v in overrides.items() if v is not None})
        missing = [k for k in _ARCH_KEYS if k not in cfg]
        if missing:
            raise ValueError(f'{name}: arch dict lacks {missing}; give them '
                             'in arch or as arguments')
        self.vocab_size = check_int(vocab_size, 'vocab_size', name)
        self.embedding_size = check_int(cfg['embedding_size'],
                                        'embedding_size', name)
        self.hidden_size = check_int(cfg['hidden_size'], 'hidden_size', name)
        self.num_layers = check_int(cfg['num_layers'], 'num_layers', name)
        self.num_heads = check_int(cfg['num_heads'], 'num_heads', name)
        self.ffn_dim = check_int(cfg['ffn_dim'], 'ffn_dim', name)
        self.share = check_choice(cfg['share'], 'share', name, SHARE_MODES)
        self.num_hidden_groups = check_int(
            num_hidden_groups,
            'num_hidden_groups',
            name,
            maximum=self.num_layers,
            note='parameter groups, at most L')
        self.inner_group_num = check_int(inner_group_num, 'inner_group_num',
                                         name)
        self.max_position = check_int(max_position, 'max_position', name)
        check_int(type_vocab_size, 'type_vocab_size', name)
        check_float(
            dropout, 'dropout', name, low=0, high=1, inclusive=(True, False))
        check_float(
            attn_dropout,
            'attn_dropout',
            name,
            low=0,
            high=1,
            inclusive=(True, False))
        get_activation(act, name)
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f'{name}: hidden_size ({self.hidden_size}) must be a multiple '
                f'of num_heads ({self.num_heads})')

        self.embeddings = AlbertEmbeddings(vocab_size, self.embedding_size,
                                           max_position, type_vocab_size,
                                           dropout)
        if projection is None:
            projection = self.embedding_size != self.hidden_size
        elif not projection and self.embedding_size != self.hidden_size:
            raise ValueError(
                f'{name}: projection=False needs embedding_size == '
                f'hidden_size, got {self.embedding_size} and '
                f'{self.hidden_size}')
        self.projection = (
            nn.Linear(self.embedding_size, self.hidden_size)
            if projection else None)

        self._attn_index = self._indices(self.share in ('all', 'attention'))
        self._ffn_index = self._indices(self.share in ('all', 'ffn'))
        h = self.hidden_size
        self.attn_blocks = nn.ModuleList(
            AlbertAttention(h, self.num_heads, dropout, attn_dropout)
            for _ in range(1 + max(max(r) for r in self._attn_index)))
        self.ffn_blocks = nn.ModuleList(
            AlbertFFN(h, self.ffn_dim, act, dropout)
            for _ in range(1 + max(max(r) for r in self._ffn_index)))
        self.pooler = nn.Linear(h, h) if with_pooler else None

    @staticmethod
    def _arch_settings(arch: Union[str, Dict], name: str) -> Dict:
        if isinstance(arch, str):
            if arch not in ALBERT_ARCHS:
                raise ValueError(f'{name}: arch must be one of '
                                 f'{sorted(ALBERT_ARCHS)} or a dict, got '
                                 f'{arch!r}')
            return dict(ALBERT_ARCHS[arch])
        if not isinstance(arch, dict):
            raise ValueError(f'{name}: arch must be a str or a dict, got '
                             f'{type(arch).__name__}')
        unknown = set(arch) - set(_ARCH_KEYS)
        if unknown:
            raise ValueError(f'{name}: unknown arch keys {sorted(unknown)}; '
                             f'allowed: {list(_ARCH_KEYS)}')
        return dict(arch)

    def group_of(self, layer: int) -> int:
        """The parameter group ``floor(layer * G / L)`` of layer ``layer``."""
        return layer * self.num_hidden_groups // self.num_layers

    def _indices(self, shared: bool) -> List[List[int]]:
        """Block index of each (layer, inner block): per group if shared,
        else per layer."""
        n = self.inner_group_num
        return [[(self.group_of(li) if shared else li) * n + i
                 for i in range(n)] for li in range(self.num_layers)]

    def block_indices(self, layer: int) -> List[Tuple[int, int]]:
        """``(attention block, FFN block)`` indices run by ``layer``, one
        pair per inner block."""
        return list(zip(self._attn_index[layer], self._ffn_index[layer]))

    def layer_modules(self, layer: int) -> List[Tuple[nn.Module, nn.Module]]:
        """The ``(attention, FFN)`` modules run by ``layer``, in order."""
        return [(self.attn_blocks[a], self.ffn_blocks[f])
                for a, f in self.block_indices(layer)]

    @property
    def word_embeddings(self) -> nn.Embedding:
        """The (V, E) word embedding, to tie the MLM decoder to."""
        return self.embeddings.word_embeddings

    def _check_inputs(self, input_ids: torch.Tensor,
                      token_type_ids: Optional[torch.Tensor],
                      attention_mask: Optional[torch.Tensor]) -> None:
        name = type(self).__name__
        if input_ids.dim() != 2:
            raise ValueError(f'{name}: input_ids must be (B, T), got '
                             f'{tuple(input_ids.shape)}')
        for key, value in (('token_type_ids', token_type_ids),
                           ('attention_mask', attention_mask)):
            if value is not None and value.shape != input_ids.shape:
                raise ValueError(
                    f'{name}: {key} {tuple(value.shape)} must have the shape '
                    f'of input_ids {tuple(input_ids.shape)}')
        if input_ids.shape[1] > self.max_position:
            raise ValueError(
                f'{name}: sequence length {input_ids.shape[1]} exceeds '
                f'max_position={self.max_position}; shorten the sequences '
                '(the data pipeline\'s max length) or raise max_position')
        check_token_ids(input_ids, self.vocab_size, name)

    def forward(
        self,
        input_ids: torch.Tensor,
        token_type_ids: Optional[torch.Tensor] = None,
        attention_mask: Optional[torch.Tensor] = None
    ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Encode a batch of token sequences.

        Args:
            input_ids (Tensor): (B, T) token ids.
            token_type_ids (Tensor, optional): (B, T) segment ids (0 for
                sentence A, 1 for B). Defaults to zeros.
            attention_mask (Tensor, optional): (B, T), 1 for real tokens and
                0 for padding (padding keys get no attention). Defaults to
                all ones.

        Returns:
            tuple: ``sequence_output`` (B, T, H) and ``pooled`` (B, H), the
            tanh pooler on the first ([CLS]) token, or None without pooler.
        """
        self._check_inputs(input_ids, token_type_ids, attention_mask)
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        x = self.embeddings(input_ids, token_type_ids)
        if self.projection is not None:
            x = self.projection(x)
        key_mask = None
        if attention_mask is not None:
            key_mask = attention_mask.bool()[:, None, None, :]
        for layer in range(self.num_layers):
            for attn, ffn in self.layer_modules(layer):
                x = ffn(attn(x, key_mask))
        pooled = None
        if self.pooler is not None:
            pooled = torch.tanh(self.pooler(x[:, 0]))
        return x, pooled


def count_parameters(module: nn.Module) -> int:
    """Unique parameters of ``module`` (shared ones once)."""
    return sum(p.numel() for p in module.parameters())


def albert_num_params(vocab_size: int = 30000,
                      embedding_size: int = 128,
                      hidden_size: int = 768,
                      ffn_dim: int = 3072,
                      num_attn: int = 1,
                      num_ffn: int = 1,
                      max_position: int = 512,
                      type_vocab_size: int = 2,
                      with_pooler: bool = True) -> int:
    """Closed-form parameter count of :class:`AlbertEncoder` (spec 3).

    ``num_attn`` / ``num_ffn`` are the numbers of distinct attention / FFN
    blocks (1 and 1 for ALBERT, L and L for BERT).
    """
    e, h = embedding_size, hidden_size
    emb = (vocab_size + max_position + type_vocab_size) * e + 2 * e
    proj = e * h + h if e != h else 0
    attn = 4 * (h * h + h) + 2 * h
    ffn = 2 * h * ffn_dim + ffn_dim + h + 2 * h
    pooler = h * h + h if with_pooler else 0
    return emb + proj + num_attn * attn + num_ffn * ffn + pooler
