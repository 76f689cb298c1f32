# Copyright (c) mmssl contributors. All rights reserved.
"""SubPT: the subspace, the gradient projection, and exact resume."""
import copy
import os.path as osp
from types import SimpleNamespace

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import OptimWrapper
from mmengine.runner import Runner

from mmssl.engine.hooks import SubPTHook
from mmssl.registry import DATASETS
from mmssl.models.prompt import compute_subspace, project_onto_subspace


def test_subspace_is_orthonormal_with_the_rank():
    torch.manual_seed(0)
    snaps = torch.randn(10, 300).cumsum(0)
    u = compute_subspace(snaps, rank=5)
    assert u.shape == (5, 300)
    torch.testing.assert_close(u @ u.t(), torch.eye(5), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match='rank'):
        compute_subspace(snaps, rank=10)  # centring leaves 9 dimensions


def test_subspace_recovers_the_trajectory_plane():
    torch.manual_seed(0)
    v = torch.linalg.qr(torch.randn(64, 2))[0].t()  # (2, 64) orthonormal
    w0 = torch.randn(64)
    a, b = torch.randn(8), torch.randn(8)
    snaps = w0 + a[:, None] * v[0] + b[:, None] * v[1]
    u = compute_subspace(snaps, rank=2)
    # principal angles: singular values of U V^T are all 1
    s = torch.linalg.svdvals(u @ v.t())
    torch.testing.assert_close(s, torch.ones(2), atol=1e-4, rtol=0)


def test_projected_gradient_lies_in_the_subspace():
    torch.manual_seed(0)
    u = torch.linalg.qr(torch.randn(64, 6))[0].t()  # (6, 64)
    g = torch.randn(4, 16)
    pg = project_onto_subspace(g, u)
    flat = pg.reshape(-1)
    orth = flat - u.t() @ (u @ flat)
    assert orth.norm() < 1e-5 * g.norm()
    torch.testing.assert_close(project_onto_subspace(pg, u), pg)  # P P = P
    assert pg.norm() <= g.norm()
    # full rank: the identity
    eye = torch.eye(64)
    torch.testing.assert_close(project_onto_subspace(g, eye), g)


def _fake_runner(param, optimizer, tmp_path):

    class Model(torch.nn.Module):

        def __init__(self):
            super().__init__()
            self.ctx = param

    return SimpleNamespace(
        model=Model(),
        optim_wrapper=OptimWrapper(optimizer),
        work_dir=str(tmp_path),
        logger=SimpleNamespace(info=lambda msg: None))


def test_hook_projects_every_step_and_training_stays_in_span(tmp_path):
    """SGD with momentum, no weight decay: ctx_T - ctx_t lies in span(U)."""
    torch.manual_seed(0)
    ctx = torch.nn.Parameter(torch.randn(4, 8))
    opt = torch.optim.SGD([ctx], lr=0.1, momentum=0.9)
    runner = _fake_runner(ctx, opt, tmp_path)
    hook = SubPTHook(t_early=4, rank=2)
    hook.before_train(runner)
    target = torch.randn(4, 8)
    for epoch in range(4):  # early epochs: free training, snapshots
        opt.zero_grad()
        ((ctx - target)**2).sum().backward()
        opt.step()
        hook.after_train_epoch(runner)
    u = hook.basis
    assert u.shape == (2, 32)
    assert osp.isfile(tmp_path / 'subpt_subspace.pth')
    start = ctx.detach().clone()
    for _ in range(5):
        opt.zero_grad()
        ((ctx - target)**2).sum().backward()
        opt.step()  # the hook projects ctx.grad first
        g = ctx.grad.reshape(-1)
        assert (g - u.t() @ (u @ g)).norm() < 1e-5 * max(g.norm(), 1e-12)
    # momentum from the free epochs leaves the span; reset it to check
    # that the projected updates alone stay inside
    opt.state.clear()
    start = ctx.detach().clone()
    for _ in range(5):
        opt.zero_grad()
        ((ctx - target)**2).sum().backward()
        opt.step()
    d = (ctx.detach() - start).reshape(-1)
    assert d.norm() > 1e-3
    assert (d - u.t() @ (u @ d)).norm() < 1e-5
    hook.after_train(runner)
    assert not hook._handles


def test_hook_from_file_and_checkpoint_state(tmp_path):
    u = torch.linalg.qr(torch.randn(32, 3))[0].t()
    torch.save(dict(basis=u, param_names=['ctx']), tmp_path / 'u.pth')
    ctx = torch.nn.Parameter(torch.randn(4, 8))
    opt = torch.optim.SGD([ctx], lr=0.1)
    runner = _fake_runner(ctx, opt, tmp_path)
    hook = SubPTHook(subspace_file=str(tmp_path / 'u.pth'))
    hook.before_train(runner)
    ctx.sum().backward()
    opt.step()
    g = ctx.grad.reshape(-1)
    assert (g - u.t() @ (u @ g)).norm() < 1e-5
    ckpt = {}
    hook.before_save_checkpoint(runner, ckpt)
    other = SubPTHook(t_early=4, rank=3)
    other.after_load_checkpoint(runner, ckpt)
    torch.testing.assert_close(other.basis, u)
    with pytest.raises(ValueError, match='rank'):
        SubPTHook(t_early=3, rank=3)


# ---------------------------------------------------------------- resume
TINY = dict(
    arch='tiny-rn',
    embed_dim=32,
    vision=dict(width=8, image_size=32),
    text=dict(width=32, heads=2, layers=1, context_length=16))


@DATASETS.register_module(name='SubPTTestImages', force=True)
class _Images(torch.utils.data.Dataset):
    metainfo = dict(classes=('circle', 'star', 'cross', 'square'))

    def __init__(self, n=12, **kwargs):
        g = torch.Generator().manual_seed(0)
        self.x = torch.rand(n, 3, 32, 32, generator=g) * 255
        self.y = [i % 2 for i in range(n)]  # base classes only

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        from mmpretrain.structures import DataSample
        return dict(
            inputs=self.x[i], data_samples=DataSample().set_gt_label(
                self.y[i]))


def _cfg(work_dir, max_epochs, resume_from=None, t_early=2, rank=1):
    cfg = dict(
        default_scope='mmpretrain',
        custom_imports=dict(imports=['mmssl'], allow_failed_imports=False),
        work_dir=work_dir,
        model=dict(
            type='mmssl.CoOp',
            clip=TINY,
            class_names=['circle', 'star', 'cross', 'square'],
            num_base=2,
            n_ctx=4,
            nfl=dict(names='novel'),
            data_preprocessor=dict(type='mmpretrain.ClsDataPreprocessor')),
        train_dataloader=dict(
            batch_size=4,
            num_workers=0,
            sampler=dict(type='DefaultSampler', shuffle=True),
            collate_fn=dict(type='pseudo_collate'),
            dataset=dict(type='mmssl.SubPTTestImages')),
        optim_wrapper=dict(
            optimizer=dict(
                type='SGD', lr=0.5, momentum=0.9, weight_decay=5e-4)),
        param_scheduler=[
            dict(type='ConstantLR', factor=0.1, by_epoch=True, begin=0,
                 end=1),
            dict(type='CosineAnnealingLR', T_max=3, by_epoch=True, begin=1,
                 end=4)
        ],
        train_cfg=dict(type='EpochBasedTrainLoop', max_epochs=max_epochs),
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=1),
            logger=dict(type='LoggerHook', interval=1),
            random_state=dict(type='mmssl.RandomStateHook')),
        custom_hooks=[
            dict(type='mmssl.SubPTHook', t_early=t_early, rank=rank)
        ],
        randomness=dict(seed=3),
        env_cfg=dict(dist_cfg=dict(backend='gloo')),
        log_level='WARNING',
    )
    if resume_from:
        cfg.update(resume=True, load_from=resume_from)
    return Config(copy.deepcopy(cfg))


def _train(cfg):
    runner = Runner.from_cfg(cfg)
    runner.train()
    hook = next(h for h in runner.hooks if isinstance(h, SubPTHook))
    return runner.model.prompt_learner.ctx.detach().clone(), hook


@pytest.mark.parametrize('t_early,rank', [(2, 1), (3, 2)])
def test_exact_resume_with_subspace(tmp_path, t_early, rank):
    """2 epochs + --resume to 4 == 4 straight; the subspace is in the
    checkpoint (t_early=2) or built after resuming from saved snapshots
    (t_early=3)."""
    straight, hook_a = _train(
        _cfg(str(tmp_path / 'a'), 4, t_early=t_early, rank=rank))
    _train(_cfg(str(tmp_path / 'b'), 2, t_early=t_early, rank=rank))
    ckpt = str(tmp_path / 'b' / 'epoch_2.pth')
    raw = torch.load(ckpt, weights_only=True)
    assert len(raw['subpt']['snapshots']) == 2
    assert (raw['subpt']['basis'] is not None) == (t_early == 2)
    resumed, hook_c = _train(
        _cfg(str(tmp_path / 'c'), 4, resume_from=ckpt, t_early=t_early,
             rank=rank))
    torch.testing.assert_close(resumed, straight, atol=1e-6, rtol=0)
    torch.testing.assert_close(hook_c.basis, hook_a.basis)
    assert hook_a.basis.shape == (rank, straight.numel())
    two = raw['state_dict']['prompt_learner.ctx']
    assert (two - straight).abs().max() > 1e-4
