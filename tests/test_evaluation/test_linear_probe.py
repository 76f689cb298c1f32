# Copyright (c) mmssl contributors. All rights reserved.
import pytest
import torch

from mmssl.evaluation.functional import (linear_probe, standardize_features,
                                         topk_accuracy)


def blobs(num_per_class, num_classes, dims, seed, spread=0.3):
    gen = torch.Generator().manual_seed(seed)
    centres = torch.eye(num_classes, dims) * 3.0
    labels = torch.arange(num_classes).repeat_interleave(num_per_class)
    feats = centres[labels] + spread * torch.randn(
        len(labels), dims, generator=gen)
    return feats * 50.0 + 10.0, labels  # scaled and shifted on purpose


def test_standardize_uses_train_statistics():
    train = torch.tensor([[1.0, 10.0], [3.0, 10.0]])
    test = torch.tensor([[2.0, 12.0]])
    tr, te = standardize_features(train, test)
    assert torch.allclose(tr, torch.tensor([[-1.0, 0.0], [1.0, 0.0]]))
    assert te[0, 0] == pytest.approx(0.0)
    # a constant training column maps to 0 (its std is clamped, not 0)
    assert torch.isfinite(te).all()


def test_topk_accuracy_by_hand():
    logits = torch.tensor([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.2, 0.3, 0.5]])
    labels = torch.tensor([1, 1, 0])
    assert topk_accuracy(logits, labels, 1) == pytest.approx(100 / 3)
    assert topk_accuracy(logits, labels, 2) == pytest.approx(200 / 3)
    assert topk_accuracy(logits, labels, 10) == pytest.approx(100.0)


def test_separable_blobs_reach_100_percent():
    # 3 informative and 3 pure-noise dimensions: after standardisation the
    # noise is as large as the signal, and the probe must still ignore it
    train, y_train = blobs(16, 3, 6, seed=0)
    test, y_test = blobs(8, 3, 6, seed=1)
    out = linear_probe(train, y_train, test, y_test, num_classes=3)
    assert out['top1'] == pytest.approx(100.0)
    assert out['train_top1'] == pytest.approx(100.0)
    assert out['train_loss'] < 0.1
    assert 'top5' not in out


def test_chunking_and_scale_do_not_matter():
    train, y_train = blobs(6, 6, 8, seed=2, spread=2.0)
    test, y_test = blobs(3, 6, 8, seed=3, spread=2.0)
    a = linear_probe(train, y_train, test, y_test, 6, max_iter=20)
    b = linear_probe(
        train, y_train, test, y_test, 6, max_iter=20, chunk_size=5)
    c = linear_probe(train * 1e3, y_train, test * 1e3, y_test, 6, max_iter=20)
    assert a == linear_probe(train, y_train, test, y_test, 6, max_iter=20)
    for other in (b, c):
        assert other['top1'] == a['top1'] and other['top5'] == a['top5']
        assert other['train_loss'] == pytest.approx(a['train_loss'], rel=1e-3)
    assert 0 <= a['top1'] <= a['top5'] <= 100


def test_weight_decay_shrinks_the_fit():
    train, y_train = blobs(6, 3, 4, seed=4, spread=1.0)
    loose = linear_probe(train, y_train, train, y_train, 3, weight_decay=0.)
    tight = linear_probe(train, y_train, train, y_train, 3, weight_decay=1.)
    assert tight['train_loss'] > loose['train_loss']


def test_bad_arguments_raise():
    train, labels = blobs(4, 2, 3, seed=0)
    with pytest.raises(ValueError):
        linear_probe(train, labels, train[:, :2], labels, 2)
    with pytest.raises(ValueError):
        linear_probe(train, labels, train, labels, 1)
    with pytest.raises(ValueError):
        linear_probe(train, labels[:3], train, labels, 2)
