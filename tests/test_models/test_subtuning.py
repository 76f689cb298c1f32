# Copyright (c) mmssl contributors. All rights reserved.
"""SubTuning (spec subtuning.md sections 2, 6, 7): the classifier that
trains chosen blocks, the greedy subset search, multi-task inference."""
import math
import os.path as osp
import sys

import pytest
import torch
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmpretrain.structures import DataSample
from torch.nn.modules.batchnorm import _BatchNorm

from mmssl.models.utils import (block_names, greedy_select, in_blocks,
                                selectable_blocks)
from mmssl.registry import MODELS

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from subtuning_helpers import subtuning_cfg  # noqa: E402
from subtuning_helpers import tiny_resnet, tiny_vit

init_default_scope('mmpretrain')


def _resnet(**kw):
    return tiny_resnet(**dict(dict(drop_path_rate=0.1), **kw))


def _vit(**kw):
    return tiny_vit(**dict(dict(drop_rate=0.1, drop_path_rate=0.1), **kw))


def _classifier(backbone, trainable, num_classes=3, **kw):
    return subtuning_cfg(backbone, trainable, num_classes=num_classes, **kw)


def _data(n=4, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return dict(
        inputs=torch.rand(n, 3, 32, 32, generator=gen) * 255,
        data_samples=[DataSample().set_gt_label(i % 3) for i in range(n)])


def _snapshot(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _train(model, optimizer, steps=3, paramwise_cfg=None):
    wrapper_cfg = dict(optimizer=optimizer)
    if paramwise_cfg is not None:
        wrapper_cfg['paramwise_cfg'] = paramwise_cfg
    wrapper = build_optim_wrapper(model, wrapper_cfg)
    model.train()
    for step in range(steps):
        model.train_step(_data(seed=step), wrapper)
    return wrapper


def _trained_key(key, blocks):
    """Whether a state_dict key belongs to the trained part."""
    if not key.startswith('backbone.'):
        return True  # neck and head
    return in_blocks(key[len('backbone.'):], blocks)


ADAMW = dict(type='AdamW', lr=1e-2, weight_decay=1e-2)
SGD = dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-2)


@pytest.mark.parametrize('backbone,trainable,optimizer,paramwise', [
    (_resnet(), ['layer4.1'], ADAMW, None),
    (_resnet(), ['backbone.layer2.0', 'layer4'], SGD, None),
    (_resnet(), ['layer3.1'], SGD, dict(norm_decay_mult=0.)),
    (_vit(), ['layers.1'], ADAMW, None),
    (_vit(), ['cls_token', 'layers.2', 'ln1'], SGD, None),
])
def test_frozen_parts_bit_identical(backbone, trainable, optimizer, paramwise):
    torch.manual_seed(0)
    model = MODELS.build(_classifier(backbone, trainable))
    blocks = model.trainable_blocks
    before = _snapshot(model)
    wrapper = _train(model, optimizer, paramwise_cfg=paramwise)
    after = model.state_dict()
    moved = set()
    for key, value in before.items():
        if _trained_key(key, blocks):
            if not torch.equal(value, after[key]):
                moved.add(key)
        else:
            assert torch.equal(value, after[key]), f'frozen {key} changed'
    params = dict(model.named_parameters())
    trained = {k for k, p in params.items() if _trained_key(k, blocks)}
    assert trained and {k
                        for k, p in params.items()
                        if p.requires_grad} == trained
    # every trainable parameter moved (weight decay alone moves it)
    assert trained <= moved, sorted(trained - moved)
    if backbone['type'] == 'ResNet':
        # running statistics of the trained blocks' BN moved, of the
        # frozen ones not (checked above)
        assert any(
            k.endswith('running_mean') and k.startswith('backbone.')
            for k in moved)
    # the optimizer keeps state for the trainable parameters only
    optimizer = wrapper.optimizer
    ids = {id(p) for p in params.values() if p.requires_grad}
    assert {id(p) for p in optimizer.state} == ids
    grouped = {id(p) for g in optimizer.param_groups for p in g['params']}
    if paramwise is not None:
        # with a paramwise_cfg mmengine leaves frozen parameters out
        assert grouped == ids
    else:
        # without, the optimizer holds them but they never get a gradient
        assert grouped == {id(p) for p in params.values()}
        assert all(p.grad is None for p in params.values()
                   if not p.requires_grad)


def test_empty_set_is_linear_probing():
    torch.manual_seed(0)
    model = MODELS.build(_classifier(_resnet(), []))
    assert model.trainable_blocks == []
    assert {k
            for k, p in model.named_parameters()
            if p.requires_grad} == {'head.fc.weight', 'head.fc.bias'}
    before = _snapshot(model)
    _train(model, ADAMW)
    after = model.state_dict()
    for key, value in before.items():
        same = torch.equal(value, after[key])
        assert same != key.startswith('head.'), key


def test_train_mode_keeps_frozen_modules_in_eval():
    model = MODELS.build(_classifier(_resnet(), ['layer2', 'layer4.0']))
    model.train()
    assert model.training and model.head.training
    for name, module in model.backbone.named_modules():
        if isinstance(module, (_BatchNorm, torch.nn.Dropout)) or hasattr(
                module, 'drop_prob'):
            trained = in_blocks(name, ['layer2', 'layer4.0'])
            assert module.training == trained, name
    model.eval()
    assert not any(m.training for m in model.modules())
    model.train()
    assert model.backbone.layer4[0].bn1.training
    # the backbone's own norm_eval still applies, trained blocks included
    model = MODELS.build(_classifier(_resnet(norm_eval=True),
                                     ['layer4.0'])).train()
    assert not any(m.training for m in model.backbone.modules()
                   if isinstance(m, _BatchNorm))
    assert model.backbone.layer4[0].training
    # ViT: dropout of frozen blocks is off, of trained ones on
    vit = MODELS.build(_classifier(_vit(), ['layers.2'])).train()
    assert not vit.backbone.layers[0].training
    assert not vit.backbone.drop_after_pos.training
    assert vit.backbone.layers[2].training


def test_checkpoint_loads_into_the_plain_classifier():
    model = MODELS.build(_classifier(_resnet(), ['layer4']))
    cfg = _classifier(_resnet(), None)
    cfg.pop('trainable_blocks')
    cfg['type'] = 'ImageClassifier'
    plain = MODELS.build(cfg)
    plain.load_state_dict(model.state_dict(), strict=True)


def test_block_names():
    resnet = MODELS.build(_resnet())
    assert block_names(resnet) == [
        'conv1', 'bn1', 'layer1', 'layer1.0', 'layer1.1', 'layer2', 'layer2.0',
        'layer2.1', 'layer3', 'layer3.0', 'layer3.1', 'layer4', 'layer4.0',
        'layer4.1'
    ]
    assert selectable_blocks(resnet) == [
        f'layer{i}.{j}' for i in range(1, 5) for j in range(2)
    ]
    vit = MODELS.build(_vit())
    assert block_names(vit) == [
        'cls_token', 'pos_embed', 'patch_embed', 'layers', 'layers.0',
        'layers.1', 'layers.2', 'ln1'
    ]
    assert selectable_blocks(vit) == ['layers.0', 'layers.1', 'layers.2']


@pytest.mark.parametrize('backbone,bad,listed', [
    (_resnet(), ['layer4.2'], 'layer1, layer1.0, layer1.1, layer2'),
    (_resnet(), ['layer4_0'], 'layer4, layer4.0, layer4.1'),
    (_vit(), ['layers.3'], 'patch_embed, layers, layers.0, layers.1, '
     'layers.2, ln1'),
    (_vit(), ['blocks.0'], 'cls_token, pos_embed'),
])
def test_unknown_block_lists_the_valid_ones(backbone, bad, listed):
    with pytest.raises(ValueError) as info:
        MODELS.build(_classifier(backbone, bad))
    message = str(info.value)
    assert 'model.trainable_blocks' in message
    assert repr(bad[0]) in message and listed in message


@pytest.mark.parametrize('trainable,match', [
    (None, 'model.trainable_blocks is required'),
    ('layer4', 'must be a list of backbone block names'),
    (['layer4', 4], 'must hold block names'),
])
def test_bad_trainable_blocks(trainable, match):
    with pytest.raises(ValueError, match=match):
        MODELS.build(_classifier(_resnet(), trainable))


def test_block_names_must_come_as_a_list():
    from mmssl.models.utils.subtuning import resolve_blocks
    backbone = MODELS.build(_resnet())
    for bad in ({'layer4': True}, 4):
        with pytest.raises(ValueError, match='must be a list of backbone'):
            resolve_blocks(backbone, bad)
    assert resolve_blocks(backbone, ('backbone.layer4', )) == ['layer4']


def test_backbone_without_frozen_stages():
    """A backbone with no frozen_stages setting (LeNet5) is accepted."""
    model = MODELS.build(
        dict(
            type='mmssl.SubTuningClassifier',
            backbone=dict(type='LeNet5', num_classes=0),
            head=dict(
                type='LinearClsHead',
                num_classes=3,
                in_channels=120,
                loss=dict(type='CrossEntropyLoss')),
            trainable_blocks=[]))
    assert not hasattr(model.backbone, 'frozen_stages')
    assert model.num_trainable() == 120 * 3 + 3


def test_bad_model_around_the_blocks():
    with pytest.raises(ValueError, match='frozen_stages=1'):
        MODELS.build(_classifier(_resnet(frozen_stages=1), ['layer4']))
    no_params_head = _classifier(_resnet(), [])
    no_params_head['head'] = dict(type='ClsHead')
    with pytest.raises(ValueError, match='nothing to train'):
        MODELS.build(no_params_head)
    no_head = _classifier(_resnet(), ['layer4'])
    no_head['head'] = None
    with pytest.raises(ValueError, match='model.head is required'):
        MODELS.build(no_head)


# ---------------------------------------------------------------- greedy


class FakeEvaluate:
    """Accuracy table: a base plus one gain per block plus extras for sets,
    counting every call."""

    def __init__(self, gains, base=0.5, extra=None):
        self.gains, self.base, self.extra = gains, base, extra or {}
        self.calls = []

    def __call__(self, subset):
        assert isinstance(subset, tuple)
        self.calls.append(subset)
        acc = self.base + sum(self.gains[b] for b in subset)
        return acc + self.extra.get(frozenset(subset), 0.)


BLOCKS = ['b0', 'b1', 'b2', 'b3', 'b4']


def test_greedy_forward_returns_the_known_best_set():
    # b3 and b1 help, the others hurt by more than eps: best = {b1, b3}
    fake = FakeEvaluate(dict(b0=-0.05, b1=0.1, b2=-0.03, b3=0.2, b4=-0.08))
    result = greedy_select(BLOCKS, fake, eps=0.01)
    assert result.selected == ['b1', 'b3']
    assert math.isclose(result.accuracy, 0.8)
    assert [h['block'] for h in result.history] == [None, 'b3', 'b1', 'b2']
    assert [h['action']
            for h in result.history] == ['start', 'add', 'add', 'add']
    # the third step lost 0.03 > eps: the search stopped there
    assert result.history[-1]['subset'] == ('b1', 'b2', 'b3')
    assert result.history[-1]['best'] == result.accuracy
    assert len(fake.calls) == len(set(fake.calls)) == 1 + 5 + 4 + 3


def test_greedy_tolerance_lets_a_small_loss_pass():
    # b2 alone loses 0.005 (< eps) but b2 + b4 gains: the search goes on
    # through the small loss and finds {b2, b4}; with eps=0 it stops at {}
    gains = dict(b0=-0.1, b1=-0.1, b2=-0.005, b3=-0.1, b4=-0.02)
    extra = {frozenset({'b2', 'b4'}): 0.1}
    loose = greedy_select(BLOCKS, FakeEvaluate(gains, extra=extra), eps=0.01)
    assert loose.selected == ['b2', 'b4']
    assert math.isclose(loose.accuracy, 0.5 - 0.025 + 0.1)
    strict = greedy_select(BLOCKS, FakeEvaluate(gains, extra=extra), eps=0.)
    assert strict.selected == [] and strict.accuracy == 0.5
    assert [h['block'] for h in strict.history] == [None, 'b2']


def test_greedy_returns_the_best_not_the_last():
    # all gains within eps after the first: the search runs to the end
    gains = dict(b0=0.1, b1=-0.002, b2=-0.002, b3=-0.002, b4=-0.002)
    result = greedy_select(BLOCKS, FakeEvaluate(gains), eps=0.01)
    assert result.selected == ['b0']
    assert result.history[-1]['subset'] == tuple(BLOCKS)
    assert len(result.history) == 1 + len(BLOCKS)


def test_greedy_backward_and_best_start():
    # removing b0 and b4 helps: best = {b1, b2, b3}
    gains = dict(b0=-0.1, b1=0.1, b2=0.1, b3=0.1, b4=-0.05)
    backward = greedy_select(BLOCKS, FakeEvaluate(gains), start='all')
    assert backward.selected == ['b1', 'b2', 'b3']
    assert [h['block'] for h in backward.history[:3]] == [None, 'b0', 'b4']
    assert backward.history[1]['action'] == 'remove'
    # 'best': all (0.65) beats none (0.5), so it searches backward
    best = greedy_select(BLOCKS, FakeEvaluate(gains), start='best')
    assert best.selected == ['b1', 'b2', 'b3']
    assert best.history[0]['subset'] == tuple(BLOCKS)
    # ... and forward when the empty set is better
    gains = dict(b0=-0.1, b1=0.05, b2=-0.1, b3=-0.1, b4=-0.1)
    best = greedy_select(BLOCKS, FakeEvaluate(gains), start='best')
    assert best.history[0]['subset'] == ()
    assert best.selected == ['b1']


def _table(accuracies):
    """evaluate() from a table: subset (as a string of block indices, ''
    for the empty set) -> accuracy; exact binary fractions, so the
    comparisons with the best and with eps have no rounding."""
    return lambda subset: accuracies[''.join(b[1:] for b in subset)]


def test_greedy_ties_boundaries_and_step_numbers():
    four = BLOCKS[:4]
    # a tie between b0 and b1: the first in block order is taken; a step
    # that equals the best does not replace it (the smaller set stays);
    # a step exactly eps below the best goes on (step 3 -> step 4)
    table = {
        '': 0.5,
        '0': 0.75,
        '1': 0.75,
        '2': 0.25,
        '3': 0.25,
        '01': 0.75,
        '02': 0.25,
        '03': 0.25,
        '012': 0.5,
        '013': 0.25,
        '0123': 0.5
    }
    result = greedy_select(four, _table(table), eps=0.25)
    assert [h['block']
            for h in result.history] == [None, 'b0', 'b1', 'b2', 'b3']
    assert [h['step'] for h in result.history] == [0, 1, 2, 3, 4]
    assert result.selected == ['b0'] and result.accuracy == 0.75
    # one more quarter below at step 3: the search stops there
    table.update({'012': 0.25})
    stopped = greedy_select(four, _table(table), eps=0.25)
    assert [h['step'] for h in stopped.history] == [0, 1, 2, 3]
    # 'best' with none and all equal starts from the empty set
    tie = greedy_select(four, _table(table), start='best')
    assert tie.history[0]['subset'] == () and tie.history[1]['action'] == 'add'


def test_greedy_default_tolerance_is_one_point():
    """eps = 0.01 by default: a 0.015 loss ends the search, 0.005 not."""
    table = {
        '': 0.5,
        '0': 0.625,
        '1': 0.5,
        '01': 0.625 - 0.015,
        '2': 0.5,
        '02': 0.625 - 0.015,
        '012': 0.75
    }
    # with three blocks the 0.015 loss stops before b2 could be added
    stopped = greedy_select(BLOCKS[:3], _table(table))
    assert len(stopped.history) == 3 and stopped.selected == ['b0']
    table.update({'01': 0.625 - 0.005, '02': 0.625 - 0.005})
    on = greedy_select(BLOCKS[:3], _table(table))
    assert on.selected == ['b0', 'b1', 'b2'] and on.accuracy == 0.75


@pytest.mark.parametrize('kwargs,match', [
    (dict(blocks=[]), 'non-empty'),
    (dict(blocks=['b0', 'b0']), 'distinct'),
    (dict(eps=-0.1), 'eps'),
    (dict(start='some'), 'start'),
    (dict(evaluate=lambda s: float('nan')), 'finite'),
    (dict(evaluate=lambda s: True), 'finite number, got True'),
])
def test_greedy_bad_input(kwargs, match):
    args = dict(
        blocks=BLOCKS, evaluate=FakeEvaluate(dict.fromkeys(BLOCKS, 0.)))
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        greedy_select(**args)


# ------------------------------------------------------------ multi-task


def _tasks(backbone, sets, seed=0):
    """Task models finetuned (a few SGD steps) from one pretrained trunk."""
    torch.manual_seed(seed)
    pretrained = MODELS.build(_classifier(backbone, [])).backbone.state_dict()
    models = []
    for i, blocks in enumerate(sets):
        torch.manual_seed(seed + 1 + i)
        model = MODELS.build(_classifier(backbone, blocks, num_classes=3 + i))
        model.backbone.load_state_dict(pretrained)
        _train(model, SGD, steps=2)
        models.append(model.eval())
    return models


def _inputs(n=3):
    return torch.randn(
        n, 3, 32, 32, generator=torch.Generator().manual_seed(9))


RESNET_SETS = [['layer4.1'], ['layer2', 'layer3.0'], []]
VIT_SETS = [['layers.2'], ['cls_token', 'layers.0'], ['ln1', 'pos_embed']]


@pytest.mark.parametrize('backbone,sets', [
    (_resnet(), RESNET_SETS),
    (_resnet(out_indices=(1, 3)), RESNET_SETS[:2]),
    (_vit(), VIT_SETS),
    (_vit(out_type='avg_featmap'), [['ln2'], ['layers.1']]),
])
def test_multitask_equals_the_separate_models(backbone, sets):
    models = _tasks(backbone, sets)
    multi = MODELS.build(
        dict(
            type='mmssl.MultiTaskSubTuning',
            tasks=models,
            task_names=[f't{i}' for i in range(len(models))]))
    x = _inputs()
    with torch.no_grad():
        out = multi(x)
        assert list(out) == [f't{i}' for i in range(len(models))]
        for i, model in enumerate(models):
            expected = model(x)
            assert out[f't{i}'].shape == (3, 3 + i)
            torch.testing.assert_close(
                out[f't{i}'], expected, atol=1e-6, rtol=0)
            feats = multi.features(x)[f't{i}']
            for got, want in zip(feats, model.backbone(x)):
                torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
    # the tasks differ, so each really runs its own blocks
    assert not torch.allclose(out['t0'][:, :3], out['t1'][:, :3])


def test_multitask_shares_the_prefix_and_predicts():
    models = _tasks(_resnet(), RESNET_SETS)
    multi = MODELS.build(dict(type='mmssl.MultiTaskSubTuning', tasks=models))
    # units: stem, layer1.0 ... layer4.1; a head-only task branches at the end
    assert multi.branch_points == [8, 3, 9]
    calls = []
    multi.trunk.conv1.register_forward_hook(lambda *a: calls.append(1))
    multi.trunk.layer4[0].register_forward_hook(lambda *a: calls.append(4))
    samples = [DataSample() for _ in range(3)]
    with torch.no_grad():
        preds = multi(_inputs(), samples, mode='predict')
    # the stem runs once; frozen layer4.0 once for the shared path of task0
    # and task2, once in the branch of task1 (tuned from layer2 on)
    assert calls.count(1) == 1 and calls.count(4) == 2
    assert list(preds) == ['task0', 'task1', 'task2']
    assert all('pred_score' not in s for s in samples)
    with torch.no_grad():
        for model, name in zip(models, preds):
            want = model.predict(_inputs())
            for got, ref in zip(preds[name], want):
                torch.testing.assert_close(
                    got.pred_score, ref.pred_score, atol=1e-6, rtol=0)
    multi.train()
    assert not any(m.training for m in multi.modules())
    with pytest.raises(ValueError, match='inference only'):
        multi(_inputs(), mode='loss')


def test_multitask_from_configs_and_checkpoints(tmp_path):
    models = _tasks(_vit(), VIT_SETS[:2])
    tasks = []
    for i, model in enumerate(models):
        path = str(tmp_path / f'task{i}.pth')
        torch.save(dict(state_dict=model.state_dict()), path)
        tasks.append(
            dict(
                model=_classifier(_vit(), VIT_SETS[i], num_classes=3 + i),
                checkpoint=path))
    multi = MODELS.build(dict(type='mmssl.MultiTaskSubTuning', tasks=tasks))
    x = _inputs()
    with torch.no_grad():
        out = multi(x)
        for i, model in enumerate(models):
            torch.testing.assert_close(
                out[f'task{i}'], model(x), atol=1e-6, rtol=0)


@pytest.mark.parametrize('key', [
    'layer1.0.conv1.weight', 'layer1.0.bn1.running_mean', 'layer4.0.bn2.bias'
])
def test_multitask_differing_trunks_name_the_key(key):
    models = _tasks(_resnet(), RESNET_SETS)
    with torch.no_grad():
        models[2].backbone.state_dict()[key].add_(1.)
    with pytest.raises(ValueError) as info:
        MODELS.build(dict(type='mmssl.MultiTaskSubTuning', tasks=models))
    message = str(info.value)
    assert f'first differing key backbone.{key} ' in message
    assert "'task0' and 'task2'" in message or "'task1' and 'task2'" in message


def test_multitask_bad_tasks():
    models = _tasks(_resnet(), RESNET_SETS[:1])
    build = dict(type='mmssl.MultiTaskSubTuning')
    with pytest.raises(ValueError, match='at least one task'):
        MODELS.build(dict(build, tasks=[]))
    plain = _classifier(_resnet(), None)
    plain.pop('trainable_blocks')
    plain['type'] = 'ImageClassifier'
    with pytest.raises(ValueError, match=r'tasks\[1\] is a ImageClassifier'):
        MODELS.build(dict(build, tasks=[models[0], dict(model=plain)]))
    with pytest.raises(ValueError, match='task_names'):
        MODELS.build(dict(build, tasks=models, task_names=['a', 'b']))
    other = MODELS.build(
        _classifier(_resnet(out_indices=(2, 3)), ['layer4'], num_classes=3))
    with pytest.raises(ValueError, match=r'backbone.out_indices'):
        MODELS.build(dict(build, tasks=[models[0], other]))
    vit = MODELS.build(_classifier(_vit(), ['layers.0']))
    with pytest.raises(ValueError, match='has a VisionTransformer backbone'):
        MODELS.build(dict(build, tasks=[models[0], vit]))
