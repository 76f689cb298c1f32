# Copyright (c) mmssl contributors. All rights reserved.
"""masked_lm_loss: weighted mean CE over real slots (spec section 3)."""
import math

import pytest
import torch

from mmssl.models.losses import MaskedLMLoss, masked_lm_loss
from mmssl.registry import MODELS


def test_hand_computed_value():
    # one sequence, two real slots and one padding slot, V = 3
    logits = torch.tensor([[[0., 0., 0.], [2., 0., 0.], [5., -5., 9.]]])
    labels = torch.tensor([[1, 0, 1]])
    weights = torch.tensor([[1., 1., 0.]])
    ce0 = math.log(3.)  # uniform
    ce1 = -math.log(math.exp(2.) / (math.exp(2.) + 2.))
    expected = (ce0 + ce1) / (2. + 1e-5)
    assert masked_lm_loss(logits, labels, weights).item() == pytest.approx(
        expected, rel=1e-6)


def test_padding_slots_are_ignored():
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 7)
    labels = torch.randint(0, 7, (2, 4))
    weights = torch.tensor([[1., 1., 0., 0.], [1., 0., 0., 0.]])
    base = masked_lm_loss(logits, labels, weights)
    changed = logits.clone()
    changed[weights == 0] = torch.randn(5, 7) * 10
    other = labels.clone()
    other[weights == 0] = 3
    assert torch.allclose(base, masked_lm_loss(changed, other, weights))
    # equals the plain mean CE over the 3 real slots (up to the 1e-5)
    real = torch.nn.functional.cross_entropy(logits[weights > 0],
                                             labels[weights > 0])
    assert torch.allclose(base, real * 3 / (3 + 1e-5))


def test_all_padding_gives_zero_and_gradients_flow():
    logits = torch.randn(1, 3, 5, requires_grad=True)
    loss = masked_lm_loss(logits, torch.zeros(1, 3, dtype=torch.long),
                          torch.zeros(1, 3))
    assert loss.item() == 0
    loss = masked_lm_loss(logits, torch.zeros(1, 3, dtype=torch.long),
                          torch.tensor([[1., 0., 0.]]))
    loss.backward()
    assert logits.grad[0, 0].abs().sum() > 0
    assert logits.grad[0, 1:].abs().sum() == 0


def test_module_and_errors():
    loss = MODELS.build(dict(type='mmssl.MaskedLMLoss', loss_weight=2.))
    assert isinstance(loss, MaskedLMLoss)
    logits, labels = torch.randn(2, 3, 5), torch.randint(0, 5, (2, 3))
    w = torch.ones(2, 3)
    assert torch.allclose(
        loss(logits, labels, w), 2 * masked_lm_loss(logits, labels, w))
    with pytest.raises(ValueError, match='weights'):
        masked_lm_loss(logits, labels, torch.ones(2, 4))
    with pytest.raises(ValueError, match=r'\(B, P, V\)'):
        masked_lm_loss(logits[0], labels, w)
    with pytest.raises(ValueError, match='loss_weight'):
        MaskedLMLoss(loss_weight=-1)
    # labels that are not (B, P) of 3-D logits
    with pytest.raises(ValueError, match=r'\(B, P, V\)'):
        masked_lm_loss(logits, labels[:, :2], w[:, :2])
    half = MaskedLMLoss(loss_weight=0.5)
    torch.testing.assert_close(
        half(logits, labels, w), 0.5 * masked_lm_loss(logits, labels, w))
    assert MaskedLMLoss(loss_weight=0)(logits, labels, w).item() == 0
