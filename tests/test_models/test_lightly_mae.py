# Copyright (c) mmssl contributors. All rights reserved.
"""lightly's MAE behind mmengine's model interface (the benchmark peer)."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config

pytest.importorskip(
    'lightly',
    reason='pip install --no-deps -r '
    'requirements/benchmark.txt (tools/setup_env.sh does)')

from mmssl.analysis import benchmark_configs  # noqa: E402
from mmssl.analysis.benchmark import build_train_model  # noqa: E402
from mmssl.registry import MODELS  # noqa: E402

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
MMSSL = osp.join(ROOT, 'configs/mae',
                 'mae_vit-tiny-p8_1xb64-coslr-30e_embedded.py')
PEER = osp.join(ROOT, 'configs/mae/reference',
                'mae-lightly_vit-tiny-p8_1xb64_embedded.py')


def _peer(**kwargs):
    cfg = dict(
        type='mmssl.LightlyMAE',
        vit='vit_tiny_patch16_224',
        img_size=32,
        patch_size=8,
        vit_kwargs=dict(depth=1),
        decoder_dim=32,
        decoder_depth=1,
        decoder_num_heads=2)
    cfg.update(kwargs)
    torch.manual_seed(0)
    return MODELS.build(cfg)


def test_masked_patches_only_are_predicted():
    model = _peer(mask_ratio=0.75)
    seen = []
    predict = model.decoder.predict
    model.decoder.predict = lambda x: seen.append(x.shape) or predict(x)
    model.loss(torch.randn(3, 3, 32, 32))
    # 16 patches + class token; lightly keeps int(16 * 0.25) = 4 patches
    assert seen == [torch.Size([3, 12, 32])]


def test_norm_pix_loss_by_hand():
    """A zero prediction of per-patch normalised pixels (unbiased variance)
    costs (n - 1) / n per element, n = p * p * 3; without norm_pix it costs
    the mean squared pixel of the masked patches."""
    model = _peer()
    n = 8 * 8 * 3
    model.decoder.predict = lambda x: torch.zeros(*x.shape[:2], n)
    loss = model.loss(torch.randn(2, 3, 32, 32) * 5 + 3)['loss']
    assert loss.item() == pytest.approx((n - 1) / n, rel=1e-5)

    model = _peer(norm_pix=False)
    model.decoder.predict = lambda x: torch.zeros(*x.shape[:2], n)
    images = torch.full((2, 3, 32, 32), 2.)
    assert model.loss(images)['loss'].item() == pytest.approx(4.)


def test_training_lowers_the_loss():
    model = _peer()
    images = torch.randn(4, 3, 32, 32)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(15):
        torch.manual_seed(1)  # the same masks every step
        loss = model.loss(images)['loss']
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0]


def test_defaults_are_maes_vit_b_recipe():
    """ViT-B/16 at 224 px (197 tokens) and MAE's 512-wide, 8-block,
    16-head decoder."""
    with torch.device('meta'):
        model = MODELS.build(dict(type='mmssl.LightlyMAE'))
    assert model.patch_size == 16 and model.sequence_length == 197
    assert model.mask_ratio == 0.75 and model.norm_pix
    decoder = model.decoder
    assert decoder.decoder_embed.out_features == 512
    assert len(decoder.decoder_blocks) == 8
    assert decoder.decoder_blocks[0].attn.num_heads == 16


def test_bad_settings():
    assert _peer(mask_ratio=0.).mask_ratio == 0
    with pytest.raises(ValueError, match='mask_ratio'):
        _peer(mask_ratio=1.0)
    with pytest.raises(ValueError, match='mask_ratio'):
        _peer(mask_ratio=-0.1)
    with pytest.raises(ValueError, match='mode="loss"'):
        _peer()(torch.randn(1, 3, 32, 32), mode='predict')


def test_peer_config_is_the_same_network_as_mmssl():
    """The lightly config of the tiny MAE has mmssl's sizes: parameters and
    training FLOPs per image agree with mmssl's MAE decoding every patch (to
    the per cent that lightly's masked-only prediction, mmssl's
    visible-only patch embedding and timm's norm layout differ by); mmssl
    as configured decodes the removed patches only, fewer FLOPs than
    both."""
    full = Config.fromfile(MMSSL)
    full.model.predict_removed_only = False
    res = benchmark_configs([full, PEER, MMSSL],
                            names=['mmssl-full', 'lightly', 'mmssl'],
                            batch_size=2,
                            iters=1,
                            warmup=0,
                            repeat=1,
                            threads=1,
                            matmul_size=64)
    mm, peer, removed_only = res
    assert peer['img_size'] == [64, 64]
    assert abs(peer['num_params'] - mm['num_params']) <= 192 * 2
    assert removed_only['num_params'] == mm['num_params']
    assert peer['flops_per_img'] == pytest.approx(
        mm['flops_per_img'], rel=0.02)
    assert removed_only['flops_per_img'] < 0.97 * mm['flops_per_img']
    assert removed_only['flops_per_img'] < 0.97 * peer['flops_per_img']


def test_peer_config_builds_with_the_mmssl_optimizer():
    model, wrapper, amp = build_train_model(Config.fromfile(PEER))
    assert not amp
    decay = {
        g['weight_decay']
        for g in wrapper.optimizer.param_groups
        for p in g['params']
    }
    assert decay == {0.0, 0.05}
    no_decay = sum(p.numel() for g in wrapper.optimizer.param_groups
                   for p in g['params'] if g['weight_decay'] == 0)
    norms = sum(p.numel() for n, p in model.named_parameters()
                if p.requires_grad and ('norm' in n or n.endswith('bias')
                                        or 'pos_embed' in n or 'token' in n))
    assert no_decay == norms
