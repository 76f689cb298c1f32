# Copyright (c) mmssl contributors. All rights reserved.
"""SplitBatchNorm: the single-process emulation of DenseCL's shuffle-BN."""
import pytest
import torch
import torch.nn as nn
from mmcv.cnn import build_norm_layer
from mmengine.registry import init_default_scope

from mmssl.models.utils import SplitBatchNorm


def _pair(c=3, s=4, seed=0):
    torch.manual_seed(seed)
    split = SplitBatchNorm(c, num_splits=s, momentum=0.1)
    with torch.no_grad():
        split.weight.uniform_(0.5, 1.5)
        split.bias.normal_()
    return split


def test_train_mode_normalises_each_group_on_its_own():
    c, s, n = 3, 4, 8
    split = _pair(c, s)
    x = torch.randn(n, c, 5, 5) * 3 + 1
    out = split(x)
    for j in range(s):
        group = x[j::s]
        mean = group.mean((0, 2, 3), keepdim=True)
        var = group.var((0, 2, 3), unbiased=False, keepdim=True)
        ref = (group - mean) / torch.sqrt(var + split.eps)
        ref = ref * split.weight.view(1, c, 1, 1) + split.bias.view(1, c, 1, 1)
        torch.testing.assert_close(out[j::s], ref, atol=1e-5, rtol=1e-5)
    # the whole-batch statistics give a different output
    bn = nn.BatchNorm2d(c).train()
    bn.load_state_dict(_pair(c, s).state_dict())
    assert not torch.allclose(bn(x), out, atol=1e-3)


def test_running_stats_are_the_mean_of_the_group_updates():
    c, s, n = 3, 2, 6
    split = _pair(c, s)
    x = torch.randn(n, c, 4, 4) * 2 + 3
    split(x)
    means, vars_ = [], []
    for j in range(s):
        g = x[j::s]
        means.append(0.9 * 0 + 0.1 * g.mean((0, 2, 3)))
        vars_.append(0.9 * 1 + 0.1 * g.var((0, 2, 3), unbiased=True))
    torch.testing.assert_close(split.running_mean, sum(means) / s)
    torch.testing.assert_close(split.running_var, sum(vars_) / s)
    assert int(split.num_batches_tracked) == 1


def test_eval_mode_and_indivisible_batches_are_plain_bn():
    c, s = 3, 4
    split = _pair(c, s)
    split(torch.randn(8, c, 4, 4))  # move the running statistics
    bn = nn.BatchNorm2d(c, momentum=0.1)
    bn.load_state_dict(split.state_dict())
    x = torch.randn(5, c, 4, 4)
    torch.testing.assert_close(split.eval()(x), bn.eval()(x))
    torch.testing.assert_close(split.train()(x), bn.train()(x))
    x = torch.randn(8, c, 4, 4)  # divisible, still plain BN in eval
    torch.testing.assert_close(split.eval()(x), bn.eval()(x))


def test_defaults_shapes_and_cumulative_momentum():
    """8 groups by default (MoCo's demo); 2-D to 5-D inputs; without
    running statistics each group uses its own batch statistics; with
    momentum=None the running statistics are the cumulative average."""
    assert SplitBatchNorm(3).num_splits == 8
    split = _pair(3, 2).eval()
    for shape in ((4, 3), (4, 3, 5), (4, 3, 2, 2, 2)):
        assert split(torch.randn(shape)).shape == shape
    for shape in ((3, ), (1, 4, 3, 2, 2, 2)):
        with pytest.raises(ValueError, match='2D to 5D'):
            split(torch.randn(shape))
    free = SplitBatchNorm(3, num_splits=2, track_running_stats=False)
    x = torch.randn(4, 3, 5)
    out = free.train()(x)
    group = x[0::2]
    ref = (group - group.mean((0, 2), keepdim=True)) / torch.sqrt(
        group.var((0, 2), unbiased=False, keepdim=True) + free.eps)
    torch.testing.assert_close(out[0::2], ref, atol=1e-5, rtol=1e-5)
    cumulative = SplitBatchNorm(3, num_splits=2, momentum=None).train()
    batches = [torch.randn(4, 3, 3) + i for i in range(2)]
    for b in batches:
        cumulative(b)
    want = sum(
        sum(b[j::2].mean((0, 2)) for j in range(2)) / 2 for b in batches) / 2
    torch.testing.assert_close(cumulative.running_mean, want)


def test_gradients_flow_and_checkpoints_are_bn_checkpoints():
    split = _pair(3, 4)
    x = torch.randn(8, 3, 4, 4, requires_grad=True)
    split(x).pow(2).sum().backward()
    assert x.grad is not None and split.weight.grad is not None
    assert split.state_dict().keys() == nn.BatchNorm2d(3).state_dict().keys()
    with pytest.raises(ValueError, match='num_splits'):
        SplitBatchNorm(3, num_splits=0)


def test_built_from_a_norm_cfg_with_bn_names():
    init_default_scope('mmpretrain')
    from mmpretrain.registry import MODELS
    name, layer = build_norm_layer(
        dict(type='mmssl.SplitBatchNorm', num_splits=4), 16, postfix=1)
    assert name == 'bn1' and isinstance(layer, SplitBatchNorm)
    assert layer.num_splits == 4
    kw = dict(type='ResNet', depth=18, base_channels=8, stem_channels=8)
    plain = MODELS.build(dict(kw, norm_cfg=dict(type='BN')))
    split = MODELS.build(
        dict(kw, norm_cfg=dict(type='mmssl.SplitBatchNorm', num_splits=2)))
    assert plain.state_dict().keys() == split.state_dict().keys()
    split.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 32, 32)
    plain.eval()
    split.eval()
    torch.testing.assert_close(plain(x)[-1], split(x)[-1])


def test_split_bn_accepts_vectors_for_the_heads():
    split = _pair(6, 2)
    x = torch.randn(8, 6) * 2 + 1
    out = split(x)
    for j in range(2):
        g = x[j::2]
        ref = (g -
               g.mean(0)) / torch.sqrt(g.var(0, unbiased=False) + split.eps)
        torch.testing.assert_close(
            out[j::2], ref * split.weight + split.bias, atol=1e-5, rtol=1e-5)


def test_bn_neck_has_densecl_outputs_and_fits_the_model():
    from mmssl.models.necks.densecl_neck import DenseCLNeckBN
    from mmssl.models.selfsup.densecl import DenseCL
    from mmssl.registry import MODELS
    assert DenseCLNeckBN(32, 16, 8).mlp[1].num_splits == 8  # MoCo's
    neck = DenseCLNeckBN(32, 16, 8, num_splits=2)
    assert isinstance(neck.mlp[1], SplitBatchNorm)
    assert isinstance(neck.mlp2[1], SplitBatchNorm)
    assert neck.mlp[1].num_splits == neck.mlp2[1].num_splits == 2
    q, grid, pooled = neck([torch.randn(4, 32, 3, 3)])
    assert q.shape == (4, 8) and grid.shape == (4, 8, 9)
    assert pooled.shape == (4, 8)
    init_default_scope('mmpretrain')
    model = MODELS.build(
        dict(
            type='mmssl.DenseCL',
            queue_len=8,
            feat_dim=8,
            momentum=0.1,
            backbone=dict(
                type='mmpretrain.ResNet',
                depth=18,
                base_channels=4,
                stem_channels=4,
                norm_cfg=dict(type='mmssl.SplitBatchNorm', num_splits=2)),
            neck=dict(
                type='mmssl.DenseCLNeckBN',
                in_channels=32,
                hid_channels=16,
                out_channels=8,
                num_splits=2),
            head=dict(type='mmssl.DenseCLLoss', temperature=0.2)))
    assert isinstance(model, DenseCL)
    torch.manual_seed(0)
    views = [torch.randn(4, 3, 32, 32) for _ in range(2)]
    losses = model.loss(views, None)
    sum(losses.values()).backward()
    assert model.neck.mlp[1].weight.grad is not None
    assert int(model.queue_ptr) == 4
    with pytest.raises(ValueError, match='model.feat_dim'):
        MODELS.build(
            dict(
                type='mmssl.DenseCL',
                queue_len=8,
                feat_dim=16,
                backbone=dict(
                    type='mmpretrain.ResNet', depth=18, base_channels=4),
                neck=dict(
                    type='mmssl.DenseCLNeckBN',
                    in_channels=32,
                    hid_channels=16,
                    out_channels=8),
                head=dict(type='mmssl.DenseCLLoss')))
