# Copyright (c) mmssl contributors. All rights reserved.
"""SubPT: the subspace, the gradient projection, and exact resume."""
import copy
from types import SimpleNamespace

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import OptimWrapper
from mmengine.runner import Runner

from mmssl.engine.hooks import SubPTHook
from mmssl.models.prompt import compute_subspace, project_onto_subspace
from mmssl.registry import DATASETS


def test_subspace_is_orthonormal_with_the_rank():
    torch.manual_seed(0)
    snaps = torch.randn(10, 300).cumsum(0)
    u = compute_subspace(snaps, rank=5)
    assert u.shape == (5, 300)
    torch.testing.assert_close(u @ u.t(), torch.eye(5), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match=r'rank must be in \[1, 9\] for 10'):
        compute_subspace(snaps, rank=10)  # centring leaves 9 dimensions
    with pytest.raises(ValueError, match=r'rank must be in \[1, 9\]'):
        compute_subspace(snaps, rank=0)
    assert compute_subspace(snaps, rank=9).shape == (9, 300)  # the largest
    assert compute_subspace(snaps, rank=1).shape == (1, 300)  # the smallest


def test_subspace_refuses_a_rank_the_trajectory_lacks():
    """Snapshots on a line (rank 1 after centring) have no second
    direction: asking for 2 is an error, not an arbitrary noise vector."""
    torch.manual_seed(0)
    w0, v = torch.randn(50).double(), torch.randn(50).double()
    snaps = w0 + torch.arange(6.).double()[:, None] * v
    u = compute_subspace(snaps, rank=1)
    torch.testing.assert_close(
        u.abs()[0], (v / v.norm()).abs().float(), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match='numerical rank below 2'):
        compute_subspace(snaps, rank=2)


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


def _step(ctx, opt, target):
    opt.zero_grad()
    ((ctx - target)**2).sum().backward()
    opt.step()


def _out_of_span(v, u):
    v = v.reshape(-1)
    return (v - u.t() @ (u @ v)).norm() / v.norm().clamp_min(1e-30)


def test_online_switch_after_t_early_epochs(tmp_path):
    """Snapshots are the prompts *after* epochs 1..t_early; U is their
    centred top-r subspace; the gradients of epoch t_early are free, every
    later one is projected."""
    torch.manual_seed(0)
    ctx = torch.nn.Parameter(torch.randn(4, 8))
    opt = torch.optim.SGD([ctx], lr=0.05)
    runner = _fake_runner(ctx, opt, tmp_path)
    hook = SubPTHook(t_early=3, rank=2)
    hook.before_train(runner)
    after = []
    for epoch in range(3):
        for _ in range(2):
            _step(ctx, opt, torch.randn(4, 8))
        assert hook.basis is None  # epoch t_early still free
        if epoch == 2:
            assert _out_of_span(
                ctx.grad,
                compute_subspace(
                    torch.stack(after + [ctx.detach().reshape(-1)]), 2)) > 0.1
        after.append(ctx.detach().reshape(-1).clone())
        hook.after_train_epoch(runner)
    assert len(hook.snapshots) == 3
    torch.testing.assert_close(hook.basis,
                               compute_subspace(torch.stack(after), 2))
    saved = torch.load(tmp_path / 'subpt_subspace.pth', weights_only=True)
    torch.testing.assert_close(saved['basis'], hook.basis)
    assert saved['param_names'] == ['ctx']
    _step(ctx, opt, torch.randn(4, 8))
    assert _out_of_span(ctx.grad, hook.basis) < 1e-5
    hook.after_train_epoch(runner)  # later epochs change nothing
    assert len(hook.snapshots) == 3


@pytest.mark.parametrize('optim', ['sgd', 'adam'])
def test_online_switch_projects_the_momentum(tmp_path, optim):
    """The momentum of the free epochs is projected at the switch, so with
    SGD and weight decay 0 every later update stays in span(U) (without it,
    the old momentum keeps moving the prompt out of the subspace). Adam's
    first moment stays in span(U) too, but its per-coordinate scaling by
    sqrt(exp_avg_sq) moves the updates out of it."""
    torch.manual_seed(0)
    ctx = torch.nn.Parameter(torch.randn(4, 8))
    opt = torch.optim.SGD([ctx], lr=0.05, momentum=0.9) if optim == 'sgd' \
        else torch.optim.Adam([ctx], lr=0.05)
    key = 'momentum_buffer' if optim == 'sgd' else 'exp_avg'
    runner = _fake_runner(ctx, opt, tmp_path)
    hook = SubPTHook(t_early=4, rank=2)
    hook.before_train(runner)
    for _ in range(4):  # early epochs: free training, snapshots
        for _ in range(3):
            _step(ctx, opt, torch.randn(4, 8))  # noisy gradients
        hook.after_train_epoch(runner)
    u = hook.basis
    assert u.shape == (2, 32)
    assert _out_of_span(opt.state[ctx][key], u) < 1e-5
    start = ctx.detach().clone()
    for _ in range(5):
        _step(ctx, opt, torch.randn(4, 8))  # the hook projects ctx.grad
        assert _out_of_span(ctx.grad, u) < 1e-5
    assert _out_of_span(opt.state[ctx][key], u) < 1e-5
    d = ctx.detach() - start
    assert d.norm() > 1e-3
    if optim == 'sgd':
        assert _out_of_span(d, u) < 1e-5
    else:  # Adam divides by sqrt(exp_avg_sq) per coordinate (documented)
        assert _out_of_span(d, u) > 1e-3
    hook.after_train(runner)
    assert not hook._handles


def test_state_projection_reports_the_part_outside(tmp_path):
    """project_optimizer_states projects the momentum in place and returns
    |m - U^T U m| / |m| (0 the second time)."""
    torch.manual_seed(0)
    ctx = torch.nn.Parameter(torch.randn(4, 8))
    opt = torch.optim.SGD([ctx], lr=0.1, momentum=0.9)
    _step(ctx, opt, torch.randn(4, 8))
    hook = SubPTHook(t_early=3, rank=2)
    hook.basis = torch.linalg.qr(torch.randn(32, 2))[0].t().contiguous()
    runner = _fake_runner(ctx, opt, tmp_path)
    buf = opt.state[ctx]['momentum_buffer'].clone()
    leaks = hook.project_optimizer_states(runner)
    assert list(leaks) == ['momentum_buffer']
    assert leaks['momentum_buffer'] == pytest.approx(
        _out_of_span(buf, hook.basis).item(), rel=1e-5)
    assert 0.5 < leaks['momentum_buffer'] < 1  # rank 2 of 32: most is out
    torch.testing.assert_close(opt.state[ctx]['momentum_buffer'],
                               project_onto_subspace(buf, hook.basis))
    again = hook.project_optimizer_states(runner)
    assert again['momentum_buffer'] < 1e-5


def test_hook_argument_errors(tmp_path):
    for kwargs in (dict(t_early=3), dict(rank=1)):
        with pytest.raises(ValueError, match='needs t_early and rank'):
            SubPTHook(**kwargs)
    for rank in (0, 3):
        with pytest.raises(ValueError, match=f'got rank={rank}, t_early=3'):
            SubPTHook(t_early=3, rank=rank)
    SubPTHook(t_early=3, rank=1)
    SubPTHook(t_early=3, rank=2)
    ctx = torch.nn.Parameter(torch.randn(4, 8))
    runner = _fake_runner(ctx, torch.optim.SGD([ctx], lr=0.1), tmp_path)
    hook = SubPTHook(t_early=3, rank=1, param_names=['prompt.ctx'])
    with pytest.raises(
            KeyError,
            match=r"\['prompt.ctx'\] not in the model "
            r"\(trainable: \['ctx'\]\)"):
        hook.before_train(runner)
    ctx.requires_grad_(False)  # nothing trainable and no names given
    with pytest.raises(KeyError, match=r'\(none\) not in the model'):
        SubPTHook(t_early=3, rank=1).before_train(runner)


def test_momentum_leak_without_state_projection(tmp_path):
    """Measured: the unprojected momentum of the free epochs moves the
    prompt out of span(U) after the switch."""
    torch.manual_seed(0)
    ctx = torch.nn.Parameter(torch.randn(4, 8))
    opt = torch.optim.SGD([ctx], lr=0.05, momentum=0.9)
    runner = _fake_runner(ctx, opt, tmp_path)
    hook = SubPTHook(t_early=4, rank=2, project_optimizer_state=False)
    hook.before_train(runner)
    for _ in range(4):
        for _ in range(3):
            _step(ctx, opt, torch.randn(4, 8))
        hook.after_train_epoch(runner)
    buf = opt.state[ctx]['momentum_buffer']
    assert _out_of_span(buf, hook.basis) > 0.1
    start = ctx.detach().clone()
    for _ in range(5):
        _step(ctx, opt, torch.randn(4, 8))
        assert _out_of_span(ctx.grad, hook.basis) < 1e-5
    assert _out_of_span(ctx.detach() - start, hook.basis) > 0.05


@pytest.mark.parametrize('project_wd', [False, True])
def test_weight_decay_projection_choice(tmp_path, project_wd):
    """Weight decay is not projected by default (the reference): with
    wd > 0 the updates leave span(U). project_weight_decay=True projects
    g + wd * w, and the updates stay in it."""
    torch.manual_seed(0)
    u = torch.linalg.qr(torch.randn(32, 3))[0].t()
    torch.save(dict(basis=u, param_names=['ctx']), tmp_path / 'u.pth')
    ctx = torch.nn.Parameter(torch.randn(4, 8))
    opt = torch.optim.SGD([ctx], lr=0.05, momentum=0.9, weight_decay=0.1)
    runner = _fake_runner(ctx, opt, tmp_path)
    hook = SubPTHook(
        subspace_file=str(tmp_path / 'u.pth'), project_weight_decay=project_wd)
    hook.before_train(runner)
    start = ctx.detach().clone()
    target = torch.randn(4, 8)
    for _ in range(5):
        _step(ctx, opt, target)
    assert opt.param_groups[0]['weight_decay'] == 0.1  # given back
    leak = _out_of_span(ctx.detach() - start, u)
    if project_wd:
        assert leak < 1e-5
    else:
        assert leak > 1e-3
    hook.after_train(runner)


@pytest.mark.parametrize('project_wd', [False, True])
def test_one_step_with_weight_decay_by_hand(tmp_path, project_wd):
    """SGD without momentum, one step: w - lr * (P g + wd w) (reference) or
    w - lr * P (g + wd w) (project_weight_decay=True)."""
    torch.manual_seed(0)
    u = torch.linalg.qr(torch.randn(32, 3))[0].t()
    torch.save(dict(basis=u, param_names=['ctx']), tmp_path / 'u.pth')
    ctx = torch.nn.Parameter(torch.randn(4, 8))
    # a frozen parameter in the same group (the frozen CLIP is, with
    # mmengine's optimizer constructor): no gradient, left alone
    frozen = torch.nn.Parameter(torch.randn(3), requires_grad=False)
    opt = torch.optim.SGD([ctx, frozen], lr=0.1, weight_decay=0.3)
    runner = _fake_runner(ctx, opt, tmp_path)
    SubPTHook(
        subspace_file=str(tmp_path / 'u.pth'),
        project_weight_decay=project_wd).before_train(runner)
    frozen_before = frozen.detach().clone()
    target = torch.randn(4, 8)
    w = ctx.detach().clone().reshape(-1)
    g = 2 * (w - target.reshape(-1))
    _step(ctx, opt, target)
    proj = u.t() @ u
    want = w - 0.1 * (
        proj @ (g + 0.3 * w) if project_wd else proj @ g + 0.3 * w)
    torch.testing.assert_close(ctx.detach().reshape(-1), want)
    assert torch.equal(frozen, frozen_before) and frozen.grad is None
    assert opt.param_groups[0]['weight_decay'] == 0.3  # given back


def test_weight_decay_projection_needs_sgd(tmp_path):
    u = torch.linalg.qr(torch.randn(32, 3))[0].t()
    torch.save(dict(basis=u, param_names=['ctx']), tmp_path / 'u.pth')
    ctx = torch.nn.Parameter(torch.randn(4, 8))
    runner = _fake_runner(ctx, torch.optim.AdamW([ctx]), tmp_path)
    hook = SubPTHook(
        subspace_file=str(tmp_path / 'u.pth'), project_weight_decay=True)
    with pytest.raises(TypeError, match='SGD'):
        hook.before_train(runner)


def test_hook_from_file_and_checkpoint_state(tmp_path):
    u = torch.linalg.qr(torch.randn(32, 3))[0].t()
    torch.save(dict(basis=u, param_names=['ctx']), tmp_path / 'u.pth')
    ctx = torch.nn.Parameter(torch.randn(4, 8))
    opt = torch.optim.SGD([ctx], lr=0.1)
    runner = _fake_runner(ctx, opt, tmp_path)
    # another trainable parameter: the names saved with the subspace choose
    runner.model.extra = torch.nn.Parameter(torch.zeros(3))
    hook = SubPTHook(subspace_file=str(tmp_path / 'u.pth'))
    hook.before_train(runner)
    assert hook.param_names == ['ctx']
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
            inputs=self.x[i],
            data_samples=DataSample().set_gt_label(self.y[i]))


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
            dict(type='ConstantLR', factor=0.1, by_epoch=True, begin=0, end=1),
            dict(
                type='CosineAnnealingLR',
                T_max=3,
                by_epoch=True,
                begin=1,
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
        _cfg(
            str(tmp_path / 'c'),
            4,
            resume_from=ckpt,
            t_early=t_early,
            rank=rank))
    torch.testing.assert_close(resumed, straight, atol=1e-6, rtol=0)
    torch.testing.assert_close(hook_c.basis, hook_a.basis)
    assert hook_a.basis.shape == (rank, straight.numel())
    two = raw['state_dict']['prompt_learner.ctx']
    assert (two - straight).abs().max() > 1e-4
