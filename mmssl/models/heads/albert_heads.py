# Copyright (c) mmssl contributors. All rights reserved.
"""Heads of ALBERT: masked-LM, sentence order, and text classification.

* :class:`AlbertMLMHead`: Linear(H, E) - GELU - LayerNorm(E) - logits
  ``h @ W_emb^T + b`` with the decoder tied *by reference* to the encoder's
  (V, E) word embedding (google-research/albert ``get_masked_lm_output``);
* :class:`SentenceOrderHead`: Linear(H, 2) on the pooled [CLS] output
  (``get_sentence_order_output``; label 0 = original order, 1 = swapped);
* :class:`TextClsHead`: dropout + Linear(H, C) on the pooled output for
  GLUE-format classification (cross-entropy) or regression (MSE, C = 1).
"""
from typing import Dict, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule

from mmssl.registry import MODELS
from mmssl.utils.validation import check_float, check_int
from ..backbones.albert import get_activation

__all__ = [
    'AlbertMLMHead', 'SentenceOrderHead', 'TextClsHead', 'mlm_correct_counts'
]

_TRUNC_NORMAL = dict(
    type='TruncNormal', layer='Linear', std=0.02, a=-0.04, b=0.04, bias=0.)


def _need(value, key: str, owner: str) -> int:
    if value is None:
        raise ValueError(f'{owner}: {key} is not set; give it in the head '
                         'config (the ALBERT models fill it in from the '
                         'backbone when it is left out)')
    return check_int(value, key, owner)


def mlm_correct_counts(
        logits: torch.Tensor, labels: torch.Tensor,
        weights: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Correct and counted predictions per sequence.

    Args:
        logits (Tensor): (B, P, V).
        labels (Tensor): (B, P).
        weights (Tensor): (B, P), 0 on padding slots.

    Returns:
        tuple: (B, ) weighted number of correct argmax predictions and (B, )
        sum of weights.
    """
    w = weights.float()
    correct = (logits.argmax(-1) == labels).float() * w
    return correct.sum(1), w.sum(1)


@MODELS.register_module()
class AlbertMLMHead(BaseModule):
    """Masked-LM head with a decoder tied to the word embedding.

    The decoder weight is not a parameter of the head: :meth:`tie_weights`
    keeps a reference to the encoder's ``nn.Embedding`` (unregistered, so a
    checkpoint holds the weight once, under the backbone) and every forward
    multiplies by its current weight, the same ``Parameter`` object
    (``head.decoder_weight is backbone.word_embeddings.weight``).

    Args:
        in_channels (int, optional): H. The ALBERT models fill it in from the
            backbone when None.
        embedding_size (int, optional): E, likewise.
        vocab_size (int, optional): V, likewise.
        act (str): Activation after the dense layer. Defaults to
            ``'gelu_new'`` (the reference's GELU).
        loss (dict): The loss, called as ``loss(logits, labels, weights)``.
            Defaults to ``dict(type='mmssl.MaskedLMLoss')``.
        init_cfg (dict | list[dict], optional): Defaults to truncated normal
            std 0.02 on the dense layer; the output bias starts at 0.
    """

    def __init__(self,
                 in_channels: Optional[int] = None,
                 embedding_size: Optional[int] = None,
                 vocab_size: Optional[int] = None,
                 act: str = 'gelu_new',
                 loss: Optional[Dict] = None,
                 init_cfg: Optional[Dict] = _TRUNC_NORMAL) -> None:
        super().__init__(init_cfg=init_cfg)
        name = type(self).__name__
        self.in_channels = _need(in_channels, 'in_channels', name)
        self.embedding_size = _need(embedding_size, 'embedding_size', name)
        self.vocab_size = _need(vocab_size, 'vocab_size', name)
        self.dense = nn.Linear(self.in_channels, self.embedding_size)
        self.act = get_activation(act, name)
        self.norm = nn.LayerNorm(self.embedding_size, eps=1e-12)
        self.bias = nn.Parameter(torch.zeros(self.vocab_size))
        self.loss_module = MODELS.build(
            loss if loss is not None else dict(type='mmssl.MaskedLMLoss'))
        self.__dict__['_tied'] = None  # not a registered submodule

    def tie_weights(self, embedding: nn.Embedding) -> None:
        """Use ``embedding.weight`` (V, E) as the decoder, by reference."""
        name = type(self).__name__
        shape = tuple(embedding.weight.shape)
        if shape != (self.vocab_size, self.embedding_size):
            raise ValueError(
                f'{name}: cannot tie the decoder (vocab_size='
                f'{self.vocab_size}, embedding_size={self.embedding_size}) '
                f'to a word embedding of shape {shape}; make the head\'s '
                'vocab_size / embedding_size equal the backbone\'s (or leave '
                'them out to copy them)')
        self.__dict__['_tied'] = embedding

    @property
    def decoder_weight(self) -> torch.Tensor:
        """The tied (V, E) decoder weight."""
        if self._tied is None:
            raise RuntimeError(
                f'{type(self).__name__} is not tied to a word embedding; '
                'call head.tie_weights(backbone.word_embeddings) first '
                '(mmssl.AlbertPretrainer does this when it is built)')
        return self._tied.weight

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """(B, P, H) hidden states of the masked slots -> (B, P, V) logits.
        """
        h = self.norm(self.act(self.dense(hidden)))
        return F.linear(h, self.decoder_weight, self.bias)

    def loss(self, hidden: torch.Tensor, labels: torch.Tensor,
             weights: torch.Tensor) -> Dict[str, torch.Tensor]:
        """MLM loss and accuracy of the masked slots.

        Args:
            hidden (Tensor): (B, P, H) encoder states at the masked slots.
            labels (Tensor): (B, P) original token ids.
            weights (Tensor): (B, P) 1 for real slots, 0 for padding.

        Returns:
            dict: ``loss_mlm`` and ``mlm_acc`` (detached, not optimised).
        """
        logits = self(hidden)
        correct, total = mlm_correct_counts(logits.detach(), labels, weights)
        return dict(
            loss_mlm=self.loss_module(logits, labels, weights),
            mlm_acc=correct.sum() / total.sum().clamp(min=1.))


@MODELS.register_module()
class SentenceOrderHead(BaseModule):
    """Sentence-order prediction on the pooled [CLS] output.

    Args:
        in_channels (int, optional): H; filled in from the backbone when
            None.
        dropout (float): Dropout before the classifier (HuggingFace uses
            0.1, the TF reference none). Defaults to 0.
        loss_weight (float): Multiplier of the cross-entropy. Defaults to 1.
        init_cfg (dict, optional): Defaults to truncated normal std 0.02.
    """

    def __init__(self,
                 in_channels: Optional[int] = None,
                 dropout: float = 0.,
                 loss_weight: float = 1.,
                 init_cfg: Optional[Dict] = _TRUNC_NORMAL) -> None:
        super().__init__(init_cfg=init_cfg)
        name = type(self).__name__
        self.in_channels = _need(in_channels, 'in_channels', name)
        check_float(
            dropout, 'dropout', name, low=0, high=1, inclusive=(True, False))
        self.loss_weight = check_float(loss_weight, 'loss_weight', name, low=0)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(self.in_channels, 2)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        """(B, H) pooled output -> (B, 2) logits (0 original, 1 swapped)."""
        return self.fc(self.dropout(pooled))

    def loss(self, pooled: torch.Tensor,
             labels: torch.Tensor) -> Dict[str, torch.Tensor]:
        """``loss_sop`` (mean CE) and ``sop_acc`` (detached) of (B, H)
        ``pooled`` against (B, ) ``labels``."""
        logits = self(pooled)
        acc = (logits.detach().argmax(-1) == labels).float().mean()
        return dict(
            loss_sop=self.loss_weight *
            F.cross_entropy(logits.float(), labels.long()),
            sop_acc=acc)


@MODELS.register_module()
class TextClsHead(BaseModule):
    """Sequence classification / regression on the pooled output.

    As ALBERT's GLUE fine-tuning (``classifier_utils``): dropout, then
    Linear(H, C) on the pooled [CLS] output; cross-entropy for
    classification, mean squared error on the single output for regression
    (STS-B).

    Args:
        num_classes (int): C; must be 1 for regression.
        in_channels (int, optional): H; filled in from the backbone when
            None.
        regression (bool): Regression with MSE. Defaults to False.
        dropout (float): Dropout on the pooled output. Defaults to 0.1.
        loss_weight (float): Multiplier of the loss. Defaults to 1.
        init_cfg (dict, optional): Defaults to truncated normal std 0.02.
    """

    def __init__(self,
                 num_classes: int,
                 in_channels: Optional[int] = None,
                 regression: bool = False,
                 dropout: float = 0.1,
                 loss_weight: float = 1.,
                 init_cfg: Optional[Dict] = _TRUNC_NORMAL) -> None:
        super().__init__(init_cfg=init_cfg)
        name = type(self).__name__
        self.num_classes = check_int(num_classes, 'num_classes', name)
        self.in_channels = _need(in_channels, 'in_channels', name)
        self.regression = bool(regression)
        if self.regression and self.num_classes != 1:
            raise ValueError(f'{name}: regression=True needs num_classes=1, '
                             f'got {num_classes}')
        if not self.regression and self.num_classes < 2:
            raise ValueError(f'{name}: classification needs num_classes >= '
                             f'2, got {num_classes}; for a real-valued target'
                             ' set regression=True and num_classes=1')
        check_float(
            dropout, 'dropout', name, low=0, high=1, inclusive=(True, False))
        self.loss_weight = check_float(loss_weight, 'loss_weight', name, low=0)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(self.in_channels, self.num_classes)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        """(B, H) pooled output -> (B, C) logits ((B, 1) for regression)."""
        return self.fc(self.dropout(pooled))

    def loss(self, pooled: torch.Tensor,
             targets: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Loss of (B, H) ``pooled`` against (B, ) ``targets`` (class ids,
        or float values for regression).

        Returns:
            dict: ``loss`` and, for classification, ``accuracy``
            (detached).
        """
        out = self(pooled)
        if self.regression:
            loss = F.mse_loss(out.float().squeeze(-1), targets.float())
            return dict(loss=self.loss_weight * loss)
        targets = targets.long()
        bad = targets[(targets < 0) | (targets >= self.num_classes)]
        if bad.numel():
            raise ValueError(
                f'{type(self).__name__}: label {int(bad[0])} is '
                f'outside [0, {self.num_classes}); set num_classes to the '
                "data set's number of labels")
        acc = (out.detach().argmax(-1) == targets).float().mean()
        return dict(
            loss=self.loss_weight * F.cross_entropy(out.float(), targets),
            accuracy=acc)

    def predict(self, pooled: torch.Tensor) -> torch.Tensor:
        """(B, C) softmax scores, or (B, ) values for regression."""
        out = self(pooled)
        if self.regression:
            return out.squeeze(-1)
        return out.softmax(-1)
