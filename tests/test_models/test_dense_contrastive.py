# Copyright (c) mmssl contributors. All rights reserved.
"""The DenseCL loss functions: the paper's temperature as the default and
the argument checks (the values by hand are in test_densecl.py)."""
import pytest
import torch
import torch.nn.functional as F

from mmssl.models.losses import (DenseCLLoss, dense_contrastive_loss,
                                 queue_info_nce_loss)


def unit(*shape, dim, seed):
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(*shape, generator=g), dim=dim)


def test_default_temperature_is_the_papers_0_2():
    q, k = unit(6, 8, dim=1, seed=0), unit(6, 8, dim=1, seed=1)
    queue = unit(8, 10, dim=0, seed=2)
    assert torch.equal(
        queue_info_nce_loss(q, k, queue),
        queue_info_nce_loss(q, k, queue, temperature=0.2))
    q_grid, k_grid = unit(2, 8, 4, dim=1, seed=3), unit(2, 8, 4, dim=1, seed=4)
    match = torch.tensor([[0, 3, 2, 1], [1, 1, 0, 2]])
    assert torch.equal(
        dense_contrastive_loss(q_grid, k_grid, match, queue),
        dense_contrastive_loss(q_grid, k_grid, match, queue, 0.2))
    assert DenseCLLoss().temperature == 0.2


def test_temperature_must_be_positive():
    q = unit(2, 4, dim=1, seed=0)
    for t in (0., -0.1):
        with pytest.raises(ValueError, match='temperature must be > 0'):
            queue_info_nce_loss(q, q, torch.ones(4, 3), temperature=t)


@pytest.mark.parametrize('q_shape,k_shape', [((2, 4), (3, 4)),
                                             ((2, 4), (2, 5)),
                                             ((2, 4, 1), (2, 4, 1))])
def test_queries_and_keys_must_both_be_m_by_d(q_shape, k_shape):
    with pytest.raises(ValueError, match=r'must both be \(M, D\)'):
        queue_info_nce_loss(
            torch.ones(q_shape), torch.ones(k_shape), torch.ones(4, 3))
