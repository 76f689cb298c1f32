# Copyright (c) mmssl contributors. All rights reserved.
from unittest import mock

import pytest
import torch
from mmpretrain.registry import MODELS

from mmssl.models.selfsup.mae import MAEViT
from mmssl.testing import tiny_mae_cfg


def build(**backbone):
    cfg = tiny_mae_cfg()
    cfg['backbone'].update(backbone)
    model = MODELS.build(cfg)
    model.init_weights()
    return model


def test_loss_is_scalar_and_backprops():
    model = build()
    x = torch.randn(2, 3, 32, 32)
    loss = model.loss(x, None)['loss']
    assert loss.ndim == 0
    loss.backward()
    assert model.backbone.layers[0].attn.qkv.weight.grad is not None
    # the fixed sin-cos position embedding is not trained
    assert not model.backbone.pos_embed.requires_grad


def test_mask_false_and_none_do_not_mask():
    """mmpretrain's MAEViT still masks on mask=False; mmssl's does not."""
    model = build().eval()
    x = torch.randn(2, 3, 32, 32)
    feats_none = model.backbone(x, mask=None)[0]
    feats_false = model.backbone(x, mask=False)[0]
    assert feats_none.shape == (2, 17, 32)
    assert torch.equal(feats_none, feats_false)
    latent, mask, ids_restore = model.backbone(x, mask=True)
    assert latent.shape == (2, 1 + 4, 32)
    assert torch.equal(mask.sum(1), torch.tensor([12., 12.]))


def test_loss_ignores_visible_patches():
    """Only removed patches enter the loss (spec property 4)."""
    model = build()
    head = model.head
    x = torch.randn(2, 3, 32, 32)
    target = head.construct_target(x)
    mask = torch.zeros(2, 16)
    mask[:, :12] = 1
    pred = target.clone()
    assert head.loss(pred, x, mask).item() == pytest.approx(0, abs=1e-6)
    pred[:, 12:] += 5.0  # visible patches only
    assert head.loss(pred, x, mask).item() == pytest.approx(0, abs=1e-6)
    pred = target.clone()
    pred[:, :12] += 0.5  # constant error on removed patches
    assert head.loss(pred, x, mask).item() == pytest.approx(0.25, rel=1e-5)


def test_norm_pix_target_statistics():
    model = build()
    t = model.head.construct_target(torch.randn(2, 3, 32, 32) * 3 + 1)
    assert torch.allclose(t.mean(-1), torch.zeros(2, 16), atol=1e-5)
    assert torch.allclose(t.var(-1), torch.ones(2, 16), atol=1e-4)


def test_reconstruct_pastes_visible_pixels():
    model = build().eval()
    x = torch.randn(2, 3, 32, 32)
    noise = torch.rand(2, 16)
    out = model.reconstruct(x, noise=noise)
    assert out['reconstruction'].shape == x.shape
    keep = out['mask'] == 0
    assert torch.equal(out['pasted'][keep.expand_as(x)], x[keep.expand_as(x)])
    assert out['mask'].mean().item() == pytest.approx(0.75)
    # fixed noise -> the same masks
    assert torch.equal(model.reconstruct(x, noise=noise)['mask'], out['mask'])


def test_extract_feat_is_unmasked():
    model = build().eval()
    feats = model.extract_feat(torch.randn(2, 3, 32, 32))
    assert feats[0].shape == (2, 17, 32)


@pytest.mark.parametrize('key,value,match', [
    ('mask_ratio', 1.2, 'mask_ratio'),
    ('img_size', 30, 'not divisible'),
])
def test_bad_config_fails_at_build(key, value, match):
    with pytest.raises(Exception, match=match):
        build(**{key: value})


def test_drop_path_rates_are_python_floats_and_the_forward_is_one_graph():
    """mmpretrain hands its blocks NumPy drop-path rates, on which mmcv's
    ``drop_prob == 0.`` test breaks a torch.compile graph per block; mmssl's
    MAE casts them (the same values), so dynamo traces one graph."""
    import numpy as np
    import torch._dynamo as dynamo
    from mmcv.cnn.bricks.drop import DropPath

    from mmssl.models.utils import python_drop_path_rates
    block = torch.nn.Sequential(DropPath(np.float64(0.1)), DropPath(0.))
    assert python_drop_path_rates(block) == 1
    assert type(block[0].drop_prob) is float and block[0].drop_prob == 0.1
    model = build(drop_path_rate=0.1)
    rates = [m.drop_prob for m in model.modules() if isinstance(m, DropPath)]
    assert rates and all(type(r) is float for r in rates)
    assert max(rates) == pytest.approx(0.1)
    dynamo.reset()
    explained = dynamo.explain(model.forward)(
        torch.randn(2, 3, 32, 32), None, mode='loss')
    assert (explained.graph_count, explained.graph_break_count) == (1, 0)
    # the NumPy rates mmpretrain hands the encoder blocks break the graph
    for m in model.backbone.modules():
        if isinstance(m, DropPath):
            m.drop_prob = np.float64(m.drop_prob)
    dynamo.reset()
    before = dynamo.explain(model.forward)(
        torch.randn(2, 3, 32, 32), None, mode='loss')
    dynamo.reset()
    assert before.graph_break_count > 0
    assert any('drop' in str(b.user_stack[-1]) for b in before.break_reasons)


def test_visible_path_with_nothing_removed_is_the_plain_path():
    """With a mask ratio of 0 and noise that keeps the patch order, the
    visible-token path (patches + position, CLS + its position, blocks,
    final norm) equals mmpretrain's plain ViT path."""
    model = build().eval()
    model.backbone.mask_ratio = 0.
    x = torch.randn(2, 3, 32, 32)
    noise = torch.arange(16.).expand(2, -1)
    latent, mask, ids_restore = model.backbone(x, noise=noise)
    assert not mask.any()
    assert torch.equal(ids_restore, torch.arange(16).expand(2, -1))
    torch.testing.assert_close(latent, model.backbone(x, mask=None)[0])


def test_removed_patches_do_not_reach_the_latent():
    model = build().eval()
    x = torch.randn(1, 3, 32, 32)
    noise = torch.arange(16.)[None].flip(1)  # keeps patches 12-15
    latent, mask, _ = model.backbone(x, noise=noise)
    assert torch.equal(mask[0], (torch.arange(16) < 12).float())
    x2 = x.clone()
    x2[..., :8, :] += 10  # patches 0-3, removed
    torch.testing.assert_close(model.backbone(x2, noise=noise)[0], latent)
    x2[..., 24:, :] += 10  # patches 12-15, visible
    assert not torch.allclose(model.backbone(x2, noise=noise)[0], latent)


@pytest.mark.parametrize('norm_pix', [True, False])
def test_reconstruct_undoes_the_norm_pix_target(norm_pix):
    """A decoder that predicts the head's target exactly reconstructs the
    input images: with norm_pix, each patch's mean and std are put back."""
    model = build().eval()
    model.head.norm_pix = norm_pix
    x = torch.randn(2, 3, 32, 32) * 3 + 1
    target = model.head.construct_target(x)
    with mock.patch.object(model.neck, 'forward', return_value=target):
        out = model.reconstruct(x, noise=torch.rand(2, 16))
    torch.testing.assert_close(out['reconstruction'], x, atol=1e-4, rtol=0)
    torch.testing.assert_close(out['pasted'], x, atol=1e-4, rtol=0)


def test_reconstruct_scales_predictions_by_each_patchs_std():
    """pred * sqrt(var + 1e-6) + mean per patch, the head's own epsilon: a
    prediction of 1 on a constant patch of 0.5 gives 0.5 + 1e-3."""
    model = build().eval()
    x = torch.randn(1, 3, 32, 32)
    x[..., :8, :8] = 0.5  # patch 0 is constant
    ones = torch.ones(1, 16, 8 * 8 * 3)
    with mock.patch.object(model.neck, 'forward', return_value=ones):
        recon = model.reconstruct(x)['reconstruction']
    torch.testing.assert_close(recon[..., :8, :8],
                               torch.full((1, 3, 8, 8), 0.5 + 1e-3))
    patch = x[..., 8:16, :8]  # patch 4
    want = (patch.var() + 1e-6).sqrt() + patch.mean()
    torch.testing.assert_close(recon[..., 8:16, :8], want.expand_as(patch))


def test_encoder_defaults():
    """MAE's ViT-B/16 at 224 px with 75 % masking and the sin-cos position
    embedding; the grid check uses the same default sizes."""
    with torch.device('meta'):
        vit = MAEViT()
    assert vit.mask_ratio == 0.75 and vit.use_pos_embed
    assert vit.patch_resolution == (14, 14) and vit.embed_dims == 768
    small = dict(arch='s')
    with torch.device('meta'):
        assert MAEViT(img_size=48, **small).patch_resolution == (3, 3)
    with pytest.raises(ValueError, match='img_size'):
        MAEViT(patch_size=64, **small)


def test_position_embedding_is_zero_only_without_use_pos_embed():
    assert build().backbone.pos_embed[0, 1:].abs().sum() > 0
    assert not build(use_pos_embed=False).backbone.pos_embed.any()
