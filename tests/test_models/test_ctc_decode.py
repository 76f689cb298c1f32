# Copyright (c) mmssl contributors. All rights reserved.
"""Greedy CTC decoding on hand examples."""
import pytest
import torch

from mmssl.models.utils import ctc_greedy_decode


def _one_hot(paths, vocab=5):
    """``(B, T, V)`` log-probabilities whose arg-max follows ``paths``."""
    out = torch.full((len(paths), len(paths[0]), vocab), -5.)
    for b, path in enumerate(paths):
        for t, v in enumerate(path):
            out[b, t, v] = -0.1
    return out


def test_hand_example():
    # blank=0: "1 1 0 1 2 2 0 0 3" -> 1 (repeat collapsed), blank keeps the
    # second 1, 2 2 collapse, trailing 3
    paths = [[1, 1, 0, 1, 2, 2, 0, 0, 3], [0, 0, 0, 0, 0, 0, 0, 0, 0]]
    assert ctc_greedy_decode(_one_hot(paths)) == [[1, 1, 2, 3], []]


def test_lengths_cut_and_logits():
    paths = [[1, 2, 2, 3, 4, 4], [3, 0, 3, 3, 1, 1]]
    logits = _one_hot(paths) * 10  # logits decode like log-probabilities
    assert ctc_greedy_decode(logits, torch.tensor([3, 6])) == [[1, 2],
                                                               [3, 3, 1]]
    assert ctc_greedy_decode(logits, [0, 2]) == [[], [3]]
    assert ctc_greedy_decode(logits, [100, 100]) == [[1, 2, 3, 4], [3, 3, 1]]


def test_other_blank_and_errors():
    paths = [[4, 1, 4, 1, 1, 2]]
    assert ctc_greedy_decode(_one_hot(paths), blank=4) == [[1, 1, 2]]
    with pytest.raises(ValueError, match=r'\(B, T, V\)'):
        ctc_greedy_decode(torch.zeros(3, 5))
    with pytest.raises(ValueError, match='lengths'):
        ctc_greedy_decode(_one_hot(paths), [1, 2])
