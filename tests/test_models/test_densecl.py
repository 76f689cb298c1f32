# Copyright (c) mmssl contributors. All rights reserved.
"""DenseCL: losses against hand computations, the correspondence, the
queues, the key encoder, build-time errors, mmpretrain parity and the
1-process vs 2-process equivalence."""
import copy
import math
from types import SimpleNamespace
from unittest import mock

import pytest
import torch
import torch.nn.functional as F

from mmssl.engine.hooks import DenseCLWarmupHook
from mmssl.models.losses import (DenseCLLoss, dense_contrastive_loss,
                                 dense_correspondence, queue_info_nce_loss)
from mmssl.models.selfsup.densecl import DenseCL, check_queue_batch, enqueue_
from mmssl.registry import MODELS
from mmssl.testing.densecl import densecl_model_step, tiny_densecl_cfg
from mmssl.testing.dist import assert_matches_single_process


def _views(n=4, size=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(n, 3, size, size, generator=g) for _ in range(2)]


def _unit(*shape, dim, seed=0):
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(*shape, generator=g), dim=dim)


# ---------------------------------------------------------------- losses


def test_correspondence_recovers_a_known_permutation():
    n, c, h, w = 2, 32, 3, 3
    q_feat = torch.randn(n, c, h, w, requires_grad=True)
    perms = [torch.randperm(h * w) for _ in range(n)]
    k_feat = torch.empty(n, c, h * w)
    for i, perm in enumerate(perms):
        # query cell s reappears as key cell perm[s], scaled (cosine)
        k_feat[i][:, perm] = q_feat[i].detach().flatten(1) * (i + 2.)
    match = dense_correspondence(q_feat, k_feat)
    assert match.shape == (n, h * w) and match.dtype == torch.long
    assert not match.requires_grad
    torch.testing.assert_close(match, torch.stack(perms))
    # identical views -> identity map
    same = dense_correspondence(q_feat, q_feat.detach())
    torch.testing.assert_close(same, torch.arange(h * w).expand(n, -1))


def test_dense_loss_equals_hand_computation():
    # 1 image, D = 2, 2 query cells, 2 key cells, K = 3, t = 0.5
    t = 0.5
    r = [[1., 0.], [0.6, 0.8]]  # query cells
    keys = [[0., 1.], [0.8, 0.6]]  # key cells
    match = [1, 0]  # cell 0 <-> key 1, cell 1 <-> key 0
    queue = [[1., 0.], [0., -1.], [-0.6, 0.8]]  # K x D

    def dot(a, b):
        return sum(x * y for x, y in zip(a, b))

    expected = 0.
    for s in range(2):
        pos = math.exp(dot(r[s], keys[match[s]]) / t)
        neg = sum(math.exp(dot(r[s], qj) / t) for qj in queue)
        expected += -math.log(pos / (pos + neg)) / 2
    q_grid = torch.tensor(r).t().unsqueeze(0)  # (1, D, S)
    k_grid = torch.tensor(keys).t().unsqueeze(0)
    loss = dense_contrastive_loss(
        q_grid,
        k_grid,
        torch.tensor([match]),
        torch.tensor(queue).t(),
        temperature=t)
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    # the positives are the matched cells, not the cells at the same place
    same_place = dense_contrastive_loss(q_grid, k_grid, torch.tensor([[0, 1]]),
                                        torch.tensor(queue).t(), t)
    assert abs(same_place.item() - expected) > 1e-2


def test_dense_loss_uses_the_matched_positives():
    n, c, d, s, k = 2, 32, 8, 9, 5
    q_b = torch.randn(n, c, s)
    perms = torch.stack([torch.randperm(s) for _ in range(n)])
    k_b = torch.empty_like(q_b)
    q_grid = _unit(n, d, s, dim=1, seed=1)
    k_grid = torch.empty_like(q_grid)
    for i in range(n):
        k_b[i][:, perms[i]] = q_b[i]
        k_grid[i][:, perms[i]] = q_grid[i]  # positive = the query itself
    queue = _unit(d, k, dim=0, seed=2)
    match = dense_correspondence(q_b, k_b)
    per_cell = dense_contrastive_loss(
        q_grid, k_grid, match, queue, 0.2, reduction='none')
    assert per_cell.shape == (n * s, )
    rows = q_grid.transpose(1, 2).reshape(n * s, d)
    expected = -F.log_softmax(
        torch.cat([torch.ones(n * s, 1), rows @ queue], 1) / 0.2, 1)[:, 0]
    torch.testing.assert_close(per_cell, expected, atol=1e-5, rtol=0)


def test_global_info_nce_equals_closed_form():
    q, k = _unit(6, 8, dim=1, seed=0), _unit(6, 8, dim=1, seed=1)
    queue = _unit(8, 10, dim=0, seed=2)
    t = 0.2
    pos = torch.exp((q * k).sum(1) / t)
    neg = torch.exp(q @ queue / t).sum(1)
    expected = -torch.log(pos / (pos + neg)).mean()
    torch.testing.assert_close(
        queue_info_nce_loss(q, k, queue, t), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize('loss_lambda', [0., 0.3, 1.])
def test_orthogonal_queue_closed_form(loss_lambda):
    # spec: positives = queries, queue orthogonal to all of them ->
    # every term is log(1 + K exp(-1 / t)), for any lambda
    n, s, k, t = 2, 49, 8, 0.2
    q = _unit(n, 16, dim=1)
    q[:, 8:] = 0
    q = F.normalize(q, dim=1)
    q_grid = _unit(n, 16, s, dim=1, seed=3)
    q_grid[:, 8:] = 0
    q_grid = F.normalize(q_grid, dim=1)
    queue = torch.zeros(16, k)
    queue[8:] = torch.eye(k)
    match = torch.arange(s).expand(n, -1)
    terms = DenseCLLoss(temperature=t)(q, q.clone(), queue, q_grid,
                                       q_grid.clone(), match, queue)
    closed = math.log(1 + k * math.exp(-1 / t))
    total = (1 - loss_lambda) * terms['loss_single'] + \
        loss_lambda * terms['loss_dense']
    assert total.item() == pytest.approx(closed, abs=1e-5)
    dense = dense_contrastive_loss(q_grid, q_grid, match, queue, t, 'none')
    assert dense.shape == (n * s, )  # l_pos_dense (98, 1), l_neg (98, 8)


def test_loss_argument_errors():
    with pytest.raises(ValueError, match='temperature'):
        DenseCLLoss(temperature=0)
    with pytest.raises(ValueError, match='queue'):
        queue_info_nce_loss(
            torch.ones(2, 4), torch.ones(2, 4), torch.ones(3, 8))
    with pytest.raises(ValueError, match='match'):
        dense_contrastive_loss(
            torch.ones(1, 4, 3), torch.ones(1, 4, 3),
            torch.zeros(1, 2).long(), torch.ones(4, 8))


# ------------------------------------------------------------ the queue


def test_enqueue_writes_rows_and_wraps():
    queue = torch.zeros(3, 8)
    ptr = torch.zeros(1, dtype=torch.long)
    for step in range(5):
        keys = torch.full((2, 3), float(step + 1))
        enqueue_(queue, ptr, keys)
        cols = [(2 * step) % 8, (2 * step + 1) % 8]
        assert (queue[:, cols] == step + 1).all()
        assert int(ptr) == (2 * step + 2) % 8
    # after 5 steps: columns 0, 1 hold step 5 (wrapped), 2..7 steps 2..4
    assert queue[0].tolist() == [5, 5, 2, 2, 3, 3, 4, 4]
    with pytest.raises(ValueError, match='model.queue_len'):
        enqueue_(queue, ptr, torch.ones(3, 3))


def test_enqueue_casts_keys_and_refuses_bad_shapes():
    """Half-precision keys (an autocast forward) go into a float queue;
    keys that are not (B, D) and an empty batch are refused naming what is
    wrong, before the queue changes."""
    queue = torch.zeros(3, 8)
    ptr = torch.tensor([6])
    enqueue_(queue, ptr, torch.full((4, 3), 0.5, dtype=torch.half))
    assert queue.dtype == torch.float32 and int(ptr) == 2
    assert queue[0].tolist() == [.5, .5, 0, 0, 0, 0, .5, .5]
    with pytest.raises(ValueError, match=r'keys must be \(B, 3\)'):
        enqueue_(queue, ptr, torch.ones(2, 3, 1))
    with pytest.raises(ValueError, match='global batch size 0'):
        enqueue_(queue, ptr, torch.ones(0, 3))
    assert int(ptr) == 2 and queue[0].tolist() == [.5, .5, 0, 0, 0, 0, .5, .5]


def test_model_step_enqueues_its_normalised_keys():
    torch.manual_seed(0)
    model = MODELS.build(tiny_densecl_cfg(queue_len=8))
    views = _views(n=2)
    before = model.queue.clone()
    model.loss(views, [])
    assert int(model.queue_ptr) == 2 and int(model.queue2_ptr) == 2
    backbone_k, neck_k = model.encoder_k.module
    with torch.no_grad():
        k, _, k2 = neck_k(backbone_k(views[1]))
    torch.testing.assert_close(
        model.queue[:, :2], F.normalize(k, dim=1).t(), atol=1e-5, rtol=0)
    torch.testing.assert_close(
        model.queue2[:, :2], F.normalize(k2, dim=1).t(), atol=1e-5, rtol=0)
    torch.testing.assert_close(model.queue[:, 2:], before[:, 2:])
    for _ in range(3):
        model.loss(views, [])
    assert int(model.queue_ptr) == 0  # wrapped at K = 8
    # buffers: in the state dict, hence in checkpoints
    state = model.state_dict()
    for key in ('queue', 'queue2', 'queue_ptr', 'queue2_ptr',
                'encoder_k.steps'):
        assert key in state


def test_batch_not_dividing_queue_len_fails_before_any_update():
    model = MODELS.build(tiny_densecl_cfg(queue_len=16))
    queue = model.queue.clone()
    with pytest.raises(ValueError, match=r'model.queue_len \(K=16\).*3'):
        model.loss(_views(n=3), [])
    torch.testing.assert_close(model.queue, queue)
    assert int(model.encoder_k.steps) == 0


# ----------------------------------------------------- the key encoder


def test_momentum_update_and_no_key_gradient():
    torch.manual_seed(0)
    model = MODELS.build(tiny_densecl_cfg())
    views = _views(n=2)
    model.momentum_update()  # the first update copies the query encoder
    key = dict(model.encoder_k.module.named_parameters())
    query = dict(
        torch.nn.Sequential(model.backbone, model.neck).named_parameters())
    for name, p in key.items():
        torch.testing.assert_close(p, query[name])
    with torch.no_grad():
        for p in query.values():
            p.add_(1.)
    old = {n: p.clone() for n, p in key.items()}
    losses = model.loss(views, [])
    sum(losses.values()).backward()
    for name, p in key.items():
        # theta_k <- 0.999 theta_k + 0.001 theta_q: 0.1 % towards the query
        torch.testing.assert_close(
            p, 0.999 * old[name] + 0.001 * query[name], atol=1e-6, rtol=0)
        assert not p.requires_grad and p.grad is None
    assert all(p.grad is not None for p in query.values())


def test_compiled_loss_equals_eager_and_keeps_its_graph():
    """A compiled DenseCL forward (the momentum update eager, between two
    graphs) gives the eager losses, queues, pointers and key encoder over three
    steps, and no step after the first compiles again (the queue pointer
    stays a tensor; a Python int read from it made dynamo guard on it)."""
    torch.manual_seed(0)
    eager = MODELS.build(tiny_densecl_cfg(queue_len=8))
    compiled = copy.deepcopy(eager)
    step = torch.compile(compiled.loss, backend='aot_eager')
    torch._dynamo.reset()
    for i in range(3):
        views = _views(n=2)
        with torch._dynamo.config.patch(error_on_recompile=i > 0):
            got = step(views, [])
        want = eager.loss(views, [])
        for key, value in want.items():
            torch.testing.assert_close(got[key], value, atol=1e-5, rtol=1e-5)
    for name, buf in eager.named_buffers():
        torch.testing.assert_close(
            dict(compiled.named_buffers())[name], buf, atol=1e-5, rtol=0)
    assert int(compiled.queue_ptr) == 6
    for (name, p), q in zip(eager.encoder_k.module.named_parameters(),
                            compiled.encoder_k.module.parameters()):
        torch.testing.assert_close(q, p, atol=1e-6, rtol=0)
    torch._dynamo.reset()


# ------------------------------------------------- lambda and the hook


def test_lambda_weighting_and_warmup_hook():
    torch.manual_seed(0)
    model = MODELS.build(tiny_densecl_cfg(loss_lambda=0.3))
    views = _views(n=2)
    only_global = copy.deepcopy(model)
    only_global.loss_lambda = 0.
    torch.manual_seed(1)
    raw = only_global.loss(views, [])
    torch.manual_seed(1)
    weighted = model.loss(views, [])
    assert raw['loss_dense'].item() == 0
    torch.testing.assert_close(weighted['loss_single'],
                               0.7 * raw['loss_single'])

    hook = DenseCLWarmupHook(start_iters=5)
    loader = SimpleNamespace(batch_size=4, drop_last=False, sampler=[0] * 16)
    runner = SimpleNamespace(
        model=model, iter=0, train_dataloader=loader, world_size=2)
    hook.before_train(runner)
    for it, lam in ((0, 0.), (4, 0.), (5, 0.3), (9, 0.3)):
        runner.iter = it
        hook.before_train_iter(runner, 0)
        assert model.loss_lambda == lam
    # K = 16 and 3 x 2 images per step
    runner.train_dataloader = SimpleNamespace(
        batch_size=3, drop_last=True, sampler=[0] * 9)
    with pytest.raises(ValueError, match='model.queue_len'):
        hook.before_train(runner)
    runner.train_dataloader = SimpleNamespace(
        batch_size=4, drop_last=False, sampler=[0] * 10)
    with pytest.raises(ValueError, match='drop_last=True'):
        hook.before_train(runner)
    with pytest.raises(ValueError, match='start_iters'):
        DenseCLWarmupHook(start_iters=-1)


# ------------------------------------------------------- build errors


@pytest.mark.parametrize('change, key', [
    (dict(queue_len=0), 'model.queue_len'),
    (dict(feat_dim=32), 'model.neck.out_channels'),
    (dict(loss_lambda=1.5), 'model.loss_lambda'),
    (dict(loss_lambda=-0.1), 'model.loss_lambda'),
    (dict(momentum=0.999), 'model.momentum'),
    (dict(neck=dict(in_channels=32, hid_channels=32)), 'model.neck.in_ch'),
    (dict(backbone=dict(out_indices=(2, 3))), 'out_indices'),
    (dict(
        head=dict(
            type='mmpretrain.ContrastiveHead',
            loss=dict(type='mmpretrain.CrossEntropyLoss'))), 'model.head'),
])
def test_bad_config_fails_at_build_time(change, key):
    cfg = tiny_densecl_cfg()
    for name, value in change.items():
        if isinstance(value, dict) and name != 'head':
            cfg[name].update(value)
        else:
            cfg[name] = value
    with pytest.raises(ValueError, match=key):
        MODELS.build(cfg)


# ---------------------------------------------------- mmpretrain parity


def test_equals_mmpretrain_densecl_in_one_process():
    torch.manual_seed(0)
    model = MODELS.build(tiny_densecl_cfg())
    assert isinstance(model, DenseCL)
    ref = MODELS.build(tiny_densecl_cfg(scope='mmpretrain'))
    ref.load_state_dict(model.state_dict())  # same checkpoint layout
    views = _views()
    for _ in range(2):
        torch.manual_seed(1)  # the same shuffle
        ours = model.loss(views, [])
        torch.manual_seed(1)
        theirs = ref.loss(views, [])
        for k in ('loss_single', 'loss_dense'):
            torch.testing.assert_close(ours[k], theirs[k], atol=1e-5, rtol=0)
    for name, value in ref.state_dict().items():
        torch.testing.assert_close(
            model.state_dict()[name], value, atol=1e-5, rtol=0, msg=name)
    assert model.extract_feat(views[0])[-1].shape == (4, 64, 2, 2)


def test_pooled_dense_grid_matches_on_the_same_grid():
    # DenseCLNeck(num_grid=g) pools the dense projection to g x g; mmssl
    # pools the backbone map the same way before the correspondence,
    # mmpretrain matches on the unpooled map and indexes out of range
    cfg = tiny_densecl_cfg()
    cfg['neck']['num_grid'] = 1
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    losses = model.loss(_views(n=2), [])
    assert torch.isfinite(sum(losses.values()))
    ref_cfg = tiny_densecl_cfg(scope='mmpretrain')
    ref_cfg['neck']['num_grid'] = 1
    ref = MODELS.build(ref_cfg)
    with pytest.raises(RuntimeError):
        ref.loss(_views(n=2), [])


# ------------------------------------------- 1 process vs 2 processes


def test_two_processes_equal_one_process():
    # GN tiny DenseCL, global batch 8, K = 16: two SGD steps with shuffle-BN
    # across the processes, gathered enqueue (wrapping around) and DDP's
    # gradient averaging give the single-process losses, gradients, key
    # encoder and queues
    assert_matches_single_process(
        densecl_model_step, _views(n=8), world_size=2, atol=1e-5)


# ------------------------------------------------------ more edges


def test_defaults_are_the_papers():
    """K = 65536 entries of D = 128, m = 0.999 (mmengine momentum 0.001)
    and lambda = 0.5."""
    cfg = tiny_densecl_cfg(feat_dim=128)
    for key in ('queue_len', 'feat_dim', 'momentum', 'loss_lambda'):
        cfg.pop(key)
    model = MODELS.build(cfg)
    assert model.queue.shape == model.queue2.shape == (128, 65536)
    assert model.encoder_k.momentum == 0.001
    assert model.loss_lambda == 0.5


def test_momentum_range():
    """mmengine's momentum 1 - m lies in (0, 0.5]."""
    MODELS.build(dict(tiny_densecl_cfg(), momentum=0.5))
    with pytest.raises(ValueError, match='model.momentum'):
        MODELS.build(dict(tiny_densecl_cfg(), momentum=0.))


def test_one_image_per_process_and_the_global_batch():
    """A batch of 1 divides every queue; the check multiplies the batch by
    the processes and refuses a global batch of 0."""
    check_queue_batch(16, 1)
    with pytest.raises(ValueError, match='global batch size 0'):
        check_queue_batch(16, 0)
    model = MODELS.build(tiny_densecl_cfg(queue_len=12))
    losses = model.loss(_views(n=1), [])
    assert all(torch.isfinite(v) for v in losses.values())
    assert int(model.queue_ptr) == 1
    world = 'mmssl.models.selfsup.densecl.get_world_size'
    with mock.patch(world, return_value=2):
        with pytest.raises(ValueError, match=r'size 8 \(.* 4 x 2 processes'):
            model.loss(_views(n=4), [])


@pytest.mark.parametrize(
    'inputs', [_views(n=2)[0],
               _views(n=2)[:1],
               _views(n=2) + _views(n=2)[:1]])
def test_two_views_are_required(inputs):
    model = MODELS.build(tiny_densecl_cfg())
    with pytest.raises(ValueError, match='2 views'):
        model.loss(inputs, [])


def test_width_check_only_for_two_projection_necks():
    """The neck / queue widths are compared only when the neck has both
    DenseCLNeck projections (``mlp`` and ``mlp2``)."""
    model = MODELS.build(tiny_densecl_cfg())
    with pytest.raises(ValueError, match='model.feat_dim'):
        model._check_dims(32)
    model.neck.mlp2 = torch.nn.Identity()
    model._check_dims(32)
    model = MODELS.build(tiny_densecl_cfg())
    model.neck.mlp = torch.nn.Identity()
    model._check_dims(32)


def test_grid_without_a_pool_setting_is_the_flat_map():
    model = MODELS.build(tiny_densecl_cfg())
    feat = torch.randn(2, 64, 4, 4)
    del model.neck.with_pool
    assert torch.equal(model._grid(feat), feat.flatten(2))
