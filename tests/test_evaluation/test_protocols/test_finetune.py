# Copyright (c) mmssl contributors. All rights reserved.
import random

import numpy as np
import torch
import torch.nn as nn
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
