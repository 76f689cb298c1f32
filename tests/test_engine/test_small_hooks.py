# Copyright (c) mmssl contributors. All rights reserved.
"""Defaults and edges of the small hooks on fake runners: the collapse
guard, DenseCL's warm-up and batch check, the update count, the teacher
decay log, and when and how the reconstruction pictures are drawn."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import mmssl.engine.hooks.reconstruction_vis_hook as vis
from mmssl.engine.hooks import (CollapseGuardHook, DenseCLWarmupHook,
                                NumUpdatesHook, ReconstructionVisHook,
                                TeacherUpdateHook)


def test_collapse_guard_defaults_and_the_limit_itself():
    hook = CollapseGuardHook()  # fairseq's data2vec 2.0 text recipe
    assert (hook.min_target_std, hook.min_pred_std,
            hook.after_iters) == (0.1, 0.01, 5000)
    runner = SimpleNamespace(iter=5000)  # the 5001st update is checked
    # a value at the limit is no collapse
    hook.after_train_iter(runner, 0, None, dict(target_std=0.1, pred_std=0.01))
    with pytest.raises(RuntimeError, match='after 5001 updates'):
        hook.after_train_iter(runner, 0, None, dict(pred_std=0.0099))
    runner.iter = 4999
    hook.after_train_iter(runner, 0, None, dict(pred_std=0.))


class _DenseModel(torch.nn.Module):

    def __init__(self, queue_len=None):
        super().__init__()
        self.loss_lambda = 0.5
        if queue_len is not None:
            self.queue_len = queue_len


def _dense_runner(model, batch_size, world_size, images=48):
    loader = SimpleNamespace(
        batch_size=batch_size, drop_last=True, sampler=[0] * images)
    return SimpleNamespace(
        model=model, iter=0, train_dataloader=loader, world_size=world_size)


def test_densecl_warmup_defaults_and_the_global_batch():
    assert DenseCLWarmupHook().start_iters == 1000
    hook = DenseCLWarmupHook(start_iters=0)  # no warm-up, the check runs
    model = _DenseModel(queue_len=12)
    hook.before_train(_dense_runner(model, 4, 3))  # 12 images a step
    hook.before_train_iter(_dense_runner(model, 4, 3), 0)
    assert model.loss_lambda == 0.5
    # 4 images on each of 2 processes: 8 does not divide 12
    with pytest.raises(ValueError, match='global batch size 8'):
        hook.before_train(_dense_runner(model, 4, 2))
    # a model without a queue is not checked
    hook.before_train(_dense_runner(_DenseModel(), 5, 2, images=7))


def test_update_count_without_accumulation():
    model = SimpleNamespace(set_num_updates=lambda n: seen.append(n))
    seen = []
    # several optimizers (an OptimWrapperDict) keep no count: 1
    runner = SimpleNamespace(model=model, iter=7, optim_wrapper=object())
    NumUpdatesHook().before_train_iter(runner, 0)
    runner.optim_wrapper = SimpleNamespace(_accumulative_counts=3)
    NumUpdatesHook().before_train_iter(runner, 0)
    assert seen == [7, 2]


def test_reconstruction_defaults_and_when_it_draws(monkeypatch):
    hook = ReconstructionVisHook()
    assert (hook.interval, hook.by_epoch, hook.num_images, hook.indices,
            hook.out_dir, hook.seed) == (1, True, 8, None, 'vis', 0)
    tags = []
    for by_epoch in (True, False):
        hook = ReconstructionVisHook(interval=2, by_epoch=by_epoch)
        monkeypatch.setattr(hook, '_draw',
                            lambda runner, tag: tags.append(tag))
        for i in range(4):
            runner = SimpleNamespace(epoch=i, iter=i)
            hook.after_train_iter(runner, i)
            hook.after_train_epoch(runner)
    assert tags == ['epoch2', 'epoch4', 'iter2', 'iter4']


class _Preprocessor:
    mean = torch.tensor([1., 2., 3.])
    std = torch.tensor([4., 5., 6.])

    def __init__(self):
        self.calls = []

    def __call__(self, data, training):
        self.calls.append(training)
        inputs = data['inputs'].float()
        return dict(inputs=[inputs, inputs + 100.])  # two views


class _MaskedModel(torch.nn.Module):
    """Records what ``reconstruct`` was given; a backbone of 2 x 3
    patches."""

    def __init__(self):
        super().__init__()
        self.data_preprocessor = _Preprocessor()
        self.backbone = SimpleNamespace(patch_resolution=(2, 3))
        self.seen = []

    def reconstruct(self, inputs, noise):
        self.seen.append((inputs, noise, self.training))
        return dict(mask='m', reconstruction='r', pasted='p')


def test_reconstruction_draws_the_first_view_with_fixed_masks(
        tmp_path, monkeypatch):
    grids = []

    def grid(inputs, mask, reconstruction, pasted, mean, std):
        grids.append((inputs, mask, reconstruction, pasted, mean, std))
        return np.zeros((4, 6, 3), np.uint8)

    monkeypatch.setattr(vis, 'reconstruction_grid', grid)
    images = [dict(inputs=torch.full((3, 2, 2), i)) for i in range(10)]
    added = []
    model = _MaskedModel().train()
    runner = SimpleNamespace(
        model=model,
        rank=0,
        epoch=4,
        iter=9,
        work_dir=str(tmp_path),
        train_dataloader=SimpleNamespace(dataset=images),
        visualizer=SimpleNamespace(
            add_image=lambda name, img, step: added.append((name, step))))
    hook = ReconstructionVisHook(num_images=4, seed=3)
    hook._draw(runner, 'epoch5')
    inputs, noise, training = model.seen[-1]
    # images 0, 3, 6, 9 (evenly spread), the first view, in eval mode
    assert inputs[:, 0, 0, 0].tolist() == [0., 3., 6., 9.]
    assert not training and model.training  # training mode restored
    assert model.data_preprocessor.calls == [False]
    # one uniform noise row of 2 x 3 patches per image, from the seed
    assert torch.equal(
        noise, torch.rand(4, 6, generator=torch.Generator().manual_seed(3)))
    assert grids[-1][1:4] == ('m', 'r', 'p')
    assert torch.equal(grids[-1][4], _Preprocessor.mean)
    assert torch.equal(grids[-1][5], _Preprocessor.std)
    assert hook.saved_files == [
        str(tmp_path / 'vis' / 'reconstruction_epoch5.png')
    ]
    assert added == [('reconstruction', 5)]  # the epoch just finished
    # counted in iterations: the iteration just finished; the same masks
    hook = ReconstructionVisHook(num_images=4, seed=3, by_epoch=False)
    hook._draw(runner, 'iter10')
    assert added[-1] == ('reconstruction', 10)
    assert torch.equal(model.seen[-1][1], noise)


def test_teacher_decay_is_logged_when_there_is_one():
    logged = []
    decays = iter([0.99, None, 0.995])
    runner = SimpleNamespace(
        model=SimpleNamespace(update_teacher=lambda: next(decays)),
        optim_wrapper=object(),  # no accumulation: every iteration steps
        message_hub=SimpleNamespace(
            update_scalar=lambda key, value: logged.append((key, value))))
    hook = TeacherUpdateHook()
    hook.after_train_iter(runner, 0)
    hook.after_train_iter(runner, 1)  # a model that returns no decay
    assert logged == [('train/teacher_decay', 0.99)]
    TeacherUpdateHook(log_decay=False).after_train_iter(runner, 2)
    assert len(logged) == 1
