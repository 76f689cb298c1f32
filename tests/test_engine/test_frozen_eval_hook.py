# Copyright (c) mmssl contributors. All rights reserved.
import json
import os.path as osp

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.logging import MessageHub
from mmengine.model import BaseModel
from mmengine.registry import DATASETS, MODELS
from mmengine.testing import RunnerTestCase
from mmpretrain.structures import DataSample
from torch.utils.data import Dataset

from mmssl.engine.hooks import FrozenEvalHook

KEYS = ('knn_top1', 'linear_top1', 'std_mean', 'std_min', 'effective_rank',
        'rank_ratio')


class FrozenEvalToyModel(BaseModel):
    """A classifier whose ``backbone`` holds a layer kept in eval mode."""

    def __init__(self, data_preprocessor=None):
        super().__init__(data_preprocessor=data_preprocessor)
        self.backbone = nn.Sequential(nn.Linear(2, 8), nn.Dropout(0.5))
        self.head = nn.Linear(8, 2)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        if isinstance(inputs, list):
            inputs = torch.stack(inputs)
        logits = self.head(self.backbone(inputs))
        if mode == 'loss':
            labels = torch.cat([s.gt_label for s in data_samples])
            return dict(loss=F.cross_entropy(logits, labels))
        return logits


class FrozenEvalToyDataset(Dataset):
    """Two well separated 2-D blobs, labelled 0 and 1."""
    METAINFO = dict(classes=('left', 'right'))

    def __init__(self, num=12, seed=0):
        gen = torch.Generator().manual_seed(seed)
        self.labels = torch.arange(num) % 2
        self.points = torch.randn(num, 2, generator=gen) * 0.2
        self.points[:, 0] += self.labels * 4.0 - 2.0

    @property
    def metainfo(self):
        return self.METAINFO

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, idx):
        return dict(
            inputs=self.points[idx],
            data_samples=DataSample().set_gt_label(int(self.labels[idx])))


def eval_loader(seed):
    return dict(
        batch_size=4,
        num_workers=0,
        dataset=dict(type='FrozenEvalToyDataset', seed=seed))


class TestFrozenEvalHook(RunnerTestCase):

    def setUp(self):
        super().setUp()
        MODELS.register_module(module=FrozenEvalToyModel, force=True)
        DATASETS.register_module(module=FrozenEvalToyDataset, force=True)
        for cfg in (self.epoch_based_cfg, self.iter_based_cfg):
            cfg.default_scope = 'mmpretrain'
            cfg.model = dict(type='FrozenEvalToyModel')
            cfg.train_dataloader.dataset = dict(type='FrozenEvalToyDataset')
            cfg.randomness = dict(seed=0)
            for key in ('val_dataloader', 'val_evaluator', 'val_cfg',
                        'test_dataloader', 'test_evaluator', 'test_cfg'):
                cfg.pop(key)
        self.epoch_based_cfg.train_cfg = dict(by_epoch=True, max_epochs=3)
        self.hook_cfg = dict(
            type='mmssl.FrozenEvalHook',
            train_dataloader=eval_loader(seed=0),
            val_dataloader=eval_loader(seed=1),
            k=3)

    def tearDown(self):
        MODELS.module_dict.pop('FrozenEvalToyModel', None)
        DATASETS.module_dict.pop('FrozenEvalToyDataset', None)
        super().tearDown()

    def test_by_epoch_scalars_log_and_json(self):
        cfg = self.epoch_based_cfg.copy()
        cfg.custom_hooks = [dict(self.hook_cfg, interval=2)]
        runner = self.build_runner(cfg)
        runner.train()

        hub = runner.message_hub
        for key in KEYS:
            assert f'frozen/{key}' in hub.log_scalars, key
        # the blobs are separable whatever the weights
        assert hub.get_scalar('frozen/knn_top1').current() == 100.0
        assert hub.get_scalar('frozen/linear_top1').current() == 100.0
        assert 0 < hub.get_scalar('frozen/effective_rank').current() <= 2.01
        # epochs 2 (interval) and 3 (the last one)
        assert len(hub.get_scalar('frozen/knn_top1').data[0]) == 2

        scalars = osp.join(runner.log_dir, 'vis_data', 'scalars.json')
        with open(scalars) as f:
            records = [json.loads(line) for line in f]
        frozen = [r for r in records if 'frozen/knn_top1' in r]
        assert [r['step'] for r in frozen] == [8, 12]  # 4 iters per epoch
        with open(osp.join(runner.log_dir, f'{runner.timestamp}.log')) as f:
            log = f.read()
        assert 'Epoch(frozen) [2]' in log and 'frozen/knn_top1: 100' in log
        assert runner.model.training

    def test_by_iter(self):
        cfg = self.iter_based_cfg.copy()
        cfg.custom_hooks = [
            dict(self.hook_cfg, interval=5, by_epoch=False, linear=False)
        ]
        runner = self.build_runner(cfg)
        runner.train()
        hub = runner.message_hub
        # iterations 5, 10 and 12 (the last one)
        assert len(hub.get_scalar('frozen/knn_top1').data[0]) == 3
        assert 'frozen/linear_top1' not in hub.log_scalars
        scalars = osp.join(runner.log_dir, 'vis_data', 'scalars.json')
        with open(scalars) as f:
            records = [json.loads(line) for line in f]
        frozen = [r['step'] for r in records if 'frozen/knn_top1' in r]
        assert frozen == [5, 10, 12]  # the iterations just ended
        with open(osp.join(runner.log_dir, f'{runner.timestamp}.log')) as f:
            assert 'Iter(frozen) [5]' in f.read()

    def test_hook_changes_nothing_in_training(self):
        """Same weights with or without the hook: modes and RNG restored."""
        weights = []
        for hooks in ([], [dict(self.hook_cfg)]):
            cfg = self.epoch_based_cfg.copy()
            cfg.custom_hooks = hooks
            runner = self.build_runner(cfg)
            runner.train()
            weights.append(runner.model.backbone[0].weight.detach().clone())
            MessageHub._instance_dict.clear()
        assert torch.equal(weights[0], weights[1])

    def test_evaluate_restores_modes(self):
        cfg = self.epoch_based_cfg.copy()
        runner = self.build_runner(cfg)
        hook = FrozenEvalHook(
            train_dataloader=eval_loader(0),
            val_dataloader=eval_loader(1),
            k=3,
            linear=False,
            prefix='probe')
        model = runner.model.train()
        model.backbone[1].eval()  # a submodule deliberately in eval mode
        metrics = hook.evaluate(runner, step=0, tag='Epoch(frozen) [0]')
        assert metrics['probe/knn_top1'] == 100.0
        assert model.training and model.backbone[0].training
        assert not model.backbone[1].training
        assert runner.message_hub.get_scalar('probe/std_mean').current() > 0

    def test_data_from_the_frozen_eval_config_key(self):
        cfg = self.epoch_based_cfg.copy()
        cfg.train_cfg = dict(by_epoch=True, max_epochs=1)
        cfg.custom_hooks = [dict(type='mmssl.FrozenEvalHook', k=3)]
        runner = self.build_runner(cfg)
        with pytest.raises(ValueError, match='frozen_eval'):
            runner.train()

        cfg.frozen_eval = dict(
            train_dataloader=eval_loader(0),
            val_dataloader=eval_loader(1),
            num_classes=3)
        runner = self.build_runner(cfg)
        runner.train()
        hub = runner.message_hub
        assert hub.get_scalar('frozen/knn_top1').current() == 100.0
        hook = [h for h in runner.hooks if isinstance(h, FrozenEvalHook)][0]
        assert hook.num_classes == 3

    def test_bad_arguments(self):
        with pytest.raises(ValueError):
            FrozenEvalHook(train_dataloader=eval_loader(0))
        with pytest.raises(ValueError):
            FrozenEvalHook(
                interval=0,
                train_dataloader=eval_loader(0),
                val_dataloader=eval_loader(1))
        with pytest.raises(ValueError):
            FrozenEvalHook(
                pool='max',
                train_dataloader=eval_loader(0),
                val_dataloader=eval_loader(1))


def test_defaults_and_argument_handling():
    from types import SimpleNamespace
    hook = FrozenEvalHook()
    # the kNN protocol of InstDisc / DINO: 20 neighbours, temperature 0.07
    assert hook.k == 20 and hook.temperature == 0.07
    assert hook.seed == 0 and hook.linear_cfg == {}
    assert FrozenEvalHook(linear_cfg=dict(epochs=3)).linear_cfg == dict(
        epochs=3)
    with pytest.raises(ValueError, match='temperature'):
        FrozenEvalHook(temperature=0.)
    # frozen_eval must hold both loaders
    for frozen in (dict(train_dataloader=eval_loader(0)),
                   dict(val_dataloader=eval_loader(1))):
        runner = SimpleNamespace(cfg=dict(frozen_eval=frozen))
        with pytest.raises(ValueError, match='no frozen_eval = dict'):
            FrozenEvalHook().before_train(runner)
