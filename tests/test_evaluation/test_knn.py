# Copyright (c) mmssl contributors. All rights reserved.
import math

import pytest
import torch

from mmssl.evaluation.functional import knn_accuracy, knn_classify

# Unit vectors at 0, 36.87 and 53.13 degrees: cosine similarities to the test
# point (1, 0) are 1.0, 0.8 and 0.6.
TRAIN = torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.6, 0.8]])
LABELS = torch.tensor([0, 1, 1])
TEST = torch.tensor([[1.0, 0.0]])


def hand_vote(temperature):
    # class 0: exp(1 / T); class 1: exp(0.8 / T) + exp(0.6 / T)
    return [
        math.exp(1.0 / temperature),
        math.exp(0.8 / temperature) + math.exp(0.6 / temperature)
    ]


@pytest.mark.parametrize('temperature', [1.0, 0.07])
def test_weighted_vote_matches_hand_computation(temperature):
    votes = hand_vote(temperature)
    expected = int(votes[1] > votes[0])
    pred = knn_classify(
        TRAIN, LABELS, TEST, num_classes=2, k=3, temperature=temperature)
    assert pred.tolist() == [expected]


def test_temperature_decides_the_vote():
    # T = 1: 2.23 + 1.82 = 4.05 beats e = 2.72 -> class 1
    assert knn_classify(TRAIN, LABELS, TEST, 2, k=3, temperature=1.0) == 1
    # T = 0.07: the nearest neighbour dominates -> class 0
    assert knn_classify(TRAIN, LABELS, TEST, 2, k=3, temperature=0.07) == 0
    # k = 1 is the nearest neighbour whatever T
    assert knn_classify(TRAIN, LABELS, TEST, 2, k=1, temperature=1.0) == 0


def test_cosine_similarity_ignores_scale_and_k_is_clipped():
    a = knn_classify(TRAIN, LABELS, TEST, 2, k=3, temperature=1.0)
    b = knn_classify(TRAIN * 7.0, LABELS, TEST * 0.1, 2, k=50, temperature=1.0)
    assert torch.equal(a, b)


def test_chunks_give_the_same_predictions():
    gen = torch.Generator().manual_seed(0)
    train = torch.randn(50, 8, generator=gen)
    labels = torch.randint(0, 4, (50, ), generator=gen)
    test = torch.randn(30, 8, generator=gen)
    full = knn_classify(train, labels, test, 4, k=5)
    chunked = knn_classify(train, labels, test, 4, k=5, chunk_size=7)
    assert full.shape == (30, ) and full.dtype == torch.long
    assert torch.equal(full, chunked)


def test_accuracy_in_percent():
    train = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    labels = torch.tensor([0, 1])
    test = torch.tensor([[2.0, 0.1], [0.1, 3.0], [1.0, 0.2], [1.0, 0.0]])
    test_labels = torch.tensor([0, 1, 0, 1])  # the last one is wrong
    acc = knn_accuracy(train, labels, test, test_labels, 2, k=1)
    assert acc == pytest.approx(75.0)


def test_bad_arguments_raise():
    with pytest.raises(ValueError):
        knn_classify(TRAIN, LABELS, TEST, 2, k=0)
    with pytest.raises(ValueError):
        knn_classify(TRAIN, LABELS, TEST, 2, temperature=0.)
    with pytest.raises(ValueError):
        knn_classify(TRAIN, LABELS, torch.ones(1, 3), 2)
    with pytest.raises(ValueError):
        knn_classify(TRAIN, LABELS[:2], TEST, 2)
