# Copyright (c) mmssl contributors. All rights reserved.
"""FrozenModuleCheckHook (spec subtuning.md section 6): silent on a correct
SubTuning run, fails naming the first moved key when a frozen BN trains or
a frozen weight is written, re-records after a resume."""
from types import SimpleNamespace

import pytest
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.registry import DATASETS, HOOKS, MODELS, init_default_scope
from mmengine.runner import Runner
from mmpretrain.structures import DataSample
from torch.utils.data import Dataset

from mmssl.engine.hooks import FrozenModuleCheckHook, frozen_state
from mmssl.models.classifiers import SubTuningClassifier
from mmssl.testing.resume import own_experiment_name

init_default_scope('mmpretrain')


class FrozenCheckToyDataset(Dataset):
    """12 random 32 px images in 3 classes."""
    METAINFO = dict(classes=('a', 'b', 'c'))

    def __init__(self, num=12):
        gen = torch.Generator().manual_seed(0)
        self.images = torch.randint(0, 256, (num, 3, 32, 32), generator=gen)

    @property
    def metainfo(self):
        return self.METAINFO

    def __len__(self):
        return len(self.images)

    def __getitem__(self, idx):
        return dict(
            inputs=self.images[idx],
            data_samples=DataSample().set_gt_label(idx % 3))


class LeakyBNSubTuning(SubTuningClassifier):
    """The bug the hook is for: a frozen BN put back in train mode."""

    def train(self, mode=True):
        super().train(mode)
        self.backbone.layer1[0].bn1.train(mode)
        return self


class EditFrozenWeightHook(Hook):
    """Writes a frozen weight before iteration ``at`` (0-based)."""

    def __init__(self, at):
        self.at = at

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if runner.iter == self.at:
            with torch.no_grad():
                runner.model.backbone.conv1.weight[0, 0, 0, 0] += 1.


@pytest.fixture(autouse=True)
def _registered():
    DATASETS.register_module(module=FrozenCheckToyDataset, force=True)
    MODELS.register_module(module=LeakyBNSubTuning, force=True)
    HOOKS.register_module(module=EditFrozenWeightHook, force=True)
    yield
    DATASETS.module_dict.pop('FrozenCheckToyDataset', None)
    MODELS.module_dict.pop('LeakyBNSubTuning', None)
    HOOKS.module_dict.pop('EditFrozenWeightHook', None)


def _model(trainable=('layer4.1', ), siamese=False, model_type=None):
    return dict(
        type=model_type or 'mmssl.SubTuningClassifier',
        data_preprocessor=dict(
            type='ClsDataPreprocessor',
            num_classes=3,
            mean=[127.5] * 3,
            std=[127.5] * 3),
        backbone=dict(type='ResNet', depth=18, base_channels=8),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(
            type='LinearClsHead',
            num_classes=3,
            in_channels=128 if siamese else 64,
            loss=dict(type='CrossEntropyLoss')),
        trainable_blocks=list(trainable),
        siamese=siamese)


def _cfg(work_dir, model=None, hooks=(), epochs=2, **kwargs):
    cfg = dict(
        default_scope='mmpretrain',
        work_dir=str(work_dir),
        model=model or _model(),
        train_dataloader=dict(
            batch_size=4,
            num_workers=0,
            sampler=dict(type='DefaultSampler', shuffle=True),
            collate_fn=dict(type='default_collate'),
            dataset=dict(type='FrozenCheckToyDataset')),
        optim_wrapper=dict(
            optimizer=dict(type='AdamW', lr=1e-2, weight_decay=1e-2)),
        train_cfg=dict(by_epoch=True, max_epochs=epochs),
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=1),
            logger=dict(type='LoggerHook', interval=100)),
        custom_hooks=list(hooks),
        randomness=dict(seed=0),
        log_level='WARNING')
    cfg.update(kwargs)
    return own_experiment_name(Config(cfg))


def _check_hook(runner):
    return next(
        h for h in runner.hooks if isinstance(h, FrozenModuleCheckHook))


def test_silent_on_a_correct_run_and_covers_the_frozen_part(tmp_path):
    runner = Runner.from_cfg(
        _cfg(tmp_path, hooks=[dict(type='mmssl.FrozenModuleCheckHook')]))
    runner.train()  # 6 iterations, all checked
    reference = _check_hook(runner)._reference
    model = runner.model
    assert 'backbone.conv1.weight' in reference
    assert 'backbone.layer4.0.bn2.running_var' in reference
    assert 'backbone.layer1.1.bn1.num_batches_tracked' in reference
    # neither the tuned block nor the head
    assert not any(
        k.startswith(('backbone.layer4.1.', 'head.')) for k in reference)
    frozen_params = {
        k
        for k, p in model.named_parameters() if not p.requires_grad
    }
    assert frozen_params <= set(reference)
    # the tuned block did train
    assert model.backbone.layer4[1].bn1.num_batches_tracked.item() == 6


def test_fires_on_a_frozen_bn_in_train_mode(tmp_path):
    cfg = _cfg(
        tmp_path,
        model=_model(model_type='LeakyBNSubTuning'),
        hooks=[dict(type='mmssl.FrozenModuleCheckHook')])
    runner = Runner.from_cfg(cfg)
    with pytest.raises(RuntimeError) as info:
        runner.train()
    message = str(info.value)
    assert ('frozen buffer backbone.layer1.0.bn1.running_mean changed'
            in message)
    assert 'at training iteration 1;' in message
    # running_mean, running_var, num_batches_tracked of that BN
    assert '3 of ' in message
    assert 'train mode (their running statistics update): ' \
        'backbone.layer1.0.bn1' in message


@pytest.mark.parametrize(
    'edit_at,interval,caught_at',
    [
        (1, 1, 2),
        (1, 4, 4),  # checked every 4 iterations
        (4, 4, 6),  # ... and after the last one
    ])
def test_fires_on_an_edited_frozen_weight(tmp_path, edit_at, interval,
                                          caught_at):
    cfg = _cfg(
        tmp_path,
        hooks=[
            dict(type='EditFrozenWeightHook', at=edit_at),
            dict(type='mmssl.FrozenModuleCheckHook', interval=interval)
        ])
    runner = Runner.from_cfg(cfg)
    with pytest.raises(RuntimeError) as info:
        runner.train()
    message = str(info.value)
    assert message.startswith(
        'FrozenModuleCheckHook: frozen parameter backbone.conv1.weight '
        'changed by up to 1 at training iteration '
        f'{caught_at}; 1 of ')
    assert 'a hook, an EMA update' in message
    assert runner.iter == caught_at - 1


def test_records_again_after_resume(tmp_path):
    hooks = [dict(type='mmssl.FrozenModuleCheckHook')]
    Runner.from_cfg(_cfg(tmp_path / 'a', hooks=hooks, epochs=1)).train()
    # frozen weights and statistics in the checkpoint that differ from
    # the ones a fresh model starts with
    path = str(tmp_path / 'a' / 'epoch_1.pth')
    ckpt = torch.load(path, weights_only=False)
    state = ckpt['state_dict']
    state['backbone.conv1.weight'] += 0.5
    state['backbone.layer2.0.bn1.running_mean'] += 0.5
    edited = str(tmp_path / 'edited.pth')
    torch.save(ckpt, edited)
    runner = Runner.from_cfg(
        _cfg(
            tmp_path / 'b',
            hooks=hooks,
            epochs=2,
            resume=True,
            load_from=edited))
    runner.train()  # the loaded values are the reference: no error
    model = runner.model
    assert runner.iter == 6
    for key in ('backbone.conv1.weight', 'backbone.layer2.0.bn1.running_mean'):
        assert torch.equal(model.state_dict()[key], state[key])
        assert torch.equal(_check_hook(runner)._reference[key], state[key])


def test_check_and_frozen_state_directly():
    torch.manual_seed(0)
    model = MODELS.build(_model(siamese=True))
    model.init_weights()
    hook = FrozenModuleCheckHook()
    hook.before_train_iter(SimpleNamespace(model=model), 0)
    # the Siamese copy is frozen as a whole, tuned block included
    assert 'frozen_backbone.layer4.1.conv1.weight' in hook._reference
    assert 'frozen_backbone.layer4.1.bn1.running_mean' in hook._reference
    hook.check(model, 1)
    with torch.no_grad():
        model.frozen_backbone.layer4[1].bn2.bias.add_(1.)
    with pytest.raises(
            RuntimeError,
            match='frozen parameter frozen_backbone.layer4.1.bn2'
            '.bias changed by up to 1 at training iteration 5'):
        hook.check(model, 5)

    # a model without frozen_modules(): modules whose parameters are all
    # frozen count as frozen, with their buffers
    plain = nn.Sequential(
        nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), nn.Conv2d(4, 2, 1),
        nn.BatchNorm2d(2))
    plain[0].requires_grad_(False)
    plain[1].requires_grad_(False)
    assert list(frozen_state(plain)) == [
        '0.weight', '0.bias', '1.weight', '1.bias', '1.running_mean',
        '1.running_var', '1.num_batches_tracked'
    ]
    with pytest.raises(ValueError, match='interval'):
        FrozenModuleCheckHook(interval=0)


def test_nothing_frozen_is_not_an_error(tmp_path):
    everything = ['conv1', 'bn1', 'layer1', 'layer2', 'layer3', 'layer4']
    runner = Runner.from_cfg(
        _cfg(
            tmp_path,
            model=_model(trainable=everything),
            hooks=[dict(type='mmssl.FrozenModuleCheckHook')],
            epochs=1))
    runner.train()
    assert _check_hook(runner)._reference == {}
