# Copyright (c) mmssl contributors. All rights reserved.
"""mmssl.LabelSmoothLoss: mmpretrain's loss with an in-graph label check."""
import math

import pytest
import torch
from mmengine.config import Config
from mmpretrain.models.losses import LabelSmoothLoss as HostLabelSmoothLoss

from mmssl.models.losses import LabelSmoothLoss
from mmssl.models.utils import check_index_range
from mmssl.registry import MODELS


def test_hand_computed_value():
    """q = 0.9 one_hot + 0.1 / C; L = mean -sum q log softmax."""
    scores = torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    loss = LabelSmoothLoss(label_smooth_val=0.1, mode='original')
    lse = math.log(math.exp(2) + 2)
    # row 0, label 0: -(0.9 + 0.1/3) * (2 - lse) - 2 * (0.1/3) * (0 - lse)
    row0 = -(0.9 + 0.1 / 3) * (2 - lse) + 2 * (0.1 / 3) * lse
    row1 = math.log(3)  # uniform scores: any target gives log C
    value = loss(scores, torch.tensor([0, 2]))
    assert value.item() == pytest.approx((row0 + row1) / 2, rel=1e-6)


@pytest.mark.parametrize('mode', ['original', 'multi_label'])
@pytest.mark.parametrize('shape', ['index', 'column', 'soft'])
def test_equals_mmpretrain_loss_and_gradient(mode, shape):
    torch.manual_seed(0)
    scores = torch.randn(6, 9)
    labels = torch.tensor([0, 8, 3, 3, 1, 5])
    if shape == 'column':
        labels = labels[:, None]
    elif shape == 'soft':  # mixup-style soft labels pass through
        labels = torch.softmax(torch.randn(6, 9), dim=1)
    kwargs = dict(label_smooth_val=0.1, mode=mode)
    grads = []
    values = []
    for cls in (HostLabelSmoothLoss, LabelSmoothLoss):
        s = scores.clone().requires_grad_()
        value = cls(**kwargs)(s, labels)
        value.backward()
        values.append(value.detach())
        grads.append(s.grad)
    torch.testing.assert_close(values[1], values[0], rtol=0, atol=0)
    torch.testing.assert_close(grads[1], grads[0], rtol=0, atol=0)


@pytest.mark.parametrize('bad', [9, -1])
def test_out_of_range_label_is_named(bad):
    """Eager: a ValueError naming the label and the class count (the host
    loss only asserted the largest label and missed negative ones)."""
    loss = LabelSmoothLoss(label_smooth_val=0.1, mode='original')
    with pytest.raises(
            ValueError,
            match=rf'class label {bad} is outside '
            r'\[0, 9\).*num_classes'):
        loss(torch.zeros(2, 9), torch.tensor([bad, 0]))


def test_compiles_into_one_graph_with_an_in_graph_check():
    """The whole loss traces with fullgraph=True, and a bad label still
    fails, in the graph (the fine-tuning step's graph count is in
    tests/test_tools/test_profile_train_step.py)."""
    loss = LabelSmoothLoss(label_smooth_val=0.1, mode='original')
    scores = torch.randn(4, 9)
    labels = torch.tensor([1, 2, 8, 0])
    torch._dynamo.reset()
    try:
        fn = torch.compile(loss, backend='eager', fullgraph=True)
        torch.testing.assert_close(fn(scores, labels), loss(scores, labels))
        with pytest.raises(RuntimeError, match='class label is outside'):
            fn(scores, torch.tensor([1, 2, 9, 0]))
    finally:
        torch._dynamo.reset()


def test_check_index_range_message():
    check_index_range(torch.tensor([0, 4]), 5, 'thing', 'Owner', 'fix it')
    check_index_range(torch.zeros(0, dtype=torch.long), 5, 'thing', 'O', 'f')
    with pytest.raises(
            ValueError, match=r'^Owner: thing 5 is outside \[0, 5\); fix it$'):
        check_index_range(torch.tensor([-3, 5]), 5, 'thing', 'Owner', 'fix it')
    with pytest.raises(ValueError, match=r'^Owner: thing -3 is outside'):
        check_index_range(torch.tensor([-3, 4]), 5, 'thing', 'Owner', 'f')


@pytest.mark.parametrize('path', [
    'configs/mae/benchmarks/vit-tiny-p8_1xb64-coslr-20e_embedded.py',
    'configs/poslabel/poslabel-apl_vit-tiny-p8_1xb64-coslr-20e_embedded.py',
    'configs/poslabel/poslabel-rpl_swin-tiny-w4_1xb64-coslr-20e_embedded.py',
    'configs/poslabel/poslabel-apl_vit-base-p16_2xb256-amp-150e_in1k.py',
    'configs/poslabel/poslabel-rpl_swin-base_2xb320-amp-150e_in1k.py',
])
def test_fine_tuning_configs_build_the_compilable_loss(path):
    head = Config.fromfile(path).model.head
    loss_cfg = head.get('loss', head.get('cls_loss'))
    assert loss_cfg['type'] == 'mmssl.LabelSmoothLoss', path
    assert isinstance(MODELS.build(loss_cfg), LabelSmoothLoss)
