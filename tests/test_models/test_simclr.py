# Copyright (c) mmssl contributors. All rights reserved.
"""mmssl.SimCLR: same loss as mmpretrain's in one process, learns."""
import pytest
import torch

from mmssl.models.selfsup.simclr import SimCLR
from mmssl.registry import MODELS
from mmssl.testing import tiny_simclr_cfg


def _views(n=6, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(n, 3, size, size, generator=g) for _ in range(2)]


def test_builds_and_equals_mmpretrain_loss():
    torch.manual_seed(0)
    model = MODELS.build(tiny_simclr_cfg(temperature=0.2))
    assert isinstance(model, SimCLR)
    cfg = tiny_simclr_cfg()
    cfg.update(
        type='mmpretrain.SimCLR',
        head=dict(
            type='mmpretrain.ContrastiveHead',
            loss=dict(type='mmpretrain.CrossEntropyLoss'),
            temperature=0.2))
    ref = MODELS.build(cfg)
    ref.load_state_dict(model.state_dict())
    views = _views()
    ours = model.loss(views, [])['loss']
    theirs = ref.loss(views, [])['loss']
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)
    feats = model.extract_feat(views[0])
    assert feats[-1].shape == (6, 64, 1, 1)


def test_validation():
    cfg = tiny_simclr_cfg()
    cfg.pop('head')
    with pytest.raises(ValueError, match='model.head'):
        MODELS.build(cfg)
    cfg = tiny_simclr_cfg()
    cfg['head'] = dict(
        type='mmpretrain.ContrastiveHead',
        loss=dict(type='mmpretrain.CrossEntropyLoss'))
    with pytest.raises(ValueError, match='ContrastiveHead'):
        MODELS.build(cfg)
    model = MODELS.build(tiny_simclr_cfg())
    with pytest.raises(ValueError, match='2 views'):
        model.loss(_views()[:1], [])


def test_short_training_lowers_the_loss():
    torch.manual_seed(0)
    model = MODELS.build(tiny_simclr_cfg())
    model.init_weights()
    x = _views(n=8, seed=1)[0]
    # two fixed 'views': a flip and a brightness change of each image
    views = [x.flip(-1), x * 0.8 + 0.1]
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(15):
        loss = model.loss(views, [])['loss']
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses
