# Copyright (c) mmssl contributors. All rights reserved.
import math

import pytest
import torch

from mmssl.evaluation.functional import effective_rank, representation_health


def test_effective_rank_of_identity_and_diagonals():
    assert effective_rank(torch.eye(5)) == pytest.approx(5.0)
    assert effective_rank(3.0 * torch.eye(4)) == pytest.approx(4.0)
    assert effective_rank(torch.diag(torch.tensor([1., 1., 0., 0.]))) == \
        pytest.approx(2.0)
    # singular values (2, 1): p = (2/3, 1/3)
    entropy = -(2 / 3 * math.log(2 / 3) + 1 / 3 * math.log(1 / 3))
    assert effective_rank(torch.diag(torch.tensor([2., 1.]))) == \
        pytest.approx(math.exp(entropy))


def test_effective_rank_of_rank_one_and_zero():
    gen = torch.Generator().manual_seed(0)
    u, v = torch.randn(7, 1, generator=gen), torch.randn(1, 5, generator=gen)
    assert effective_rank(u @ v) == pytest.approx(1.0)
    assert effective_rank(torch.zeros(3, 4)) == 0.0


def test_health_of_a_uniform_spread():
    # rows +e_i and -e_i: the mean is 0, all singular values equal, and each
    # normalised dimension holds +1, -1 and 2C - 2 zeros: std = 1 / sqrt(C)
    dims = 4
    feats = torch.cat([torch.eye(dims), -torch.eye(dims)])
    health = representation_health(feats)
    assert health['effective_rank'] == pytest.approx(dims)
    assert health['rank_ratio'] == pytest.approx(1.0)
    assert health['std_mean'] == pytest.approx(1 / math.sqrt(dims))
    assert health['std_min'] == pytest.approx(1 / math.sqrt(dims))


def test_health_detects_collapse():
    direction = torch.tensor([[0.3, -1.0, 2.0]])
    scales = torch.arange(1., 7.).view(-1, 1)
    # dimensional collapse: one direction, varying length
    health = representation_health(scales * direction)
    assert health['std_mean'] == pytest.approx(0.0, abs=1e-7)
    assert health['effective_rank'] == pytest.approx(1.0)
    assert health['rank_ratio'] == pytest.approx(1 / 3)
    # complete collapse: every feature identical
    health = representation_health(direction.repeat(6, 1))
    assert health['std_min'] == pytest.approx(0.0, abs=1e-7)
    assert health['effective_rank'] == 0.0


def test_rank_ratio_uses_the_centred_rank_bound():
    # 3 features of width 8: centred rank <= 2
    gen = torch.Generator().manual_seed(1)
    health = representation_health(torch.randn(3, 8, generator=gen))
    assert 1.0 < health['effective_rank'] <= 2.0 + 1e-6
    assert health['rank_ratio'] == pytest.approx(health['effective_rank'] / 2)


def test_bad_shapes_raise():
    with pytest.raises(ValueError):
        representation_health(torch.ones(1, 4))
    with pytest.raises(ValueError):
        effective_rank(torch.ones(4))


def test_small_matrices_keep_their_rank():
    # singular values 0.1 each sum to 0.3: small, but not zero
    assert effective_rank(0.1 * torch.eye(3)) == pytest.approx(3.0)
    assert effective_rank(1e-3 * torch.eye(2)) == pytest.approx(2.0)


def test_effective_rank_centres_only_when_asked():
    # rows (1, 0) and (1, 2): centred they are (0, -1) and (0, 1), rank 1
    x = torch.tensor([[1., 0.], [1., 2.]])
    assert effective_rank(x, center=True) == pytest.approx(1.0)
    assert effective_rank(x) > 1.5


def test_std_min_and_std_mean_by_hand():
    # normalised rows (0.6, 0.8) and (0.6, -0.8): stds 0 and 0.8
    health = representation_health(torch.tensor([[3., 4.], [3., -4.]]))
    assert health['std_min'] == pytest.approx(0.0, abs=1e-12)
    assert health['std_mean'] == pytest.approx(0.4)
    # two features are enough; their centred rank bound is 1
    assert health['effective_rank'] == pytest.approx(1.0)
    assert health['rank_ratio'] == pytest.approx(1.0)
