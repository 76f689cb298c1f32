# Copyright (c) mmssl contributors. All rights reserved.
"""ALBERT heads: the tied MLM decoder, SOP and text classification."""
import pytest
import torch
import torch.nn.functional as F

from mmssl.models.backbones import AlbertEncoder
from mmssl.models.heads import AlbertMLMHead, SentenceOrderHead, TextClsHead


def _encoder():
    return AlbertEncoder(
        vocab_size=100,
        embedding_size=16,
        hidden_size=32,
        num_layers=2,
        num_heads=4,
        ffn_dim=64)


def test_mlm_decoder_is_the_word_embedding_by_reference():
    enc = _encoder()
    head = AlbertMLMHead(in_channels=32, embedding_size=16, vocab_size=100)
    head.tie_weights(enc.word_embeddings)
    assert head.decoder_weight is enc.word_embeddings.weight
    # not registered twice: the head holds no copy
    assert not any(p is enc.word_embeddings.weight for p in head.parameters())
    assert set(head.state_dict()) == {
        'dense.weight', 'dense.bias', 'norm.weight', 'norm.bias', 'bias'
    }
    hidden = torch.randn(3, 5, 32)
    logits = head(hidden)
    assert logits.shape == (3, 5, 100)
    h = head.norm(F.gelu(head.dense(hidden), approximate='tanh'))
    assert torch.allclose(
        logits, h @ enc.word_embeddings.weight.t() + head.bias, atol=1e-6)
    # an in-place change of the embedding shows in the decoder at once
    with torch.no_grad():
        enc.word_embeddings.weight.add_(1.)
    assert torch.allclose(
        head(hidden),
        h @ enc.word_embeddings.weight.t() + head.bias,
        atol=1e-5)
    # the decoder's gradient lands in the embedding
    head(hidden).sum().backward()
    assert enc.word_embeddings.weight.grad is not None


def test_mlm_head_loss_and_errors():
    enc = _encoder()
    head = AlbertMLMHead(in_channels=32, embedding_size=16, vocab_size=100)
    with pytest.raises(RuntimeError, match='tie_weights'):
        head(torch.randn(1, 2, 32))
    with pytest.raises(ValueError, match='vocab_size'):
        AlbertMLMHead(
            in_channels=32, embedding_size=16,
            vocab_size=99).tie_weights(enc.word_embeddings)
    with pytest.raises(ValueError, match='in_channels'):
        AlbertMLMHead(embedding_size=16, vocab_size=100)
    head.tie_weights(enc.word_embeddings)
    labels = torch.randint(0, 100, (2, 4))
    out = head.loss(torch.randn(2, 4, 32), labels, torch.ones(2, 4))
    assert set(out) == {'loss_mlm', 'mlm_acc'}
    assert out['loss_mlm'].requires_grad and not out['mlm_acc'].requires_grad


def test_sentence_order_head():
    head = SentenceOrderHead(in_channels=32)
    pooled = torch.randn(6, 32)
    assert head(pooled).shape == (6, 2)
    labels = torch.tensor([0, 1, 0, 1, 1, 0])
    out = head.loss(pooled, labels)
    assert torch.allclose(out['loss_sop'],
                          F.cross_entropy(head(pooled), labels))
    assert out['sop_acc'] == (head(pooled).argmax(-1) == labels).float().mean()


def test_text_cls_head_classification_and_regression():
    head = TextClsHead(num_classes=3, in_channels=32).eval()
    pooled = torch.randn(4, 32)
    scores = head.predict(pooled)
    assert scores.shape == (4, 3)
    assert torch.allclose(scores.sum(-1), torch.ones(4))
    out = head.loss(pooled, torch.tensor([0, 1, 2, 1]))
    assert set(out) == {'loss', 'accuracy'}
    with pytest.raises(ValueError, match='num_classes'):
        head.loss(pooled, torch.tensor([0, 1, 3, 1]))
    reg = TextClsHead(num_classes=1, in_channels=32, regression=True).eval()
    values = reg.predict(pooled)
    assert values.shape == (4, )
    target = torch.randn(4)
    assert torch.allclose(
        reg.loss(pooled, target)['loss'], F.mse_loss(values, target))
    with pytest.raises(ValueError, match='num_classes=1'):
        TextClsHead(num_classes=2, in_channels=32, regression=True)
    with pytest.raises(ValueError, match='regression=True'):
        TextClsHead(num_classes=1, in_channels=32)
