# Copyright (c) mmssl contributors. All rights reserved.
"""TeacherUpdateHook and the exact resume of data2vec 2.0's EMA teacher."""
import os.path as osp
from types import SimpleNamespace

import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MessageHub
from mmengine.optim import OptimWrapper
from mmengine.runner import Runner
from mmpretrain.registry import MODELS

from mmssl.engine.hooks import TeacherUpdateHook
from mmssl.testing import (tiny_data2vec2_cfg, tiny_data2vec2_samples,
                           tiny_pretrain_runner_cfg, write_random_images)


def _fake_runner(model, accumulative_counts=1):
    optim = torch.optim.SGD([p for p in model.parameters() if p.requires_grad],
                            lr=0.1)
    wrapper = OptimWrapper(optim, accumulative_counts=accumulative_counts)
    hub = MessageHub.get_instance('test_teacher_update_hook')
    return SimpleNamespace(model=model, optim_wrapper=wrapper, message_hub=hub)


def test_hook_follows_optimizer_updates_with_accumulation():
    torch.manual_seed(0)
    model = MODELS.build(tiny_data2vec2_cfg())
    runner = _fake_runner(model, accumulative_counts=2)
    hook = TeacherUpdateHook()
    hook.before_train(runner)
    x = torch.randn(2, 3, 32, 32)
    for it in range(4):
        losses = model.loss(x, tiny_data2vec2_samples(2))
        runner.optim_wrapper.update_params(
            sum(v for k, v in losses.items() if 'loss' in k))
        hook.after_train_iter(runner, it)
        # the teacher moved only on the iterations where the optimizer did
        assert int(model.teacher.steps) == (it + 1) // 2
    decay = runner.message_hub.get_scalar('train/teacher_decay').current()
    assert decay == pytest.approx(model.teacher.decay_at(2))


def test_hook_needs_a_teacher():
    runner = SimpleNamespace(model=torch.nn.Linear(2, 2))
    with pytest.raises(TypeError, match='update_teacher'):
        TeacherUpdateHook().before_train(runner)


def _cfg(tmp_path, name, data, max_epochs, resume_from=None):
    model = tiny_data2vec2_cfg(
        ema=dict(momentum=0.05, end_momentum=0.01, anneal_iters=10))
    masks = [
        dict(
            type='mmssl.InverseBlockMaskGenerator',
            input_size=4,
            mask_ratio=0.75,
            num_masks=3,
            block_size=2,
            adjust=0.1)
    ]
    return Config(
        tiny_pretrain_runner_cfg(
            model,
            str(tmp_path / name),
            data,
            max_epochs,
            extra_transforms=masks,
            custom_hooks=[dict(type='mmssl.TeacherUpdateHook')],
            resume_from=resume_from))


def _train(cfg):
    runner = Runner.from_cfg(cfg)
    runner.train()
    state = runner.model.state_dict()
    return {k: v.detach().clone() for k, v in state.items()}


def test_resume_restores_teacher_exactly(tmp_path):
    """2 epochs + --resume to 4 equals 4 epochs straight, student, teacher
    and EMA step included (16 images, batch 4: 4 updates per epoch)."""
    data = tmp_path / 'imgs'
    data.mkdir()
    write_random_images(str(data), num=16, size=40)
    straight = _train(_cfg(tmp_path, 'a', str(data), 4))
    assert int(straight['teacher.steps']) == 16
    _train(_cfg(tmp_path, 'b', str(data), 2))
    ckpt = str(tmp_path / 'b' / 'epoch_2.pth')
    raw = torch.load(ckpt, weights_only=True)
    assert int(raw['state_dict']['teacher.steps']) == 8
    assert 'random_state' in raw
    resumed = _train(_cfg(tmp_path, 'c', str(data), 4, resume_from=ckpt))
    assert straight.keys() == resumed.keys()
    assert any(k.startswith('teacher.module.') for k in straight)
    for k in straight:
        torch.testing.assert_close(
            resumed[k], straight[k], atol=1e-6, rtol=0, msg=k)
    # the teacher moved, and it is not the student
    two = raw['state_dict']
    key = 'teacher.module.layers.0.attn.qkv.weight'
    assert (two[key] - straight[key]).abs().max() > 1e-5
    assert not torch.equal(straight[key],
                           straight['backbone.layers.0.attn.qkv.weight'])
    assert osp.exists(str(tmp_path / 'c' / 'epoch_4.pth'))
