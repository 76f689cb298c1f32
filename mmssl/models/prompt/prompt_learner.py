# Copyright (c) mmssl contributors. All rights reserved.
"""CoOp's learnable prompt context and the prompts it makes with names."""
from typing import List, Optional, Sequence

import torch
import torch.nn as nn

from mmssl.models.clip import get_tokenizer, tokenize

__all__ = ['NameTokens', 'PromptLearner']

_POSITIONS = ('end', 'middle', 'front')


class NameTokens(nn.Module):
    """The frozen token embeddings of ``"X X ... X {name}."`` for K names.

    Built by :meth:`PromptLearner.encode_names`; a module only so that its
    tensors follow ``.to(device)`` (non-persistent buffers: they are
    recomputed from the names, never saved).

    Attributes:
        token_ids (torch.Tensor): ``(K, L)`` ids (the end-of-text position
            is their argmax).
        prefix (torch.Tensor): ``(K, 1, d)`` start-of-text embedding.
        suffix (torch.Tensor): ``(K, L - 1 - M, d)`` name, '.', end of text
            and padding embeddings.
        name_lens (list[int]): BPE tokens of each name.
        names (list[str]): the K names.
    """

    def __init__(self, names: Sequence[str], token_ids: torch.Tensor,
                 embedding: torch.Tensor, n_ctx: int) -> None:
        super().__init__()
        self.names = list(names)
        tok = get_tokenizer()
        self.name_lens = [len(tok.encode(n)) for n in self.names]
        self.register_buffer('token_ids', token_ids, persistent=False)
        self.register_buffer(
            'prefix', embedding[:, :1].clone(), persistent=False)
        self.register_buffer(
            'suffix', embedding[:, 1 + n_ctx:].clone(), persistent=False)

    def __len__(self) -> int:
        return len(self.names)


class PromptLearner(nn.Module):
    """Learnable context vectors of CoOp.

    The context is ``ctx`` ``(M, d)`` shared by all classes (unified) or
    ``(K, M, d)`` one per class (class-specific context, ``csc=True``).
    Random init is N(0, 0.02^2); ``ctx_init`` words (e.g. ``'a photo of
    a'``) set M to their token count and ``ctx`` to their token embeddings
    (copied to every class with ``csc``), so that the untrained prompt is the
    hand-written one.

    Prompts for any list of names come from :meth:`encode_names` (frozen
    token embeddings) and :meth:`forward` (insert ``ctx``), so the same
    context can be applied to base, novel or NFL names.

    Args:
        token_embedding (nn.Embedding): CLIP's token embedding ``(V, d)``
            (only read; not a submodule).
        context_length (int): L, CLIP's text length.
        n_ctx (int): M, context tokens (ignored with ``ctx_init``).
            Defaults to 16.
        ctx_init (str, optional): words to initialise the context from.
        class_token_position (str): ``'end'`` ([SOS, ctx, name, '.']),
            ``'middle'`` ([SOS, ctx[:M/2], name, ctx[M/2:], '.']) or
            ``'front'`` ([SOS, name, ctx, '.']). Defaults to ``'end'``.
        csc (bool): class-specific context. Defaults to False.
        num_classes (int, optional): K, needed with ``csc``.
        init_std (float): std of the random init. Defaults to 0.02.
    """

    def __init__(self,
                 token_embedding: nn.Embedding,
                 context_length: int,
                 n_ctx: int = 16,
                 ctx_init: Optional[str] = None,
                 class_token_position: str = 'end',
                 csc: bool = False,
                 num_classes: Optional[int] = None,
                 init_std: float = 0.02) -> None:
        super().__init__()
        if class_token_position not in _POSITIONS:
            raise ValueError(f'class_token_position must be one of '
                             f'{_POSITIONS}, got {class_token_position!r}')
        if csc and not num_classes:
            raise ValueError('class-specific context (csc=True) needs '
                             'num_classes')
        self.context_length = context_length
        self.position = class_token_position
        self.csc = csc
        self.num_classes = num_classes
        width = token_embedding.weight.shape[1]
        self.ctx_init = None
        if ctx_init:
            ctx_init = ctx_init.replace('_', ' ').strip()
            self.ctx_init = ctx_init
            n_ctx = len(get_tokenizer().encode(ctx_init))
            ctx = self._word_ctx(token_embedding, ctx_init, n_ctx)
            self.prompt_prefix = ctx_init
        else:
            shape = (num_classes, n_ctx, width) if csc else (n_ctx, width)
            ctx = torch.empty(shape).normal_(0, init_std)
            self.prompt_prefix = ' '.join(['X'] * n_ctx)
        if n_ctx < 1 or 1 + n_ctx + 2 > context_length:
            raise ValueError(f'n_ctx={n_ctx} does not fit a context length '
                             f'of {context_length}')
        self.n_ctx = n_ctx
        self.ctx = nn.Parameter(ctx)
        self._embedding = [token_embedding]  # not a submodule

    def _word_ctx(self, token_embedding: nn.Embedding, words: str,
                  n_ctx: int) -> torch.Tensor:
        with torch.no_grad():
            ids = tokenize(words, self.context_length).to(
                token_embedding.weight.device)
            ctx = token_embedding(ids)[0, 1:1 + n_ctx].clone().float()
        if self.csc:
            ctx = ctx.unsqueeze(0).repeat(self.num_classes, 1, 1)
        return ctx

    def reset_ctx_from_words(self) -> None:
        """Set ``ctx`` again to the token embeddings of ``ctx_init``.

        The embeddings are read when the learner is built; a CLIP whose
        weights are loaded afterwards (``mmssl.CoOp`` loads them in
        ``init_weights``) must call this, or the context would hold the
        words' embeddings of the randomly initialised CLIP.
        """
        if self.ctx_init is None:
            return
        ctx = self._word_ctx(self._embedding[0], self.ctx_init, self.n_ctx)
        with torch.no_grad():
            self.ctx.copy_(ctx.to(self.ctx))

    def encode_names(self, names: Sequence[str]) -> NameTokens:
        """Frozen token embeddings of the prompts of ``names``.

        Args:
            names (Sequence[str]): K class names ('_' becomes ' ').

        Returns:
            NameTokens: ids ``(K, L)``, prefix ``(K, 1, d)`` and suffix
            ``(K, L - 1 - M, d)``.
        """
        names = [n.replace('_', ' ') for n in names]
        texts = [f'{self.prompt_prefix} {n}.' for n in names]
        ids = tokenize(texts, self.context_length)
        too_long = [n for n, row in zip(names, ids) if row[-1] != 0]
        if too_long:
            raise ValueError(f'prompts of {too_long[:3]} do not fit the '
                             f'context length {self.context_length}')
        emb = self._embedding[0]
        with torch.no_grad():
            embedding = emb(ids.to(emb.weight.device)).float()
        return NameTokens(names, ids, embedding,
                          self.n_ctx).to(self.ctx.device)

    def forward(self,
                tokens: NameTokens,
                class_idx: Optional[List[int]] = None) -> torch.Tensor:
        """Prompts ``(K, L, d)`` of the names in ``tokens``.

        Args:
            tokens (NameTokens): from :meth:`encode_names`.
            class_idx (list[int], optional): with ``csc``, the row of
                ``ctx`` of each name (defaults to ``0..K-1``).

        Returns:
            torch.Tensor: ``(K, L, d)`` prompt embeddings; run them with
            ``tokens.token_ids`` through
            :func:`mmssl.models.clip.encode_text_embeddings`.
        """
        k = len(tokens)
        ctx = self.ctx
        if self.csc:
            ctx = ctx[class_idx if class_idx is not None else slice(0, k)]
            if ctx.shape[0] != k:
                raise ValueError(f'class-specific context has '
                                 f'{self.ctx.shape[0]} rows, got {k} names')
        else:
            ctx = ctx.unsqueeze(0).expand(k, -1, -1)
        prefix, suffix = tokens.prefix, tokens.suffix
        if self.position == 'end':
            return torch.cat([prefix, ctx, suffix], dim=1)
        half = self.n_ctx // 2
        prompts = []
        for i, n in enumerate(tokens.name_lens):
            name, rest = suffix[i:i + 1, :n], suffix[i:i + 1, n:]
            if self.position == 'middle':
                parts = [
                    prefix[i:i + 1], ctx[i:i + 1, :half], name,
                    ctx[i:i + 1, half:], rest
                ]
            else:
                parts = [prefix[i:i + 1], name, ctx[i:i + 1], rest]
            prompts.append(torch.cat(parts, dim=1))
        return torch.cat(prompts, dim=0)
