# Copyright (c) mmssl contributors. All rights reserved.
"""NT-Xent against the closed form, a naive double loop and mmpretrain."""
import math

import pytest
import torch
import torch.nn.functional as F

from mmssl.models.losses.nt_xent import NTXentLoss, nt_xent_loss
from mmssl.registry import MODELS


def _naive(z1, z2, t):
    """Spec section 3, literally: 2N views, interleaving ignored."""
    z = F.normalize(torch.cat([z1, z2]).double(), dim=1)
    n = z1.shape[0]
    total = 0.
    for i in range(2 * n):
        j = (i + n) % (2 * n)
        den = sum(
            math.exp(float(z[i] @ z[k]) / t) for k in range(2 * n) if k != i)
        total += -math.log(math.exp(float(z[i] @ z[j]) / t) / den)
    return total / (2 * n)


def test_closed_form():
    # N=4, d=8, tau=0.5: positives identical, all other pairs orthogonal
    n, t = 4, 0.5
    z1 = torch.eye(8)[:n] * 3.  # scale does not matter: normalised inside
    z2 = torch.eye(8)[:n]
    expected = math.log(1 + (2 * n - 2) * math.exp(-1 / t))
    loss = nt_xent_loss(z1, z2, temperature=t, reduction='none')
    assert loss.shape == (2 * n, )
    torch.testing.assert_close(
        loss, torch.full((2 * n, ), expected), atol=1e-6, rtol=0)
    assert abs(nt_xent_loss(z1, z2, t).item() - expected) < 1e-6


def test_matches_double_loop_and_reductions():
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(5, 7, generator=g), torch.randn(5, 7, generator=g)
    loss = nt_xent_loss(z1, z2, 0.3)
    assert abs(loss.item() - _naive(z1, z2, 0.3)) < 1e-5
    per = nt_xent_loss(z1, z2, 0.3, reduction='none')
    torch.testing.assert_close(
        nt_xent_loss(z1, z2, 0.3, reduction='sum'), per.sum())
    # not distributed: gather=True is the same loss
    torch.testing.assert_close(nt_xent_loss(z1, z2, 0.3, gather=True), loss)


def test_permutation_invariance_and_positive_pull():
    g = torch.Generator().manual_seed(1)
    z1, z2 = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    perm = torch.randperm(6, generator=g)
    torch.testing.assert_close(
        nt_xent_loss(z1[perm], z2[perm]), nt_xent_loss(z1, z2))
    closer = z2 + 0.5 * (z1 - z2)
    assert nt_xent_loss(z1, closer) < nt_xent_loss(z1, z2)


def test_gradcheck():
    g = torch.Generator().manual_seed(2)
    z1, z2 = (
        torch.randn(
            3, 5, generator=g, dtype=torch.float64, requires_grad=True)
        for _ in range(2))
    assert torch.autograd.gradcheck(lambda a, b: nt_xent_loss(a, b, 0.5),
                                    (z1, z2))


def test_equals_mmpretrain_simclr_loss():
    """mmpretrain's interleaved 2N x 2N bookkeeping gives the same value
    (spec 7.5: positive column of row r is 2 * (r // 2))."""
    from mmpretrain.models.heads import ContrastiveHead
    from mmpretrain.models.selfsup.simclr import SimCLR
    g = torch.Generator().manual_seed(3)
    z1, z2 = torch.randn(4, 6, generator=g), torch.randn(4, 6, generator=g)
    z = F.normalize(torch.stack([z1, z2], 1).reshape(8, 6), dim=1)
    s = z @ z.t()
    mask, pos_idx, neg_mask = SimCLR._create_buffer(4, s.device)
    s = torch.masked_select(s, mask == 1).reshape(8, -1)
    pos = s[pos_idx].unsqueeze(1)
    for r in range(8):
        torch.testing.assert_close(pos[r, 0], z[r] @ z[r ^ 1])
    neg = torch.masked_select(s, neg_mask == 1).reshape(8, -1)
    head = ContrastiveHead(
        loss=dict(type='mmpretrain.CrossEntropyLoss'), temperature=0.2)
    torch.testing.assert_close(
        head.loss(pos, neg), nt_xent_loss(z1, z2, 0.2), atol=1e-6, rtol=0)


def test_module_and_validation():
    loss = MODELS.build(
        dict(type='mmssl.NTXentLoss', temperature=0.5, loss_weight=2.))
    assert isinstance(loss, NTXentLoss)
    z1, z2 = torch.randn(3, 4), torch.randn(3, 4)
    torch.testing.assert_close(loss(z1, z2), 2 * nt_xent_loss(z1, z2, 0.5))
    with pytest.raises(ValueError, match='temperature'):
        NTXentLoss(temperature=0)
    with pytest.raises(ValueError, match='temperature'):
        nt_xent_loss(z1, z2, temperature=0)
    with pytest.raises(ValueError, match='reduction'):
        nt_xent_loss(z1, z2, reduction='avg')
    with pytest.raises(ValueError, match='must both be'):
        nt_xent_loss(z1, z2[:2])


def test_defaults_are_the_papers():
    """t = 0.1 (the paper's ImageNet value), negatives from all ranks, mean
    over the anchors, weight 1."""
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(4, 8, generator=g), torch.randn(4, 8, generator=g)
    t01 = nt_xent_loss(z1, z2, temperature=0.1)
    assert abs(t01 - nt_xent_loss(z1, z2, temperature=0.2)) > 1e-3
    torch.testing.assert_close(nt_xent_loss(z1, z2), t01, atol=0, rtol=0)
    module = NTXentLoss()
    assert (module.temperature, module.gather, module.reduction,
            module.loss_weight) == (0.1, True, 'mean', 1.)
    torch.testing.assert_close(module(z1, z2), t01, atol=0, rtol=0)
