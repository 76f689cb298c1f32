# Copyright (c) mmssl contributors. All rights reserved.
import math
import random

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.dataset import default_collate
from mmengine.model import BaseModel
from torch.utils.data import DataLoader

from mmssl.evaluation.protocols import finetune_backbone, seeded_rng


class TinyModel(BaseModel):
    """A model with a ``backbone`` and the default data preprocessor."""

    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(
            nn.Linear(2, 8), nn.ReLU(), nn.Dropout(0.1))

    def forward(self, inputs, data_samples=None, mode='tensor'):
        return self.backbone(inputs)


def toy_loader(num, seed, shift=0.0):
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(num) % 2
    points = torch.randn(num, 2, generator=gen) * 0.3
    points[:, 0] += labels * 3.0 - 1.5 + shift
    data = [dict(inputs=points[i], data_samples=labels[i]) for i in range(num)]
    return DataLoader(data, batch_size=4, collate_fn=default_collate)


def test_seeded_rng_restores_all_generators():
    random.seed(1)
    np.random.seed(1)
    torch.manual_seed(1)
    expected = (random.random(), np.random.rand(), torch.rand(1))
    random.seed(1)
    np.random.seed(1)
    torch.manual_seed(1)
    with seeded_rng(123):
        inside = torch.rand(1)
        random.random(), np.random.rand()
    with seeded_rng(123):
        assert torch.equal(torch.rand(1), inside)
    assert (random.random(), np.random.rand()) == expected[:2]
    assert torch.equal(torch.rand(1), expected[2])


def test_finetune_learns_is_reproducible_and_leaves_model_alone():
    torch.manual_seed(0)
    model = TinyModel()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    train, val = toy_loader(18, seed=0), toy_loader(8, seed=1)
    a = finetune_backbone(
        model, train, val, num_classes=2, epochs=8, lr=1e-2, seed=3)
    b = finetune_backbone(
        model, train, val, num_classes=2, epochs=8, lr=1e-2, seed=3)
    assert a == b
    assert a['top1'] == 100.0
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key])
    assert model.training


def test_seeded_rng_without_seed_only_restores():
    torch.manual_seed(7)
    expected = torch.rand(2)
    torch.manual_seed(7)
    with seeded_rng(None):
        inside = torch.rand(2)
        random.random()
    assert torch.equal(inside, expected)  # not reseeded
    torch.manual_seed(7)
    assert torch.equal(torch.rand(2), expected)


@pytest.mark.parametrize('initialized', [False, True])
def test_seeded_rng_cuda_states(monkeypatch, initialized):
    """CUDA generators are seeded and restored only once CUDA is
    initialised (torch.cuda stood in for)."""
    calls = []
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'is_initialized', lambda: initialized)
    monkeypatch.setattr(torch.cuda, 'get_rng_state_all',
                        lambda: calls.append('get') or ['state'])
    monkeypatch.setattr(torch.cuda, 'manual_seed_all',
                        lambda seed: calls.append(('seed', seed)))
    monkeypatch.setattr(torch.cuda, 'set_rng_state_all',
                        lambda states: calls.append(('set', states)))
    with seeded_rng(5):
        pass
    assert calls == (['get', ('seed', 5),
                      ('set', ['state'])] if initialized else [])


@pytest.mark.parametrize(
    'num,batch_size,drop_last',
    [
        (9, 4, True),  # a last batch of one sample
        (10, 4, False),
        (5, 4, True),
        (1, 4, False),  # the only sample is kept
        (3, None, False),  # no automatic batching: one sample per batch
    ])
def test_epoch_loader(num, batch_size, drop_last):
    from mmssl.evaluation.protocols.finetune import _epoch_loader
    loader = DataLoader(list(range(num)), batch_size=batch_size)
    epoch = _epoch_loader(loader, seed=1)
    assert epoch.batch_size == (batch_size or 1)
    assert epoch.drop_last == drop_last
    order = [int(i) for batch in epoch for i in batch]
    again = [int(i) for batch in _epoch_loader(loader, seed=1) for i in batch]
    assert order == again
    assert len(set(order)) == len(order) == num - drop_last
    if num >= 9:  # shuffled, by the seed
        other = [
            int(i) for batch in _epoch_loader(loader, seed=2) for i in batch
        ]
        assert order != sorted(order) and order != other


class _Recorder:
    """Spies on one finetune: the AdamW groups at construction, the
    learning rate of every step, every cross-entropy value, the seeds of
    the epoch loaders and the training flag given to the preprocessor."""

    def __init__(self, monkeypatch):
        from mmssl.evaluation.protocols import finetune as module
        self.groups, self.lrs, self.losses, self.seeds = [], [], [], []
        recorder = self

        class AdamW(torch.optim.AdamW):

            def __init__(self, groups, **kwargs):
                recorder.groups = [
                    dict(g, params=[p.detach().clone() for p in g['params']])
                    for g in groups
                ]
                super().__init__(groups, **kwargs)

            def step(self, closure=None):
                recorder.lrs.append(self.param_groups[0]['lr'])
                return super().step(closure)

        real_ce, real_loader = F.cross_entropy, module._epoch_loader

        def cross_entropy(*args, **kwargs):
            loss = real_ce(*args, **kwargs)
            self.losses.append(loss.item())
            return loss

        def epoch_loader(loader, seed):
            self.seeds.append(seed)
            return real_loader(loader, seed)

        monkeypatch.setattr(torch.optim, 'AdamW', AdamW)
        monkeypatch.setattr(F, 'cross_entropy', cross_entropy)
        monkeypatch.setattr(module, '_epoch_loader', epoch_loader)


def test_finetune_optimizer_schedule_and_loss(monkeypatch):
    """AdamW with weight decay on rank >= 2 weights only, over the
    backbone parameters that require a gradient and the LayerNorm + Linear
    head (weights N(0, 0.01), zero bias); the learning rate is cosine
    decayed per step to 0; epoch e reads the data in the order of seed +
    e; train_loss is the mean loss of the last epoch."""
    torch.manual_seed(0)
    model = TinyModel()
    model.backbone[0].bias.requires_grad_(False)
    spy = _Recorder(monkeypatch)
    train, val = toy_loader(18, seed=0), toy_loader(8, seed=1)
    out = finetune_backbone(
        model,
        train,
        val,
        num_classes=2,
        epochs=3,
        lr=0.1,
        weight_decay=0.3,
        seed=4)
    assert spy.seeds == [4, 5, 6]
    decayed, plain = spy.groups
    assert (decayed['weight_decay'], plain['weight_decay']) == (0.3, 0.)
    # backbone weight (8, 2), head weight (2, 8)
    assert [p.shape for p in decayed['params']] == [(8, 2), (2, 8)]
    # head LayerNorm weight and bias, head bias (the frozen bias is out)
    assert [p.shape for p in plain['params']] == [(8, ), (8, ), (2, )]
    ln_w, ln_b, fc_b = plain['params']
    assert torch.equal(ln_w, torch.ones(8)) and not ln_b.any()
    assert not fc_b.any()
    fc_w = decayed['params'][1]
    assert 0.007 < fc_w.std() < 0.014  # std 0.01 (16 draws)
    steps = 3 * 5  # 18 samples in batches of 4: 4 + a last one of 2
    assert spy.lrs == pytest.approx([
        0.1 * 0.5 * (1 + math.cos(math.pi * s / steps)) for s in range(steps)
    ])
    assert len(spy.losses) == steps
    assert out['train_loss'] == pytest.approx(sum(spy.losses[-5:]) / 5)


def test_finetune_defaults_and_checks():
    torch.manual_seed(0)
    model = TinyModel()
    train, val = toy_loader(10, seed=0), toy_loader(8, seed=1)
    documented = dict(epochs=5, lr=1e-3, weight_decay=0.05, seed=0)
    explicit = finetune_backbone(model, train, val, 2, **documented)
    assert finetune_backbone(model, train, val, num_classes=2) == explicit
    with pytest.raises(ValueError, match='lr'):
        finetune_backbone(model, train, val, num_classes=2, lr=0.)


def test_finetune_bare_backbone_and_preprocessor_in_test_mode():
    """A bare backbone (no preprocessor) is finetuned too; a model's
    preprocessor is run with training=False (no batch augmentation)."""
    torch.manual_seed(0)
    train, val = toy_loader(10, seed=0), toy_loader(8, seed=1)
    bare = nn.Sequential(nn.Linear(2, 8), nn.ReLU())
    out = finetune_backbone(bare, train, val, 2, epochs=8, lr=1e-2)
    assert out['top1'] == 100.0
    model = TinyModel()
    flags = []
    model.data_preprocessor.register_forward_pre_hook(
        lambda module, args: flags.append(args[1]))
    finetune_backbone(model, train, val, 2, epochs=1)
    assert flags and not any(flags)
