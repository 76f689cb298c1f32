# Copyright (c) mmssl contributors. All rights reserved.
"""The multi-task merge of SubTuning checkpoints
(``tools/model_converters/subtuning_multitask.py`` and
:mod:`mmssl.converters.subtuning_multitask`): round trips on the tiny
ResNet-18 config and a small ViT, sizes, and the errors."""
import importlib.util
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from mmssl.analysis import make_subtuning_tasks
from mmssl.converters import (ConversionError, load_subtuning_task,
                              save_multitask_checkpoint, tensor_bytes,
                              verify_multitask)
from mmssl.models import MultiTaskSubTuning
from mmssl.registry import MODELS

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
TINY = osp.join(
    ROOT, 'configs/subtuning/'
    'subtuning_resnet18-tiny-simclr_1xb64-coslr-10e_embedded.py')
TOOL = osp.join(ROOT, 'tools/model_converters/subtuning_multitask.py')
# every task tunes layer4.1: the merged file leaves the trunk's copy out
RESNET_SETS = [['layer4.1'], ['layer2.0', 'layer4.1'],
               ['layer3.1', 'layer4.1']]

VIT_CFG = dict(
    default_scope='mmpretrain',
    model=dict(
        type='mmssl.SubTuningClassifier',
        backbone=dict(
            type='VisionTransformer',
            arch=dict(
                embed_dims=16,
                num_layers=3,
                num_heads=2,
                feedforward_channels=32),
            img_size=32,
            patch_size=8),
        head=dict(
            type='VisionTransformerClsHead',
            num_classes=4,
            in_channels=16,
            loss=dict(type='CrossEntropyLoss')),
        data_preprocessor=dict(
            type='ClsDataPreprocessor',
            mean=[123.675, 116.28, 103.53],
            std=[58.395, 57.12, 57.375],
            to_rgb=True),
        trainable_blocks=[]))
VIT_SETS = [['layers.2'], ['cls_token', 'layers.1'], ['ln1']]


def _tool():
    spec = importlib.util.spec_from_file_location('subtuning_multitask_tool',
                                                  TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tiny_cfg():
    cfg = Config.fromfile(TINY)
    cfg.model.backbone.init_cfg = None
    return cfg


def _write_tasks(tmp_path, cfg, sets):
    """A config and a runner-like checkpoint per task (one shared trunk).

    Returns:
        tuple: the ``--task`` triples and the task models.
    """
    models = make_subtuning_tasks(cfg, sets, seed=3)
    triples = []
    for i, (blocks, model) in enumerate(zip(sets, models)):
        task_cfg = Config(cfg.to_dict())
        task_cfg.model.trainable_blocks = blocks
        config = str(tmp_path / f'task{i}.py')
        task_cfg.dump(config)
        checkpoint = str(tmp_path / f'task{i}.pth')
        torch.save(
            dict(meta=dict(epoch=10), state_dict=model.state_dict()),
            checkpoint)
        triples.append((f't{i}', config, checkpoint))
    return triples, models


def _args(triples, out, *extra):
    args = []
    for triple in triples:
        args += ['--task', *triple]
    return args + ['--out', out, *extra]


def _inputs(size, n=2):
    return torch.randn(
        n, 3, size, size, generator=torch.Generator().manual_seed(5))


def _assert_equal_outputs(multi, models, size):
    x = _inputs(size)
    with torch.inference_mode():
        for batched in (False, True):
            multi.batch_branches = batched
            out = multi(x)
            assert list(out) == [f't{i}' for i in range(len(models))]
            for i, model in enumerate(models):
                torch.testing.assert_close(
                    out[f't{i}'], model(x), atol=1e-6, rtol=0)


def test_tool_round_trip_tiny_resnet(tmp_path, capsys):
    triples, models = _write_tasks(tmp_path, _tiny_cfg(), RESNET_SETS)
    out = str(tmp_path / 'merged.pth')
    config = str(tmp_path / 'merged_cfg.py')
    assert _tool().main(_args(triples, out, '--save-config', config)) == 0
    text = capsys.readouterr().out
    assert 'weights: merged' in text and 'files: merged' in text
    assert "t1: blocks ['layer2.0', 'layer4.1'], 9 classes" in text
    # the trunk once + three branches is much less than three models
    assert osp.getsize(out) < 0.7 * sum(osp.getsize(t[2]) for t in triples)
    # rebuilt from the merged file alone, equal to every task model
    multi = MultiTaskSubTuning.from_checkpoint(out)
    assert multi.task_names == ['t0', 't1', 't2']
    meta = torch.load(out, weights_only=True)['meta']['multitask']
    assert [t['trainable_blocks'] for t in meta['tasks']] == RESNET_SETS
    assert meta['unused_trunk_keys'] and all(
        k.startswith('trunk.layer4.1.') for k in meta['unused_trunk_keys'])
    assert meta['model']['check_trunk'] is False
    # no task config points at the pretrained backbone any more
    assert all(t['model']['backbone'].get('init_cfg') is None
               for t in meta['model']['tasks'])
    _assert_equal_outputs(multi, models, 64)
    # the written config builds the same model
    cfg = Config.fromfile(config)
    built = MODELS.build(cfg.model)
    built.init_weights()
    _assert_equal_outputs(built, models, 64)


def test_round_trip_vit(tmp_path):
    triples, models = _write_tasks(tmp_path, Config(VIT_CFG), VIT_SETS)
    tasks = [load_subtuning_task(*t) for t in triples]
    out = str(tmp_path / 'vit_merged.pth')
    info = save_multitask_checkpoint(tasks, out)
    assert info['merged_file_bytes'] < sum(info['task_file_bytes'].values())
    assert info['merged_weight_bytes'] < sum(
        info['task_weight_bytes'].values())
    diffs = verify_multitask(out, tasks, img_size=32)
    assert set(diffs) == {'branches', 'batch_branches'}
    assert all(d <= 1e-6 for per in diffs.values() for d in per.values())
    _assert_equal_outputs(MultiTaskSubTuning.from_checkpoint(out), models, 32)
    # a task model that no longer matches the file fails the check
    with torch.no_grad():
        tasks[1].model.head.layers.head.bias.add_(1e-3)
    with pytest.raises(ConversionError, match=r't1 \(branches: 0\.001'):
        verify_multitask(out, tasks, img_size=32)
    # a merged file that lost a weight names it
    merged = torch.load(out, weights_only=True)
    del merged['state_dict']['branches.1.params.cls_token']
    torch.save(merged, out)
    with pytest.raises(ValueError) as info:
        MultiTaskSubTuning.from_checkpoint(out)
    assert "'branches.1.params.cls_token' is missing" in str(info.value)


def test_trunk_mismatch_names_the_key(tmp_path, capsys):
    triples, _ = _write_tasks(tmp_path, _tiny_cfg(), RESNET_SETS)
    checkpoint = torch.load(triples[2][2], weights_only=True)
    checkpoint['state_dict']['backbone.layer1.0.bn1.running_mean'] += 1.
    torch.save(checkpoint, triples[2][2])
    out = str(tmp_path / 'merged.pth')
    assert _tool().main(_args(triples, out)) == 2
    err = capsys.readouterr().err
    assert 'first differing key backbone.layer1.0.bn1.running_mean' in err
    assert "'t0' and 't2'" in err
    assert not osp.exists(out)


def test_checkpoint_that_does_not_fit_its_config(tmp_path):
    triples, _ = _write_tasks(tmp_path, _tiny_cfg(), RESNET_SETS[:1])
    name, config, checkpoint = triples[0]
    state = torch.load(checkpoint, weights_only=True)['state_dict']
    del state['head.fc.bias']
    torch.save(dict(state_dict=state), checkpoint)
    with pytest.raises(ConversionError, match="'head.fc.bias' is missing"):
        load_subtuning_task(name, config, checkpoint)
    state['head.fc.bias'] = torch.zeros(9)
    state['head.fc.weight'] = torch.zeros(5, 256)
    torch.save(dict(state_dict=state), checkpoint)
    with pytest.raises(ConversionError) as info:
        load_subtuning_task(name, config, checkpoint)
    assert "'head.fc.weight' has shape (5, 256) in the checkpoint but " \
           '(9, 256) in the model' in str(info.value)


def test_config_that_is_no_subtuning_classifier(tmp_path, capsys):
    triples, _ = _write_tasks(tmp_path, _tiny_cfg(), RESNET_SETS[:1])
    cfg = Config.fromfile(triples[0][1])
    cfg.model.type = 'ImageClassifier'
    del cfg.model.trainable_blocks
    config = str(tmp_path / 'plain.py')
    cfg.dump(config)
    out = str(tmp_path / 'merged.pth')
    args = _args([triples[0], ('plain', config, triples[0][2])], out)
    assert _tool().main(args) == 2
    err = capsys.readouterr().err
    assert "task 'plain'" in err and 'builds a ImageClassifier' in err
    assert 'SubTuningClassifier config' in err


def test_tensor_bytes():
    """Elements times element size, summed over the tensors only."""
    sd = {
        'a': torch.zeros(3, 2),
        'b': torch.zeros(5, dtype=torch.float16),
        'c': torch.zeros(2, dtype=torch.int64),
        'meta': 'not a tensor'
    }
    assert tensor_bytes(sd) == 3 * 2 * 4 + 5 * 2 + 2 * 8


def test_strip_pretrained():
    from mmssl.converters import strip_pretrained
    kaiming = dict(type='Kaiming', layer='Conv2d')
    cfg = dict(
        type='mmssl.SubTuningClassifier',
        pretrained='backbone.pth',
        backbone=dict(
            type='ResNet',
            init_cfg=dict(type='Pretrained', checkpoint='a.pth'),
            stages=[dict(init_cfg=dict(type='PretrainedInit'))]),
        neck=dict(init_cfg=[dict(type='Pretrained'), kaiming]),
        head=dict(init_cfg=[dict(type='Pretrained')]),
        other=dict(init_cfg=kaiming),
        layers=(dict(init_cfg=dict(type='Pretrained'), depth=2), ))
    assert strip_pretrained(cfg) == dict(
        type='mmssl.SubTuningClassifier',
        backbone=dict(type='ResNet', stages=[{}]),
        neck=dict(init_cfg=[kaiming]),
        head={},
        other=dict(init_cfg=kaiming),
        layers=(dict(depth=2), ))


@pytest.mark.parametrize('in_model', [False, True])
def test_data_preprocessor_of_the_config(tmp_path, in_model):
    """A task config's top-level ``data_preprocessor`` is used when its
    model has none (mmpretrain's configs put it there); the model's own
    one wins."""
    triples, _ = _write_tasks(tmp_path, Config(VIT_CFG), VIT_SETS[:1])
    name, config, checkpoint = triples[0]
    cfg = Config.fromfile(config)
    top = dict(cfg.model.data_preprocessor, std=[1.0, 2.0, 3.0])
    cfg.data_preprocessor = top
    if not in_model:
        del cfg.model.data_preprocessor
    cfg.dump(config)
    task = load_subtuning_task(name, config, checkpoint)
    std = task.model.data_preprocessor.std.flatten().tolist()
    expected = [58.395, 57.12, 57.375] if in_model else [1.0, 2.0, 3.0]
    assert std == pytest.approx(expected)
    assert task.model_cfg['data_preprocessor']['std'] == expected


def test_missing_checkpoint_is_named(tmp_path):
    triples, _ = _write_tasks(tmp_path, Config(VIT_CFG), VIT_SETS[:1])
    name, config, _ = triples[0]
    missing = str(tmp_path / 'nowhere.pth')
    with pytest.raises(ConversionError) as err:
        load_subtuning_task(name, config, missing)
    assert str(err.value) == (f"task 't0': checkpoint file {missing!r} does "
                              'not exist')


class _Task(torch.nn.Module):
    """A task model with constant logits ``offset`` (differences are then
    exact); it keeps the inputs it saw."""

    def __init__(self, offset):
        super().__init__()
        self.offset = offset
        self.seen = []

    def forward(self, inputs, mode='tensor'):
        self.seen.append(inputs.clone())
        return torch.full((len(inputs), 1), self.offset)


class _Merged(torch.nn.Module):
    """A merged model whose outputs are off by ``errors[batch_branches]``
    (an (N, 1) tensor per task, or a number)."""

    def __init__(self, tasks, errors):
        super().__init__()
        self.tasks, self.errors = tasks, errors
        self.batch_branches = 'unchanged'

    def forward(self, inputs, mode='tensor'):
        err = self.errors[self.batch_branches]
        return {t.name: t.model(inputs) + err for t in self.tasks}


def _fake_tasks(img_sizes=(32, 48)):
    from mmssl.converters import SubTuningTask
    return [
        SubTuningTask(f't{i}', 'cfg.py', 'ckpt.pth', _Task(float(i)),
                      dict(backbone=dict(img_size=size)), 'mmssl')
        for i, size in enumerate(img_sizes)
    ]


def test_verify_multitask_inputs():
    """One batch of 2 standard normal images from seed 0, of the first
    task's backbone.img_size (or the first of a pair, or 64)."""
    tasks = _fake_tasks()
    diffs = verify_multitask(_Merged(tasks, {False: 0., True: 0.}), tasks)
    x = tasks[1].model.seen[0]
    assert x.shape == (2, 3, 32, 32)
    assert torch.equal(
        x,
        torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)))
    assert diffs == {
        'branches': {
            't0': 0.,
            't1': 0.
        },
        'batch_branches': {
            't0': 0.,
            't1': 0.
        }
    }
    for sizes, side in (([[40, 56], 48], 40), ([None], 64)):
        tasks = _fake_tasks(sizes)
        if sizes[0] is None:
            tasks[0].model_cfg['backbone'].pop('img_size')
        verify_multitask(_Merged(tasks, {False: 0., True: 0.}), tasks)
        assert tasks[0].model.seen[0].shape[-1] == side


def test_verify_multitask_differences():
    """Both forwards are checked (per branch, then batched), each by the
    largest absolute difference, against atol=1e-6 inclusive; the model's
    own batch_branches is restored."""
    tasks = _fake_tasks()
    small = torch.tensor([[0.], [-0.25]])
    merged = _Merged(tasks, {False: small, True: 0.5})
    diffs = verify_multitask(merged, tasks, atol=0.5)
    assert diffs == {
        'branches': {
            't0': 0.25,
            't1': 0.25
        },
        'batch_branches': {
            't0': 0.5,
            't1': 0.5
        }
    }
    assert list(diffs) == ['branches', 'batch_branches']
    assert merged.batch_branches == 'unchanged'
    with pytest.raises(ConversionError) as err:
        verify_multitask(merged, tasks, atol=0.4)
    assert str(err.value).endswith(
        'above atol=0.4 for t0 (batch_branches: 0.5), t1 (batch_branches: '
        '0.5)')
    merged = _Merged(tasks, {False: 1.5e-6, True: 0.})
    with pytest.raises(ConversionError, match=r'atol=1e-06 for t0 \(bra'):
        verify_multitask(merged, tasks)
