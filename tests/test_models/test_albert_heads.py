# Copyright (c) mmssl contributors. All rights reserved.
"""ALBERT heads: the tied MLM decoder, SOP and text classification."""
import pytest
import torch
import torch.nn.functional as F

from mmssl.models.backbones import AlbertEncoder
from mmssl.models.heads import AlbertMLMHead, SentenceOrderHead, TextClsHead
from mmssl.models.heads.albert_heads import mlm_correct_counts


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
    # accuracy: share of argmax hits, by hand (3 of 4)
    pred = scores.argmax(-1)
    targets = pred.clone()
    targets[2] = (pred[2] + 1) % 3
    out = head.loss(pooled, targets)
    assert out['accuracy'].item() == 0.75
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


def test_heads_init_is_the_references_truncated_normal():
    """Dense layers: truncated normal std 0.02 cut at 2 std (std of the
    draws 0.02 * 0.8796), zero biases; the MLM output bias starts at 0."""
    torch.manual_seed(0)
    mlm = AlbertMLMHead(in_channels=64, embedding_size=64, vocab_size=10)
    for owner in (mlm, SentenceOrderHead(in_channels=2048),
                  TextClsHead(num_classes=2, in_channels=2048)):
        owner.init_weights()
        fc = owner.dense if isinstance(owner, AlbertMLMHead) else owner.fc
        w = fc.weight
        assert w.abs().max() <= 0.04 + 1e-6
        assert abs(w.std().item() - 0.01759) < 0.0006, type(owner).__name__
        assert torch.all(fc.bias == 0)
    assert torch.all(mlm.bias == 0)
    assert mlm.norm.eps == 1e-12  # the reference's


def _one_hot_logits(pred, vocab=5):
    """(B, P) predicted ids -> (B, P, V) logits whose argmax is ``pred``."""
    return F.one_hot(pred, vocab).float() * 3. - 1.


def test_mlm_correct_counts_by_hand():
    pred = torch.tensor([[1, 2, 3], [4, 0, 0]])
    labels = torch.tensor([[1, 0, 3], [4, 0, 2]])
    weights = torch.tensor([[1., 1., 1.], [1., 0., 0.]])  # 2 padding slots
    correct, total = mlm_correct_counts(_one_hot_logits(pred), labels, weights)
    # sequence 0: slots 0 and 2 right; sequence 1: slot 0 right, slot 1
    # right too but padding
    torch.testing.assert_close(correct, torch.tensor([2., 1.]))
    torch.testing.assert_close(total, torch.tensor([3., 1.]))


def test_mlm_accuracy_counts_real_slots_only():
    """mlm_acc = right real slots / real slots over the batch (3 / 4 here),
    0 for a batch of padding only."""
    enc = _encoder()
    head = AlbertMLMHead(in_channels=32, embedding_size=16, vocab_size=100)
    head.tie_weights(enc.word_embeddings)
    hidden = torch.randn(2, 3, 32)
    pred = head(hidden).argmax(-1)
    labels = pred.clone()
    labels[0, 1] = (pred[0, 1] + 1) % 100  # wrong, real
    labels[1, 2] = (pred[1, 2] + 1) % 100  # wrong, padding
    weights = torch.tensor([[1., 1., 1.], [1., 0., 0.]])
    out = head.loss(hidden, labels, weights)
    torch.testing.assert_close(out['mlm_acc'], torch.tensor(3 / 4))
    out = head.loss(hidden, labels, torch.zeros(2, 3))
    assert out['mlm_acc'].item() == 0.


def test_sop_and_cls_heads_weights_and_dropout():
    """Loss weights scale the losses (any value >= 0); dropout must be
    < 1; the classifier's dropout defaults to ALBERT's GLUE 0.1, the SOP
    head's to the TF reference's none."""
    pooled = torch.randn(4, 32)
    labels = torch.tensor([0, 1, 1, 0])
    for cls, kwargs, key in ((SentenceOrderHead, {}, 'loss_sop'),
                             (TextClsHead, dict(num_classes=2), 'loss')):
        torch.manual_seed(0)
        one = cls(in_channels=32, **kwargs).eval()
        torch.manual_seed(0)
        half = cls(in_channels=32, loss_weight=0.5, **kwargs).eval()
        torch.testing.assert_close(
            half.loss(pooled, labels)[key],
            0.5 * one.loss(pooled, labels)[key])
        with pytest.raises(ValueError, match='dropout'):
            cls(in_channels=32, dropout=1., **kwargs)
    assert SentenceOrderHead(in_channels=32).dropout.p == 0.
    assert TextClsHead(num_classes=2, in_channels=32).dropout.p == 0.1
