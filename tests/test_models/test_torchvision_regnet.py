# Copyright (c) mmssl contributors. All rights reserved.
"""mmssl.TorchvisionRegNet (Large-UniDet's backbone) on the smallest
RegNet: the stages' outputs, freezing, BatchNorm in eval and bad
arguments."""
import pytest
import torch
from torch import nn

from mmssl.models.unidet.regnet import TorchvisionRegNet

ARCH = 'regnet_y_400mf'


def _frozen(module):
    return all(not p.requires_grad for p in module.parameters())


def test_four_stages_by_default_at_strides_4_to_32():
    net = TorchvisionRegNet(ARCH)
    assert (net.out_indices, net.frozen_stages,
            net.norm_eval) == ((0, 1, 2, 3), -1, False)
    assert net.out_channels == [48, 104, 208, 440]
    outs = net(torch.randn(1, 3, 64, 96))
    assert [tuple(o.shape) for o in outs] == [(1, 48, 16, 24), (1, 104, 8, 12),
                                              (1, 208, 4, 6), (1, 440, 2, 3)]
    assert not any(_frozen(m) for m in [net.stem, *net.stages])
    two = TorchvisionRegNet(ARCH, out_indices=(1, 3))
    assert [o.shape[1] for o in two(torch.randn(2, 3, 32, 32))] == [104, 440]


@pytest.mark.parametrize('frozen', [0, 2, 4])
def test_frozen_stages_stay_frozen_in_train_mode(frozen):
    net = TorchvisionRegNet(ARCH, frozen_stages=frozen).train()
    parts = [net.stem, *net.stages]
    # the stem and the first `frozen` stages
    assert [_frozen(m)
            for m in parts] == [True] * (frozen + 1) + [False] * (4 - frozen)
    assert [m.training
            for m in parts] == [False] * (frozen + 1) + [True] * (4 - frozen)
    # BatchNorm trains in the stages that train (norm_eval is off)
    last = [
        m for m in net.stages[3].modules() if isinstance(m, nn.BatchNorm2d)
    ]
    assert [m.training for m in last] == [frozen < 4] * len(last)


def test_norm_eval_keeps_batchnorm_statistics():
    net = TorchvisionRegNet(ARCH, norm_eval=True).train()
    norms = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms and not any(m.training for m in norms)
    assert net.stages[3].training  # the rest trains
    before = norms[0].running_mean.clone()
    net(torch.randn(2, 3, 32, 32))
    assert torch.equal(norms[0].running_mean, before)


@pytest.mark.parametrize('kwargs', [
    dict(arch='resnet50'),
    dict(arch='regnet_y_1tf'),
    dict(out_indices=(0, 4)),
    dict(frozen_stages=5),
    dict(frozen_stages=-2),
])
def test_bad_arguments_are_named(kwargs):
    kwargs = dict(dict(arch=ARCH), **kwargs)
    with pytest.raises(ValueError, match='TorchvisionRegNet'):
        TorchvisionRegNet(**kwargs)
