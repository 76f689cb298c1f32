# Copyright (c) mmssl contributors. All rights reserved.
"""data2vec 2.0: encoder, decoder, targets, loss, teacher, algorithm."""
import hashlib
import math
import os.path as osp
from unittest import mock

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.optim import build_optim_wrapper
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from mmssl.models.heads.d2v2_head import d2v2_targets, feature_std
from mmssl.models.losses.d2v2_loss import d2v2_regression_loss
from mmssl.models.selfsup.data2vec2 import MOVED_MASK_KEYS
from mmssl.models.utils import LinearAnnealEMA, inverse_block_mask
from mmssl.testing import tiny_data2vec2_cfg


def tiny_cfg():
    """The tiny config without mask settings (masks come from the batch)."""
    cfg = tiny_data2vec2_cfg()
    for key in MOVED_MASK_KEYS:
        cfg.pop(key, None)
    return cfg


def samples(batch_size,
            num_masks=3,
            mask_ratio=0.8,
            grid=(4, 4),
            generator=None):
    """Data samples with (M, h, w) inverse block masks, as the pipeline's
    mmssl.InverseBlockMaskGenerator and PackInputs give them."""
    masks = inverse_block_mask(
        grid[0],
        grid[1],
        mask_ratio,
        batch_size * num_masks,
        generator=generator)
    masks = masks.view(batch_size, num_masks, *grid)
    return [DataSample().set_mask(masks[i]) for i in range(batch_size)]


def build(**overrides):
    cfg = tiny_cfg()
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key].update(value)
        else:
            cfg[key] = value
    model = MODELS.build(cfg)
    model.init_weights()
    return model


def total(losses):
    return sum(v for k, v in losses.items() if 'loss' in k)


# ---------------------------------------------------------------- encoder
def test_forward_backward_shapes():
    """Spec 7.6: img 32, patch 8, D 16, 4 blocks, K 2, M 3."""
    torch.manual_seed(0)
    model = build()
    x = torch.randn(2, 3, 32, 32)
    masks = inverse_block_mask(4, 4, 0.8, 2 * 3).view(6, 16)
    latent, mask, ids_restore = model.backbone(x, mask=masks, num_clones=3)
    assert latent.shape == (6, 1 + 3, 16)  # int(16 * 0.2) = 3 visible
    assert torch.equal(mask, masks) and ids_restore.shape == (6, 16)
    pred = model.neck(latent[:, 1:], ids_restore, (4, 4))
    assert pred.shape == (6, 16, 16)  # decoder preserves (B*M, N, D)
    losses = model.loss(x, samples(2))
    assert set(losses) >= {'loss_reg', 'loss_cls', 'target_std', 'pred_std'}
    total(losses).backward()
    assert model.backbone.layers[0].attn.qkv.weight.grad is not None
    assert model.neck.proj.weight.grad is not None
    assert model.backbone.cls_token.grad is not None


@pytest.mark.parametrize('kernel_size', [3, 4])
def test_channels_last_decoder_is_the_same_function(kernel_size):
    """``channels_last=True`` views the tokens as NHWC maps without a copy,
    every conv sees a channels-last input, and outputs and gradients equal
    the NCHW path's (float rounding)."""
    from mmssl.models.necks import D2V2ConvDecoder2d
    torch.manual_seed(0)
    kw = dict(
        in_channels=16,
        embed_dims=32,
        num_layers=3,
        kernel_size=kernel_size,
        groups=4)
    ref = D2V2ConvDecoder2d(**kw)
    fast = D2V2ConvDecoder2d(channels_last=True, **kw)
    fast.load_state_dict(ref.state_dict())
    x = torch.randn(3, 5, 16)
    ids_restore = torch.stack([torch.randperm(12) for _ in range(3)])
    layouts = []
    for blk in fast.blocks:
        blk.conv.register_forward_hook(lambda m, args, out: layouts.append(
            args[0].is_contiguous(memory_format=torch.channels_last)))
    outs, grads = [], []
    for model in (ref, fast):
        xi = x.clone().requires_grad_(True)
        torch.manual_seed(1)  # the same noise tokens
        out = model(xi, ids_restore, (3, 4))
        out.square().sum().backward()
        outs.append(out)
        grads.append((xi.grad, model.blocks[0].conv.weight.grad))
    assert layouts == [True] * 3
    torch.testing.assert_close(outs[1], outs[0], atol=1e-5, rtol=1e-5)
    for a, b in zip(grads[1], grads[0]):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_visible_tokens_only_see_visible_patches():
    """Changing a removed patch's pixels leaves the student output alone."""
    model = build().eval()
    x = torch.randn(1, 3, 32, 32)
    mask = torch.zeros(1, 16, dtype=torch.bool)
    mask[0, 5:] = True  # patches 0-4 visible
    out1 = model.backbone(x, mask=mask)[0]
    x2 = x.clone()
    x2[..., 24:, 24:] += 10  # patch 15, removed
    out2 = model.backbone(x2, mask=mask)[0]
    torch.testing.assert_close(out1, out2)


def test_post_ln_block_matches_reference_formula():
    """x = LN1(x + attn(x)); t = ffn(x); out = LN2(x + t) (fairseq AltBlock
    with layer_norm_first=False)."""
    torch.manual_seed(0)
    block = build().backbone.layers[0].eval()
    x = torch.randn(2, 5, 16)
    out, t = block(x)
    attn = block.attn
    B, N, C = x.shape
    qkv = attn.qkv(x).reshape(B, N, 3, 2, C // 2).permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]
    a = ((q @ k.transpose(-2, -1)) / math.sqrt(C // 2)).softmax(-1) @ v
    a = attn.proj(a.transpose(1, 2).reshape(B, N, C))
    x1 = F.layer_norm(x + a, (C, ), block.ln1.weight, block.ln1.bias, 1e-6)
    fc1, fc2 = block.ffn.layers[0][0], block.ffn.layers[1]
    t_ref = fc2(F.gelu(fc1(x1)))
    out_ref = F.layer_norm(x1 + t_ref, (C, ), block.ln2.weight, block.ln2.bias,
                           1e-6)
    torch.testing.assert_close(t, t_ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out, out_ref, atol=1e-5, rtol=1e-5)


def test_plain_path_and_out_types():
    model = build().eval()
    x = torch.randn(2, 3, 32, 32)
    feats = model.extract_feat(x)
    assert isinstance(feats, tuple) and feats[0].shape == (2, 17, 16)
    assert torch.equal(model.backbone(x, mask=None)[0], feats[0])
    cfg = tiny_data2vec2_cfg()['backbone']
    for out_type, shape in [('cls_token', (2, 16)), ('featmap', (2, 16, 4, 4)),
                            ('avg_featmap', (2, 16))]:
        bb = MODELS.build(dict(cfg, out_type=out_type, with_fc_norm=True))
        assert bb(x)[0].shape == shape
    # other image sizes get their own sin-cos grid
    assert model.backbone(torch.randn(1, 3, 48, 32))[0].shape == (1, 25, 16)


def test_reference_init():
    bb = build().backbone
    w = bb.layers[1].ffn.layers[1].weight
    assert abs(w.std().item() - 0.02) < 0.006
    assert torch.all(bb.layers[1].ffn.layers[1].bias == 0)
    assert abs(bb.cls_token.std().item() - 1) < 0.5
    assert not any(n.endswith('pos_embed') for n, _ in bb.named_parameters())


def test_layer_decay_constructor_finds_layers():
    """mmpretrain's LearningRateDecayOptimWrapperConstructor on a fine-tune
    ImageClassifier with mmssl.D2V2ViT."""
    cfg = tiny_data2vec2_cfg()['backbone']
    clf = MODELS.build(
        dict(
            type='ImageClassifier',
            backbone=dict(cfg, out_type='avg_featmap', with_fc_norm=True),
            head=dict(type='LinearClsHead', num_classes=3, in_channels=16)))
    wrapper = build_optim_wrapper(
        clf,
        dict(
            optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05),
            constructor='LearningRateDecayOptimWrapperConstructor',
            paramwise_cfg=dict(
                layer_decay_rate=0.5,
                custom_keys={
                    '.ln': dict(decay_mult=0.0),
                    '.bias': dict(decay_mult=0.0),
                    '.cls_token': dict(decay_mult=0.0)
                })))
    groups = {g['param_name']: g for g in wrapper.optimizer.param_groups}
    assert groups['backbone.patch_embed.projection.weight']['layer_id'] == 0
    assert groups['backbone.cls_token']['layer_id'] == 0
    assert groups['backbone.ln_pre.weight']['layer_id'] == 0
    assert groups['backbone.layers.2.attn.qkv.weight']['layer_id'] == 3
    assert groups['backbone.ln_fc.weight']['layer_id'] == 5
    assert groups['head.fc.weight']['lr_scale'] == 1.0
    assert groups['backbone.layers.0.ln1.weight']['weight_decay'] == 0
    assert groups['backbone.layers.3.attn.qkv.weight']['lr_scale'] == 0.5


def test_pretrained_backbone_loads_from_pretraining_checkpoint(tmp_path):
    model = build()
    ckpt = str(tmp_path / 'pre.pth')
    torch.save(dict(state_dict=model.state_dict()), ckpt)
    cfg = tiny_data2vec2_cfg()['backbone']
    bb = MODELS.build(
        dict(
            cfg,
            out_type='avg_featmap',
            init_cfg=dict(
                type='Pretrained', checkpoint=ckpt, prefix='backbone.')))
    bb.init_weights()
    for k, v in model.backbone.state_dict().items():
        assert torch.equal(bb.state_dict()[k], v), k


# ---------------------------------------------------------------- targets
def _loop_targets(layers, instance_norm=True, layer_norm=True):
    """Explicit numpy loops: IN over tokens per (sample, channel), mean over
    layers, LN over channels per (sample, token); eps 1e-5, no affine."""
    layers = [np.asarray(t, dtype=np.float64) for t in layers]
    K = len(layers)
    B, N, C = layers[0].shape
    y = np.zeros((B, N, C))
    for a in layers:
        normed = np.zeros_like(a)
        for b in range(B):
            for c in range(C):
                col = a[b, :, c]
                if instance_norm:
                    mu = col.mean()
                    var = ((col - mu)**2).mean()
                    normed[b, :, c] = (col - mu) / np.sqrt(var + 1e-5)
                else:
                    normed[b, :, c] = col
        y += normed / K
    if layer_norm:
        for b in range(B):
            for n in range(N):
                row = y[b, n]
                mu = row.mean()
                var = ((row - mu)**2).mean()
                y[b, n] = (row - mu) / np.sqrt(var + 1e-5)
    return y


def test_targets_equal_hand_computation():
    torch.manual_seed(0)
    layers = [torch.randn(2, 196, 8) * (i + 1) + i for i in range(4)]
    y = d2v2_targets(layers, top_k=3)
    ref = _loop_targets([t.numpy() for t in layers[-3:]])
    np.testing.assert_allclose(y.numpy(), ref, atol=1e-5)
    # spec 7.3: final LN -> per-token channel mean 0, biased variance 1
    assert y.mean(-1).abs().max() < 1e-5
    assert (y.var(-1, unbiased=False) - 1).abs().max() < 1e-3
    # one layer, no final LN: per-channel mean over tokens 0 (IN)
    y1 = d2v2_targets(layers[:1], top_k=1, layer_norm=False)
    assert y1.mean(1).abs().max() < 1e-5
    np.testing.assert_allclose(
        y1.numpy(),
        _loop_targets([layers[0].numpy()], layer_norm=False),
        atol=1e-5)


def test_targets_refuse_top_k_outside_the_layers():
    layers = [torch.randn(1, 4, 2) for _ in range(3)]
    for k in (0, 4):  # layer_outputs[-0:] would silently take all
        with pytest.raises(ValueError, match=f'top_k={k} with 3 layers'):
            d2v2_targets(layers, top_k=k)
    assert torch.equal(d2v2_targets(layers, top_k=3), d2v2_targets(layers))


def test_feature_std_is_fairseq_compute_var_by_hand():
    """mean over channels of sqrt(unbiased var over rows + 1e-6); 0 for
    fewer than two rows; the weighted form selects rows; no gradient."""
    x = torch.tensor([[0., 1.], [2., 1.], [7., 5.]], requires_grad=True)
    std = feature_std(x[:2])  # var (2, 0)
    assert std.item() == pytest.approx(
        (math.sqrt(2 + 1e-6) + math.sqrt(1e-6)) / 2, rel=1e-6)
    assert not std.requires_grad
    # constant rows: the 1e-6 alone, sqrt(1e-6)
    assert feature_std(torch.ones(2, 3)).item() == pytest.approx(1e-3)
    assert feature_std(x[:1]).item() == 0
    w = torch.tensor([1., 1., 0.], requires_grad=True)
    weighted = feature_std(x, w)
    assert weighted.item() == pytest.approx(std.item(), rel=1e-6)
    assert not weighted.requires_grad
    assert feature_std(x, torch.tensor([0, 0, 1])).item() == 0
    assert feature_std(x, torch.tensor([False, False, False])).item() == 0
    assert feature_std(x.view(3, 1, 2), w.view(3, 1)).item() == \
        pytest.approx(std.item(), rel=1e-6)  # rows over leading dims


def test_head_edge_cases():
    """No removed token: a zero loss, not 0 / 0; a CLS weight of 0: no CLS
    term at all; predictions and masks that are not clones of the targets'
    images are refused."""
    head = build().head
    targets, pred = torch.randn(2, 4, 8), torch.randn(4, 4, 8)
    none = head.loss(pred, targets, torch.zeros(4, 4, dtype=torch.bool),
                     torch.randn(4, 8))
    assert none['loss_reg'].item() == 0 and torch.isfinite(none['loss_cls'])
    head.cls_loss_weight = 0.
    assert 'loss_cls' not in head.loss(pred, targets, torch.ones(4, 4),
                                       torch.randn(4, 8))
    for p, m in ((torch.randn(5, 4,
                              8), torch.ones(5, 4)), (pred, torch.ones(2, 4))):
        with pytest.raises(ValueError, match='do not split into clones'):
            head.loss(p, targets, m)


def test_head_defaults_are_the_image_recipe():
    from mmssl.models.heads import D2V2Head
    head = D2V2Head()
    assert (head.top_k, head.instance_norm, head.layer_norm,
            head.cls_loss_weight) == (10, True, True, 0.01)


# ---------------------------------------------------------------- loss
def test_regression_loss_equals_hand_computation():
    torch.manual_seed(0)
    pred, target = torch.randn(5, 8), torch.randn(5, 8)
    ref = sum((pred[t, d] - target[t, d])**2 for t in range(5)
              for d in range(8)) / math.sqrt(8) / 5
    assert d2v2_regression_loss(pred, target).item() == pytest.approx(
        ref.item(), rel=1e-5)
    assert d2v2_regression_loss(pred, target, reduction='sum').item() == \
        pytest.approx(ref.item() * 5, rel=1e-5)
    assert d2v2_regression_loss(pred, target, scale=1.).item() == \
        pytest.approx(ref.item() * math.sqrt(8), rel=1e-5)
    sl1 = d2v2_regression_loss(pred, target, beta=0.5)
    assert sl1.item() == pytest.approx(
        F.smooth_l1_loss(pred, target, beta=0.5, reduction='sum').item() /
        math.sqrt(8) / 5,
        rel=1e-5)
    # leading axes are rows; no rows (nothing masked) is a zero loss
    rows = d2v2_regression_loss(
        pred.view(1, 5, 8), target.view(1, 5, 8), reduction='none')
    assert rows.shape == (5, ) and rows.sum().item() == pytest.approx(
        ref.item() * 5, rel=1e-5)
    empty = d2v2_regression_loss(torch.zeros(0, 8), torch.zeros(0, 8))
    assert empty.item() == 0.


def test_head_loss_equals_hand_computation():
    """L_reg averages over masked tokens; L_cls sums over the B*M clones."""
    torch.manual_seed(0)
    head = build().head
    B, M, N, C = 2, 3, 4, 8
    targets = torch.randn(B, N, C)
    pred = torch.randn(B * M, N, C)
    cls_pred = torch.randn(B * M, C)
    mask = torch.zeros(B * M, N, dtype=torch.bool)
    for r in range(B * M):
        mask[r, torch.randperm(N)[:3]] = True
    losses = head.loss(pred, targets, mask, cls_pred)
    s = 1 / math.sqrt(C)
    reg, count, cls = 0., 0, 0.
    for b in range(B):
        for m in range(M):
            r = b * M + m
            for n in range(N):
                if mask[r, n]:
                    reg += ((pred[r, n] - targets[b, n])**2).sum() * s
                    count += 1
            cls += ((cls_pred[r] - targets[b].mean(0))**2).sum() * s
    assert losses['loss_reg'].item() == pytest.approx(
        reg.item() / count, rel=1e-5)
    assert losses['loss_cls'].item() == pytest.approx(
        0.01 * cls.item(), rel=1e-5)


def test_loss_only_on_masked_positions():
    """Spec 7.4."""
    head = build().head
    torch.manual_seed(1)
    targets = torch.randn(2, 16, 16)
    mask = inverse_block_mask(4, 4, 0.8, 2).view(2, 16)
    pred = targets.clone()
    assert head.loss(pred, targets, mask)['loss_reg'].item() == \
        pytest.approx(0, abs=1e-7)
    pred[~mask] += 3.
    assert head.loss(pred, targets, mask)['loss_reg'].item() == \
        pytest.approx(0, abs=1e-7)
    err = torch.randn(2, 16, 16)
    l1 = head.loss(targets + err, targets, mask)['loss_reg']
    l2 = head.loss(targets + 2 * err, targets, mask)['loss_reg']
    assert l2.item() == pytest.approx(4 * l1.item(), rel=1e-5)


def test_masked_loss_by_weight_equals_boolean_indexing():
    """The head selects masked tokens by weight (static sizes for
    torch.compile): the loss, its gradient and the collapse monitors equal
    those of the boolean-indexed rows."""
    head = build().head
    torch.manual_seed(2)
    B, M, N, C = 2, 2, 16, 8
    targets = torch.randn(B, N, C)
    mask = inverse_block_mask(4, 4, 0.6, B * M).view(B * M, N)
    pred = torch.randn(B * M, N, C, requires_grad=True)
    losses = head.loss(pred, targets, mask)
    losses['loss_reg'].backward()
    y = targets.repeat_interleave(M, dim=0)
    ref_pred = pred.detach().clone().requires_grad_()
    ref = d2v2_regression_loss(ref_pred[mask], y[mask])
    ref.backward()
    assert losses['loss_reg'].item() == pytest.approx(ref.item(), rel=1e-6)
    assert torch.allclose(pred.grad, ref_pred.grad, atol=1e-7)
    assert not pred.grad[~mask].any()
    for key, x in (('target_std', y), ('pred_std', pred.detach())):
        assert losses[key].item() == pytest.approx(
            feature_std(x[mask]).item(), rel=1e-5)
    one = torch.zeros(B * M, N, dtype=torch.bool)
    one[0, 0] = True  # fewer than two rows: 0, as before
    assert feature_std(y, one).item() == 0 == feature_std(y[one]).item()


def test_compiled_loss_equals_eager():
    """The compiled training forward (one graph after the eagerly drawn
    masks) gives the eager losses on the same batch, and the next steps
    run the same graph."""
    model = build()
    torch.manual_seed(3)
    x = torch.randn(2, 3, 32, 32)
    data = samples(2, generator=torch.Generator().manual_seed(4))
    torch.manual_seed(5)
    eager = model.loss(x, data)
    torch._dynamo.reset()
    torch.manual_seed(5)
    step = torch.compile(model.loss, backend='aot_eager')
    compiled = step(x, data)
    for key, value in eager.items():
        assert compiled[key].item() == pytest.approx(value.item(), rel=1e-5)
    # later steps (new images and masks, the same visible count) reuse the
    # graph: nothing in the forward changes a Python number dynamo guards on
    # (after 8 recompilations a frame would run eagerly for good)
    with torch._dynamo.config.patch(error_on_recompile=True):
        for seed in (6, 7):
            step(
                torch.randn(2, 3, 32, 32),
                samples(2, generator=torch.Generator().manual_seed(seed)))
    torch._dynamo.reset()


# ---------------------------------------------------------------- teacher
def test_ema_schedule_values():
    """Spec 7.2."""
    ema = LinearAnnealEMA(
        torch.nn.Linear(2, 2),
        momentum=2e-4,
        end_momentum=1e-5,
        anneal_iters=100000)
    assert ema.decay_at(0) == pytest.approx(0.9998, abs=1e-12)
    assert ema.decay_at(50000) == pytest.approx(0.999895, abs=1e-12)
    assert ema.decay_at(100000) == pytest.approx(0.99999, abs=1e-12)
    assert ema.decay_at(300000) == pytest.approx(0.99999, abs=1e-12)


def test_ema_update_half_is_mean():
    torch.manual_seed(0)
    student = torch.nn.Linear(3, 3)
    ema = LinearAnnealEMA(student, momentum=0.5, end_momentum=0.5)
    old = {k: v.clone() for k, v in ema.module.state_dict().items()}
    with torch.no_grad():
        for p in student.parameters():
            p.add_(torch.randn_like(p))
    assert ema.update_parameters(student) == 0.5
    for k, v in student.state_dict().items():
        assert torch.equal(ema.module.state_dict()[k], (old[k] + v) / 2)


def test_ema_exclude_drops_submodules_and_averages_the_rest():
    torch.manual_seed(0)
    student = torch.nn.Sequential(
        torch.nn.Linear(3, 3), torch.nn.BatchNorm1d(3), torch.nn.Linear(3, 2))
    ema = LinearAnnealEMA(
        student, momentum=0.5, end_momentum=0.5, exclude=('0', ))
    assert ema.module[0] is None
    assert set(
        ema.avg_parameters) == {'1.weight', '1.bias', '2.weight', '2.bias'}
    old = {k: v.clone() for k, v in ema.module.state_dict().items()}
    with torch.no_grad():
        for p in student.parameters():
            p.add_(torch.randn_like(p))
        student[1].running_mean.add_(1.)  # buffers: copied by name
    ema.update_parameters(student)
    for k, v in ema.module.state_dict().items():
        if k.endswith(('weight', 'bias')):
            assert torch.equal(v, (old[k] + student.state_dict()[k]) / 2), k
        else:
            assert torch.equal(v, student.state_dict()[k]), k
    ema.reset(student)
    assert torch.equal(ema.module[2].weight, student[2].weight)
    with pytest.raises(ValueError, match="exclude names 'nope'"):
        LinearAnnealEMA(student, exclude=('nope', ))


def test_teacher_weights_stay_fp32():
    model = build()
    model.half()
    assert next(model.backbone.parameters()).dtype == torch.float16
    assert all(p.dtype == torch.float32 for p in model.teacher.parameters())
    model.update_teacher()  # a half student averages into fp32 weights
    assert all(p.dtype == torch.float32 for p in model.teacher.parameters())
    # the teacher takes the half images in fp32
    assert model.teacher_targets(torch.randn(1, 3, 32, 32).half()).dtype \
        == torch.float32


def test_teacher_starts_equal_and_follows_scheduled_ema():
    torch.manual_seed(0)
    model = build()
    for (k, s), t in zip(model.backbone.state_dict().items(),
                         model.teacher.module.state_dict().values()):
        assert torch.equal(s, t), k
    assert int(model.teacher.steps) == 0
    optim = torch.optim.SGD(model.parameters(), lr=0.5)
    total(model.loss(torch.randn(2, 3, 32, 32), samples(2))).backward()
    # no gradient reaches the teacher
    assert all(p.grad is None and not p.requires_grad
               for p in model.teacher.parameters())
    old = {k: v.clone() for k, v in model.teacher.module.state_dict().items()}
    optim.step()
    decay = model.update_teacher()
    tau = 0.99999 - (0.99999 - 0.9998) * (1 - 1 / 100000)
    assert decay == pytest.approx(tau, abs=1e-15)
    moved = 0.
    for k, s in model.backbone.state_dict().items():
        t = model.teacher.module.state_dict()[k]
        torch.testing.assert_close(
            t, tau * old[k] + (1 - tau) * s, atol=1e-7, rtol=0)
        moved = max(moved, (t - old[k]).abs().max().item())
    assert moved > 0
    assert int(model.teacher.steps) == 1


def test_teacher_runs_once_per_image_batch():
    """Spec 7.5: one teacher pass on the B images, not one per clone."""
    model = build()
    seen = []
    model.teacher.module.layers[0].register_forward_hook(
        lambda mod, inp, out: seen.append(inp[0].shape[0]))
    model.loss(torch.randn(3, 3, 32, 32), samples(3, num_masks=4))
    assert seen == [3]


def test_clone_targets_are_identical():
    model = build()
    captured = {}
    orig = model.head.loss

    def spy(pred, targets, mask, cls_pred=None):
        captured['targets'] = targets
        captured['mask'] = mask
        return orig(pred, targets, mask, cls_pred)

    model.head.loss = spy
    model.loss(torch.randn(2, 3, 32, 32), samples(2, num_masks=3))
    t = captured['targets']
    assert t.shape == (2, 16, 16)
    rep = t.repeat_interleave(3, 0)
    for b in range(2):
        for m in range(3):
            assert torch.equal(rep[b * 3 + m], t[b])
    # the clones of one image are masked differently
    masks = captured['mask'].view(2, 3, 16)
    assert not torch.equal(masks[0, 0], masks[0, 1]) or \
        not torch.equal(masks[0, 1], masks[0, 2])


def test_masks_come_only_from_the_batch():
    """One owner: the pipeline draws the masks, the model has no settings
    and asks for the pipeline step when a batch has none."""
    model = build()
    x = torch.randn(2, 3, 32, 32)
    for batch in (None, [DataSample(), DataSample()]):
        with pytest.raises(ValueError, match='InverseBlockMaskGenerator'):
            model.loss(x, batch)
    one = samples(1)
    with pytest.raises(ValueError, match='1 masks for 2 samples'):
        model.loss(x, one)
    # M is read from the masks: 5 clones per image here
    with mock.patch.object(
            model.head, 'loss', wraps=model.head.loss) as head_loss:
        model.loss(x, samples(2, num_masks=5, mask_ratio=0.75))
    assert head_loss.call_args.args[0].shape[0] == 2 * 5
    assert model.mask_generator is None


@pytest.mark.parametrize('key,value', [('num_masks', 16),
                                       ('mask_type', 'inverse_block'),
                                       ('mask_ratio', 0.8), ('block_size', 3),
                                       ('mask_adjust', 0.07)])
def test_old_mask_keys_fail_at_build(key, value):
    """The model keys of earlier versions name their pipeline argument."""
    cfg = dict(tiny_cfg(), **{key: value})
    with pytest.raises(ValueError) as err:
        MODELS.build(cfg)
    msg = str(err.value)
    assert f'model.{key}' in msg
    assert f'`{MOVED_MASK_KEYS[key]}`' in msg
    assert 'InverseBlockMaskGenerator' in msg and 'train_pipeline' in msg
    with pytest.raises(TypeError, match='unexpected arguments'):
        MODELS.build(dict(tiny_cfg(), mask_prob=0.8))


def test_masks_from_the_batch_are_used():
    model = build()
    masks = inverse_block_mask(4, 4, 0.75, 2 * 5).view(2, 5, 4, 4)
    batch = [DataSample().set_mask(masks[i]) for i in range(2)]
    captured = {}
    orig = model.head.loss

    def spy(pred, targets, mask, cls_pred=None):
        captured['mask'] = mask
        return orig(pred, targets, mask, cls_pred)

    model.head.loss = spy
    model.loss(torch.randn(2, 3, 32, 32), batch)
    assert torch.equal(captured['mask'], masks.view(10, 16))
    bad = [
        DataSample().set_mask(torch.zeros(5, 3, 3, dtype=torch.bool))
        for _ in range(2)
    ]
    with pytest.raises(ValueError, match='patch grid'):
        model.loss(torch.randn(2, 3, 32, 32), bad)


# ---------------------------------------------------------------- errors
@pytest.mark.parametrize('overrides,match', [
    (dict(head=dict(top_k=5)), 'model.head.top_k'),
    (dict(backbone=dict(img_size=30)), 'model.backbone.img_size'),
    (dict(neck=dict(in_channels=8, embed_dims=8)), 'model.neck.in_channels'),
    (dict(ema=dict(momentum=1.5)), 'model.ema'),
])
def test_bad_config_fails_at_build(overrides, match):
    cfg = tiny_cfg()
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key].update(value)
        else:
            cfg[key] = value
    with pytest.raises(ValueError, match=match):
        MODELS.build(cfg)


# ---------------------------------------------------------------- learning
def test_short_pretraining_lowers_the_loss():
    """200 steps on 16 in-memory pictures: the loss falls clearly."""
    torch.manual_seed(0)
    model = build(ema=dict(momentum=1e-3, end_momentum=1e-4, anneal_iters=100))
    yy, xx = torch.meshgrid(
        torch.arange(32.), torch.arange(32.), indexing='ij')
    imgs = []
    for i in range(16):
        fx, fy, ph = 1 + i % 4, 1 + i // 4, i * 0.7
        base = torch.sin(2 * math.pi * (fx * xx + fy * yy) / 32 + ph)
        imgs.append(torch.stack([base, base.roll(i, 0), -base]) * 50 + 128)
    data = torch.stack(imgs)
    optim = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad],
        lr=2e-3,
        betas=(0.9, 0.95),
        weight_decay=0.05)
    model.train()
    history = []
    for step in range(200):
        batch = data[torch.randperm(16)[:8]]
        inputs = model.data_preprocessor(
            dict(inputs=batch, data_samples=None), True)['inputs']
        losses = model.loss(inputs, samples(8))
        loss = total(losses)
        optim.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 4.)
        optim.step()
        model.update_teacher()
        history.append(loss.item())
        assert math.isfinite(history[-1])
    first, last = np.mean(history[:10]), np.mean(history[-10:])
    assert last < 0.6 * first, (first, last)
    assert losses['target_std'].item() > 0.1  # no collapse


# ---------------------------------------------------------------- configs
#: sha1 (first 16 hex digits) of the masks the configs' pipelines drew for
#: torch.manual_seed(0) when the model still had mask settings of its own;
#: the pipeline step, now the only owner, must keep drawing the same masks.
CONFIG_MASKS = {
    'data2vec2_vit-base-p16_16xb16-amp-coslr-375k_in1k.py':
    ((16, 14, 14), 39, '25cc368c4290c4f1'),
    'data2vec2_vit-base-p16_1xb32-amp-coslr-30e_embedded224.py':
    ((16, 14, 14), 39, '25cc368c4290c4f1'),
    'data2vec2_vit-large-p16_64xb8-amp-coslr-375k_in1k.py':
    ((16, 14, 14), 49, 'fe6e73d955b774ef'),
    'data2vec2_vit-tiny-p8_1xb64-coslr-30e_embedded.py':
    ((4, 8, 8), 12, '0e322d97f0a43488'),
}
CONFIG_DIR = osp.join(
    osp.dirname(__file__), '..', '..', 'configs', 'data2vec2')


@pytest.mark.parametrize('name', sorted(CONFIG_MASKS))
def test_config_masks_unchanged_and_owned_by_the_pipeline(name):
    from mmengine.config import Config
    from mmengine.registry import TRANSFORMS, DefaultScope

    cfg = Config.fromfile(osp.join(CONFIG_DIR, name))
    assert not set(MOVED_MASK_KEYS) & set(cfg.model), name
    assert not {'mask_ratio', 'num_masks', 'mask_adjust'} & set(cfg), name
    pipeline = cfg.train_dataloader.dataset.pipeline
    steps = [t for t in pipeline if 'MaskGenerator' in t['type']]
    assert len(steps) == 1
    assert pipeline[-1] == dict(type='PackInputs', algorithm_keys=['mask'])
    # the patch grid of the masks is the backbone's
    grid = cfg.model.backbone.img_size // cfg.model.backbone.patch_size
    assert steps[0]['input_size'] == grid
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        gen = TRANSFORMS.build(steps[0])
    torch.manual_seed(0)
    masks = gen.transform({})['mask']
    shape, visible, digest = CONFIG_MASKS[name]
    assert tuple(masks.shape) == shape
    assert hashlib.sha1(masks.numpy().tobytes()).hexdigest()[:16] == digest
    # the realised ratio is the configured one, in every mask
    n = shape[1] * shape[2]
    assert visible == int(n * (1 - steps[0]['mask_ratio']))
    assert torch.all((~masks).flatten(1).sum(1) == visible)


def test_tiny_config_pipeline_feeds_the_model():
    """The tiny config's own pipeline gives the model its M masks."""
    from mmengine.config import Config
    from mmengine.dataset import Compose, default_collate
    from mmengine.registry import TRANSFORMS, DefaultScope

    cfg = Config.fromfile(
        osp.join(CONFIG_DIR,
                 'data2vec2_vit-tiny-p8_1xb64-coslr-30e_embedded.py'))
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        pipeline = Compose([
            TRANSFORMS.build(t) for t in cfg.train_dataloader.dataset.pipeline
            if t['type'] != 'LoadImageFromFile'
        ])
        model = MODELS.build(cfg.model)
    rng = np.random.RandomState(0)
    items = [
        pipeline(dict(img=rng.randint(0, 255, (64, 64, 3), dtype=np.uint8)))
        for _ in range(2)
    ]
    data = model.data_preprocessor(default_collate(items), True)
    assert data['data_samples'][0].mask.shape == (4, 8, 8)
    losses = model.loss(data['inputs'], data['data_samples'])
    assert torch.isfinite(total(losses))
