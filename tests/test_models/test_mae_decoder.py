# Copyright (c) mmssl contributors. All rights reserved.
"""MAE decodes the removed patches only: the last block, norm and prediction
at those tokens give the full forward's numbers there, and MAE's loss and
gradients equal mmpretrain's MAE (which decodes every patch)."""
import copy

import pytest
import torch
from mmpretrain.models.backbones.vision_transformer import \
    TransformerEncoderLayer
from mmpretrain.models.necks import \
    MAEPretrainDecoder as MMPretrainMAEPretrainDecoder
from torch.utils.flop_counter import FlopCounterMode

from mmssl.models.necks import MAEPretrainDecoder, encoder_layer_at
from mmssl.models.utils import (UnbindMultiheadAttention, gather_tokens,
                                kept_ids, masking_ids, removed_ids,
                                unbind_qkv_attention)
from mmssl.registry import MODELS
from mmssl.testing import tiny_mae_cfg


def _layer(**kwargs):
    torch.manual_seed(0)
    layer = TransformerEncoderLayer(**dict(
        dict(embed_dims=32, num_heads=4, feedforward_channels=64), **kwargs))
    unbind_qkv_attention(layer)
    with torch.no_grad():  # non-trivial norms and layer scales
        for p in layer.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return layer


def _random_ids(B, N, Q):
    return torch.stack([torch.randperm(N)[:Q] for _ in range(B)])


@pytest.mark.parametrize('kwargs', [
    dict(),
    dict(qkv_bias=False),
    dict(layer_scale_init_value=0.5),
])
def test_layer_at_some_tokens_equals_the_full_layer_there(kwargs):
    """Outputs at the chosen tokens, and the gradients of every parameter
    and of the input, equal those of the full block gathered there."""
    layer = _layer(**kwargs)
    x = torch.randn(3, 9, 32)
    ids = _random_ids(3, 9, 5)
    g = torch.randn(3, 5, 32)
    results = []
    for fn in (lambda t: gather_tokens(layer(t), ids),
               lambda t: encoder_layer_at(layer, t, ids)):
        layer.zero_grad()
        xi = x.clone().requires_grad_()
        y = fn(xi)
        y.backward(g)
        results.append(
            (y.detach(), xi.grad, [p.grad.clone()
                                   for p in layer.parameters()]))
    (y0, gx0, gp0), (y1, gx1, gp1) = results
    assert y1.shape == (3, 5, 32)
    torch.testing.assert_close(y1, y0)
    torch.testing.assert_close(gx1, gx0)
    for a, b in zip(gp0, gp1):
        torch.testing.assert_close(b, a)


def test_queries_come_from_the_chosen_tokens_keys_from_all():
    """Changing a token that is not a query changes the outputs (it is a
    key and value); permuting the query ids permutes the outputs."""
    layer = _layer().eval()
    x = torch.randn(1, 6, 32)
    ids = torch.tensor([[4, 1]])
    y = encoder_layer_at(layer, x, ids)
    x2 = x.clone()
    x2[0, 0] += 10 * torch.randn(32)
    assert (encoder_layer_at(layer, x2, ids) - y).abs().max() > 1e-3
    flipped = encoder_layer_at(layer, x, ids.flip(1))
    torch.testing.assert_close(flipped, y.flip(1))


def test_layer_at_needs_the_unbind_attention():
    layer = TransformerEncoderLayer(32, 4, 64)
    with pytest.raises(TypeError, match='unbind_qkv_attention'):
        encoder_layer_at(layer, torch.randn(1, 4, 32), torch.tensor([[0]]))
    attn = UnbindMultiheadAttention(32, 1, input_dims=32, v_shortcut=True)
    with pytest.raises(ValueError, match='v_shortcut'):
        attn.forward_queries(torch.randn(1, 2, 32), torch.randn(1, 4, 32))


def _decoders(depth=2):
    kwargs = dict(
        num_patches=16,
        patch_size=4,
        embed_dim=24,
        decoder_embed_dim=32,
        decoder_depth=depth,
        decoder_num_heads=4)
    torch.manual_seed(0)
    ref = MMPretrainMAEPretrainDecoder(**kwargs)
    ref.init_weights()
    with torch.no_grad():
        ref.mask_token.normal_()
    new = MAEPretrainDecoder(**kwargs)
    new.load_state_dict(ref.state_dict())  # strict: the same keys
    assert list(new.state_dict()) == list(ref.state_dict())
    return ref, new


@pytest.mark.parametrize('depth', [2, 0])
def test_decoder_predicts_the_requested_patches(depth):
    """forward(..., query_ids) is mmpretrain's forward at those patches
    (CLS offset included); without query_ids it is mmpretrain's."""
    ref, new = _decoders(depth)
    B, L, V = 2, 16, 4
    torch.manual_seed(1)
    latent = torch.randn(B, 1 + V, 24)
    _, ids_restore, _ = masking_ids(B, L, 0.75)
    full = ref(latent, ids_restore)
    assert torch.equal(new(latent, ids_restore), full)
    ids = removed_ids(ids_restore, V)
    out = new(latent, ids_restore, query_ids=ids)
    assert out.shape == (B, L - V, 4 * 4 * 3)
    torch.testing.assert_close(out, gather_tokens(full, ids))
    vis = kept_ids(ids_restore, V)
    torch.testing.assert_close(
        new(latent, ids_restore, query_ids=vis), gather_tokens(full, vis))


def test_decoder_with_more_images_than_visible_tokens():
    """The mask tokens fill L - V places whatever the batch size (here
    B > 1 + V)."""
    ref, new = _decoders()
    B, L, V = 8, 16, 1
    torch.manual_seed(2)
    latent = torch.randn(B, 1 + V, 24)
    _, ids_restore, _ = masking_ids(B, L, 0.95)
    ids = removed_ids(ids_restore, V)
    torch.testing.assert_close(
        new(latent, ids_restore, query_ids=ids),
        gather_tokens(ref(latent, ids_restore), ids))


def test_removed_ids_complement_kept_ids():
    """removed_ids are the patches the mask marks 1, kept_ids those it
    marks 0; the concatenation is the shuffle order."""
    torch.manual_seed(0)
    mask, ids_restore, ids_keep = masking_ids(3, 10, 0.6)
    V = ids_keep.shape[1]
    rem = removed_ids(ids_restore, V)
    assert rem.shape == (3, 6)
    assert torch.equal(kept_ids(ids_restore, V), ids_keep)
    for b in range(3):
        assert sorted(mask[b].nonzero().flatten().tolist()) == sorted(
            rem[b].tolist())
    order = torch.cat([ids_keep, rem], 1)
    assert torch.equal(torch.argsort(order, 1), ids_restore)


def _pair(**kwargs):
    torch.manual_seed(0)
    model = MODELS.build(tiny_mae_cfg(**kwargs))
    model.init_weights()
    ref = MODELS.build(tiny_mae_cfg(scope='mmpretrain', **kwargs))
    ref.load_state_dict(model.state_dict())
    return model, ref


@pytest.mark.parametrize('norm_pix', [True, False])
def test_mae_loss_and_gradients_equal_mmpretrain(norm_pix):
    """mmssl's MAE (visible patches embedded, removed ones decoded) has
    mmpretrain's loss and gradients for the same masks."""
    model, ref = _pair()
    model.head.norm_pix = ref.head.norm_pix = norm_pix
    assert model._predicts_removed_only()
    assert not hasattr(ref, '_predicts_removed_only')
    x = torch.randn(3, 3, 32, 32)
    grads = []
    losses = []
    for m in (model, ref):
        torch.manual_seed(5)
        loss = m.loss(x, [])['loss']
        loss.backward()
        losses.append(loss.detach())
        grads.append({n: p.grad for n, p in m.named_parameters()})
    torch.testing.assert_close(losses[0], losses[1])
    assert grads[0].keys() == grads[1].keys()
    for n, g in grads[1].items():
        if g is None:
            assert grads[0][n] is None, n
        else:
            torch.testing.assert_close(grads[0][n], g, msg=n)
    # decoding every patch is the same loss too
    model.predict_removed_only = False
    torch.manual_seed(5)
    torch.testing.assert_close(model.loss(x, [])['loss'], losses[1])


def _loss_flops(model, x):
    counter = FlopCounterMode(display=False)
    torch.manual_seed(0)
    with counter:
        model.loss(x, [])['loss'].backward()
    return counter.get_total_flops()


def test_removed_only_decoding_saves_the_last_blocks_query_work():
    """The saving is the forward + backward products of the last block's
    queries, output projection, MLP and prediction layer at the CLS and
    visible tokens: three products each (forward, input and weight
    gradients), 2 FLOPs per multiply-add. (FlopCounterMode counts no FLOPs
    for PyTorch's CPU attention kernel, so the attention's share of the
    saving is not in the count.)"""
    model, _ = _pair()
    x = torch.randn(2, 3, 32, 32)
    model.predict_removed_only = False
    full = _loss_flops(model, x)
    model.predict_removed_only = True
    removed = _loss_flops(model, x)
    neck = model.neck
    C = neck.decoder_embed.out_features
    hidden = neck.decoder_blocks[-1].ffn.layers[0][0].out_features
    D = neck.decoder_pred.out_features
    B, V = 2, 4
    skipped = B * (1 + V)  # CLS + visible tokens
    macs = skipped * (C * C + C * C + 2 * C * hidden + C * D)
    assert full - removed == 2 * 3 * macs


def test_fallback_with_mmpretrain_decoder_or_the_option_off():
    """mmpretrain's decoder (no query_ids) or predict_removed_only=False
    decode every patch; the loss is the same."""
    cfg = tiny_mae_cfg()
    cfg['neck']['type'] = 'mmpretrain.MAEPretrainDecoder'
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    assert not model._predicts_removed_only()
    other = MODELS.build(
        dict(copy.deepcopy(tiny_mae_cfg()), predict_removed_only=False))
    assert not other._predicts_removed_only()
    other.load_state_dict(model.state_dict())
    # another reconstruction loss: its mask semantics are its own
    cfg = tiny_mae_cfg()
    cfg['head']['loss'] = dict(type='mmpretrain.CosineSimilarityLoss')
    assert not MODELS.build(cfg)._predicts_removed_only()
    x = torch.randn(2, 3, 32, 32)
    torch.manual_seed(3)
    a = model.loss(x, [])['loss']
    torch.manual_seed(3)
    b = other.loss(x, [])['loss']
    assert torch.equal(a, b)
