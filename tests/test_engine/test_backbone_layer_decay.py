# Copyright (c) mmssl contributors. All rights reserved.
"""mmssl.BackboneLayerDecayOptimWrapperConstructor: depths from the model's
backbone, or from the model itself when it has them."""
import pytest
from mmengine.optim import build_optim_wrapper
from mmpretrain.models import VisionTransformer
from torch import nn

ARCH = dict(embed_dims=16, num_layers=2, num_heads=2, feedforward_channels=32)
OPTIM = dict(
    optimizer=dict(type='AdamW', lr=1., weight_decay=0.1),
    constructor='mmssl.BackboneLayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.5))


def _scales(model):
    wrapper = build_optim_wrapper(model, OPTIM)
    return {g['param_name']: g['lr'] for g in wrapper.optimizer.param_groups}


def test_depths_of_the_backbone_and_scale_1_outside_it():
    """A model without depths of its own (as mmseg's EncoderDecoder)."""
    model = nn.Module()
    model.backbone = VisionTransformer(arch=ARCH, img_size=32, patch_size=8)
    model.head = nn.Linear(16, 3)
    # D = 2 blocks + 2: the embedding 0.5**3, block i 0.5**(2 - i)
    lr = _scales(model)
    assert lr['backbone.patch_embed.projection.weight'] == 0.125
    assert lr['backbone.layers.0.attn.qkv.weight'] == 0.25
    assert lr['backbone.layers.1.attn.qkv.weight'] == 0.5
    assert lr['head.weight'] == 1.


def test_a_model_with_its_own_depths():
    lr = _scales(VisionTransformer(arch=ARCH, img_size=32, patch_size=8))
    assert lr['cls_token'] == 0.125 and lr['layers.1.ffn.layers.1.weight'] \
        == 0.5


def test_a_backbone_without_depths_is_named():
    model = nn.Module()
    model.backbone = nn.Linear(2, 2)
    with pytest.raises(TypeError, match='Module.backbone is Linear'):
        _scales(model)
