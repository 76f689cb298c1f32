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


def _at_cosines(cosines):
    """Unit vectors in 2-D with the given cosines to the test point (1, 0)."""
    c = torch.tensor(cosines, dtype=torch.float64)
    return torch.stack([c, (1 - c**2).sqrt()], dim=1).float()


def test_default_k_is_20():
    # 10 neighbours of class 1 at cosine 0.99, 50 of class 0 at 0.98: the 20
    # nearest hold 10 of each (class 1 wins on similarity), 40 would hold 30
    # of class 0 (10 e^(0.99 / 0.07) < 30 e^(0.98 / 0.07))
    train = _at_cosines([0.99] * 10 + [0.98] * 50)
    labels = torch.tensor([1] * 10 + [0] * 50)
    assert knn_classify(train, labels, TEST, 2).tolist() == [1]
    assert knn_classify(train, labels, TEST, 2, k=40).tolist() == [0]
    assert knn_accuracy(train, labels, TEST, torch.tensor([1]), 2) == 100.0


def test_default_temperature_is_0_07():
    # 20 neighbours: 5 of class 1 at cosine 1, 15 of class 0 at 0.9;
    # T = 0.07: 5 e^14.3 > 15 e^12.9, T = 0.14: 5 e^7.1 < 15 e^6.4
    train = _at_cosines([1.0] * 5 + [0.9] * 15)
    labels = torch.tensor([1] * 5 + [0] * 15)
    assert knn_classify(train, labels, TEST, 2).tolist() == [1]
    assert knn_classify(
        train, labels, TEST, 2, temperature=0.14).tolist() == [0]
    assert knn_accuracy(train, labels, TEST, torch.tensor([1]), 2) == 100.0


def test_default_chunk_size():
    import inspect
    assert inspect.signature(
        knn_classify).parameters['chunk_size'].default == 1024


def test_each_feature_is_normalised_on_its_own():
    # rows scaled differently: cosine neighbours are unchanged (a
    # normalisation over the set instead would favour the long rows)
    labels = torch.tensor([0, 1, 2])
    scaled = TRAIN * torch.tensor([[0.1], [10.], [1.]])
    test = torch.tensor([[1.0, 0.0], [8.0, 6.0]])
    assert knn_classify(scaled, labels, test, 3, k=1).tolist() == [0, 1]
    assert knn_classify(
        TRAIN, labels, test * torch.tensor([[3.], [0.1]]), 3,
        k=1).tolist() == [0, 1]


def test_set_sizes_at_the_edges():
    # one training feature is enough; none is refused
    one = knn_classify(TRAIN[:1], LABELS[:1], TEST, 2)
    assert one.tolist() == [0]
    with pytest.raises(ValueError, match='at least one training feature'):
        knn_classify(torch.ones(0, 2), torch.ones(0), TEST, 2)
    # no test feature: an empty prediction; its accuracy is refused, one
    # test feature has one
    empty = knn_classify(TRAIN, LABELS, torch.ones(0, 2), 2)
    assert empty.shape == (0, ) and empty.dtype == torch.long
    with pytest.raises(ValueError, match='at least one test feature'):
        knn_accuracy(TRAIN, LABELS, torch.ones(0, 2), torch.ones(0), 2)
    assert knn_accuracy(TRAIN, LABELS, TEST, torch.tensor([0]), 2, k=1) == 100
    # features of another rank, on either side
    with pytest.raises(ValueError, match='2-D'):
        knn_classify(TRAIN[None], LABELS, TEST, 2)
    with pytest.raises(ValueError, match='2-D'):
        knn_classify(TRAIN, LABELS, TEST[None], 2)
    with pytest.raises(ValueError, match='test_labels'):
        knn_accuracy(TRAIN, LABELS, TEST, torch.tensor([0, 1]), 2)
