# Copyright (c) mmssl contributors. All rights reserved.
import pytest
import torch
from mmpretrain.registry import MODELS

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
