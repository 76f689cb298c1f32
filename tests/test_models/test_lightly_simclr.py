# Copyright (c) mmssl contributors. All rights reserved.
"""lightly's SimCLR behind mmengine's model interface (the benchmark peer)."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config

pytest.importorskip(
    'lightly',
    reason='pip install --no-deps -r '
    'requirements/benchmark.txt (tools/setup_env.sh does)')

from mmssl.analysis import benchmark_configs  # noqa: E402
from mmssl.analysis.benchmark import build_train_model  # noqa: E402
from mmssl.models.losses import NTXentLoss  # noqa: E402
from mmssl.registry import MODELS  # noqa: E402

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
MMSSL = osp.join(ROOT, 'configs/simclr',
                 'simclr_resnet18_16xb256-coslr-200e_in1k.py')
PEER = osp.join(ROOT, 'configs/simclr/reference',
                'simclr-lightly_resnet18_16xb256-coslr-200e_in1k.py')


def _peer(**kwargs):
    cfg = dict(type='mmssl.LightlySimCLR', depth=18, hidden_dim=32, out_dim=8)
    cfg.update(kwargs)
    torch.manual_seed(0)
    return MODELS.build(cfg)


def test_the_peer_optimises_mmssl_s_objective():
    """lightly's NT-Xent on the projections of the two views equals mmssl's
    (same temperature, one process), and the views go through the network
    as one batch (BN statistics over both)."""
    model = _peer(temperature=0.2)
    views = [torch.randn(3, 3, 32, 32), torch.randn(3, 3, 32, 32)]
    seen = []
    head = model.projection_head
    head.register_forward_hook(lambda m, args, out: seen.append(args[0].shape))
    loss = model.loss(views)['loss']
    assert seen == [torch.Size([6, 512])]
    with torch.no_grad():
        z0, z1 = head(model.backbone(torch.cat(views)).flatten(1)).chunk(2)
    want = NTXentLoss(temperature=0.2, gather=False)(z0, z1)
    torch.testing.assert_close(loss.detach(), want, atol=1e-5, rtol=1e-5)


def test_bad_settings_and_input():
    with pytest.raises(
            ValueError,
            match=r'depth must be one of \[18, 34, 50, 101, 152\], got 20'):
        _peer(depth=20)
    model = _peer()
    with pytest.raises(ValueError, match='two view batches'):
        model.loss(torch.randn(2, 3, 32, 32))
    with pytest.raises(ValueError, match='mode="loss"'):
        model([torch.randn(2, 3, 32, 32)] * 2, mode='predict')


def test_peer_config_is_the_same_network_as_mmssl():
    """The ResNet-18 pair: the same parameters (torchvision's ResNet-18 is
    mmpretrain's; lightly's head is mmpretrain's NonLinearNeck: Linear
    without bias, BN, ReLU, Linear without bias, BN) and the same training
    FLOPs per image, timed on two-view synthetic batches made by the
    configs' own pipeline."""
    res = benchmark_configs([MMSSL, PEER],
                            names=['mmssl', 'lightly'],
                            batch_size=2,
                            iters=1,
                            warmup=0,
                            repeat=1,
                            threads=1,
                            matmul_size=64)
    mm, peer = res
    assert peer['num_params'] == mm['num_params']
    assert peer['flops_per_img'] == pytest.approx(
        mm['flops_per_img'], rel=0.01)


def test_peer_config_takes_the_mmssl_lars_exclusions():
    model, wrapper, _ = build_train_model(Config.fromfile(PEER))
    excluded = {
        id(p)
        for g in wrapper.optimizer.param_groups
        for p in g['params']
        if g.get('lars_exclude') and g['weight_decay'] == 0
    }
    for name, p in model.named_parameters():
        is_norm = p.dim() == 1  # BN weights and biases
        assert (id(p) in excluded) == is_norm, name


def test_defaults_are_lightly_s_resnet50_benchmark():
    """ResNet-50 (2048-d features), a 2048-d hidden layer, 128-d
    projections, temperature 0.1."""
    model = MODELS.build(dict(type='mmssl.LightlySimCLR'))
    linears = [(m.in_features, m.out_features)
               for m in model.projection_head.modules()
               if isinstance(m, torch.nn.Linear)]
    assert linears == [(2048, 2048), (2048, 128)]
    assert model.criterion.temperature == 0.1
    assert sum(p.numel() for p in model.backbone.parameters()) == 23508032
