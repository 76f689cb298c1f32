# Copyright (c) mmssl contributors. All rights reserved.
"""The ``unbind`` split of q, k, v: the same numbers as mmpretrain's
attention, one ``stack`` in the backward, and every mmssl ViT path on it."""
import copy

import pytest
import torch
from mmpretrain.models.utils.attention import MultiheadAttention

from mmssl.models.utils import UnbindMultiheadAttention, unbind_qkv_attention
from mmssl.registry import MODELS
from mmssl.testing import tiny_mae_cfg, tiny_poslabel_vit_cfg
from mmssl.testing.ops import OpRecorder


def _grads(module, *inputs):
    return [p.grad.clone() for p in module.parameters()
            if p.requires_grad] + \
        [x.grad.clone() for x in inputs]


@pytest.mark.parametrize('kwargs', [
    dict(),
    dict(qkv_bias=False, proj_bias=False),
    dict(qk_scale=0.3),
    dict(layer_scale_init_value=0.5),
    dict(input_dims=24, v_shortcut=True, num_heads=1),
])
def test_same_numbers_as_mmpretrain(kwargs):
    """Outputs and every gradient equal mmpretrain's bit for bit."""
    torch.manual_seed(0)
    kwargs = dict(dict(embed_dims=32, num_heads=4), **kwargs)
    ref = MultiheadAttention(**kwargs)
    new = UnbindMultiheadAttention(**kwargs)
    new.load_state_dict(ref.state_dict())
    assert list(new.state_dict()) == list(ref.state_dict())
    x = torch.randn(3, 7, kwargs.get('input_dims', 32))
    g = torch.randn(3, 7, 32)
    xs = [x.clone().requires_grad_() for _ in range(2)]
    outs = []
    for m, xi in zip((ref, new), xs):
        y = m(xi)
        y.backward(g)
        outs.append((y.detach(), _grads(m, xi)))
    assert torch.equal(outs[0][0], outs[1][0])
    for a, b in zip(outs[0][1], outs[1][1]):
        assert torch.equal(a, b)


def test_attention_dropout_only_in_training():
    """With attention dropout the eval-mode outputs equal mmpretrain's
    (no dropout), and the training-mode ones differ from them."""
    torch.manual_seed(0)
    ref = MultiheadAttention(32, 4, attn_drop=0.5).eval()
    new = UnbindMultiheadAttention(32, 4, attn_drop=0.5).eval()
    new.load_state_dict(ref.state_dict())
    x = torch.randn(2, 6, 32)
    assert torch.equal(new(x), ref(x))
    assert not torch.allclose(new.train()(x), ref(x))


def test_backward_stacks_instead_of_three_selects():
    """The backward has one ``stack`` of the q, k, v gradients and no
    ``select_backward`` (which zero-fills a full projection per view)."""
    torch.manual_seed(0)
    ops = {}
    for cls in (MultiheadAttention, UnbindMultiheadAttention):
        x = torch.randn(2, 5, 32, requires_grad=True)
        y = cls(32, 4)(x)
        with OpRecorder() as rec:
            y.sum().backward()
        ops[cls] = [c.name for c in rec.calls]
    assert ops[MultiheadAttention].count('select_backward') == 3
    assert 'select_backward' not in ops[UnbindMultiheadAttention]
    assert ops[UnbindMultiheadAttention].count('stack') == 1


def test_unbind_qkv_attention_changes_mmpretrain_modules_only():
    """Exactly mmpretrain's class changes; a subclass keeps its forward;
    the state dict and a second call change nothing."""

    class Own(MultiheadAttention):

        def forward(self, x):
            return x

    model = torch.nn.ModuleList(
        [MultiheadAttention(16, 2),
         Own(16, 2),
         MultiheadAttention(16, 4)])
    keys = list(model.state_dict())
    assert unbind_qkv_attention(model) == 2
    assert [type(m) for m in model
            ] == [UnbindMultiheadAttention, Own, UnbindMultiheadAttention]
    assert list(model.state_dict()) == keys
    assert unbind_qkv_attention(model) == 0


def _attention_types(model):
    return {
        type(m)
        for m in model.modules() if isinstance(m, MultiheadAttention)
    }


def test_mae_encoder_and_decoder_unbind_with_the_old_numbers():
    """MAE's encoder and decoder attention is the unbind path, and the
    loss and gradients equal those of mmpretrain's attention."""
    torch.manual_seed(0)
    cfg = tiny_mae_cfg()
    model = MODELS.build(cfg)
    backbone_only = MODELS.build(cfg['backbone'])
    assert _attention_types(model.backbone) == {UnbindMultiheadAttention}
    assert _attention_types(model.neck) == {UnbindMultiheadAttention}
    assert _attention_types(backbone_only) == {UnbindMultiheadAttention}
    # every patch decoded in both (the removed-only decoding has its own
    # test against mmpretrain's MAE in test_mae_decoder.py)
    model.predict_removed_only = False
    old = copy.deepcopy(model)
    for m in old.modules():
        if type(m) is UnbindMultiheadAttention:
            m.__class__ = MultiheadAttention
    assert _attention_types(old) == {MultiheadAttention}
    x = torch.randn(2, 3, 32, 32)
    results = []
    for m in (model, old):
        torch.manual_seed(1)
        loss = m.loss(x, [])['loss']
        loss.backward()
        results.append((loss.detach(), _grads(m)))
    assert torch.equal(results[0][0], results[1][0])
    for a, b in zip(results[0][1], results[1][1]):
        assert torch.equal(a, b)


def test_poslabel_vit_and_data2vec2_blocks_unbind():
    """The positional-label ViT and data2vec 2.0's blocks take the unbind
    path too."""
    vit = MODELS.build(tiny_poslabel_vit_cfg())
    assert _attention_types(vit) == {UnbindMultiheadAttention}
    from mmssl.models.backbones.d2v2_vit import D2V2Block
    block = D2V2Block(32, 4, 64)
    assert _attention_types(block) == {UnbindMultiheadAttention}
