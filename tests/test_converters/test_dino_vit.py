# Copyright (c) mmssl contributors. All rights reserved.
"""DINO / timm ViT -> mmpretrain ``VisionTransformer``: same features."""
import pytest
import torch

from mmssl.converters import convert_dino_vit, dino_vit_state

timm = pytest.importorskip('timm')


def _features_match(src, state_dict):
    """Convert, build from the returned config, load strictly, compare."""
    from mmpretrain.models import VisionTransformer
    state, vit_cfg = convert_dino_vit(state_dict)
    cfg = dict(vit_cfg)
    assert cfg.pop('type') == 'mmpretrain.VisionTransformer'
    vit = VisionTransformer(**cfg)
    vit.load_state_dict(state, strict=True)
    src.eval()
    vit.eval()
    x = torch.randn(1, 3, *src.patch_embed.img_size)
    with torch.no_grad():
        ref = src.forward_features(x)
        out = vit(x)[-1]
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-4)
    return vit_cfg


def test_dino_training_checkpoint_same_features():
    torch.manual_seed(0)
    src = timm.create_model('vit_small_patch16_224', pretrained=False)
    # a DINO training checkpoint: the teacher, keys prefixed by DDP and
    # the DINO wrapper; the classifier parts of timm are dropped
    ckpt = dict(
        student={},
        teacher={
            f'module.backbone.{k}': v
            for k, v in src.state_dict().items()
        })
    vit_cfg = _features_match(src, dino_vit_state(ckpt, 'teacher'))
    assert vit_cfg['arch'] == dict(
        embed_dims=384, num_layers=12, num_heads=6, feedforward_channels=1536)
    assert (vit_cfg['img_size'], vit_cfg['patch_size']) == (224, 16)
    assert vit_cfg['norm_cfg'] == dict(type='LN', eps=1e-6)
    assert 'qkv_bias' not in vit_cfg
    assert 'layer_scale_init_value' not in vit_cfg
    assert 'pre_norm' not in vit_cfg


def test_layer_scale_pre_norm_and_no_qkv_bias_load_strictly():
    torch.manual_seed(0)
    src = timm.create_model(
        'vit_tiny_patch16_224',
        pretrained=False,
        img_size=32,
        depth=2,
        init_values=0.5,
        qkv_bias=False,
        pre_norm=True)
    # non-trivial layer-scale values, so the mapping of ls1 / ls2 shows
    with torch.no_grad():
        for block in src.blocks:
            block.ls1.gamma.uniform_(0.2, 2.0)
            block.ls2.gamma.uniform_(0.2, 2.0)
        src.norm_pre.weight.uniform_(0.5, 1.5)
        src.norm_pre.bias.uniform_(-0.5, 0.5)
    vit_cfg = _features_match(src, src.state_dict())
    assert vit_cfg['qkv_bias'] is False
    assert vit_cfg['layer_scale_init_value'] > 0
    assert vit_cfg['pre_norm'] is True
    assert (vit_cfg['img_size'], vit_cfg['arch']['num_layers']) == (32, 2)


def test_dino_vit_state_unwraps():
    sd = {'cls_token': torch.zeros(1)}
    assert dino_vit_state(sd) is sd
    assert dino_vit_state(dict(state_dict=sd)) is sd
    assert dino_vit_state(dict(model=sd, epoch=3)) is sd
    assert dino_vit_state(dict(teacher=dict(model=sd)), 'teacher') is sd
    with pytest.raises(KeyError, match=r"no 'teacher' entry .*'student'"):
        dino_vit_state(dict(student=sd), 'teacher')
    many = {f'k{i}': sd for i in range(10)}
    with pytest.raises(KeyError) as err:
        dino_vit_state(many, 'teacher')
    # the first eight keys, sorted
    assert err.value.args[0] == (
        "no 'teacher' entry (has ['k0', 'k1', 'k2', 'k3', 'k4', 'k5', 'k6', "
        "'k7'])")
    with pytest.raises(KeyError, match="no 'teacher' entry .*Tensor"):
        dino_vit_state(torch.zeros(1), 'teacher')


def test_distillation_token_is_refused():
    torch.manual_seed(0)
    src = timm.create_model(
        'deit_tiny_distilled_patch16_224',
        pretrained=False,
        img_size=32,
        depth=1)
    # its extra token and head left out, the position table still has
    # a place for the distillation token
    state = {
        k: v
        for k, v in src.state_dict().items()
        if not k.startswith(('dist_token', 'head_dist'))
    }
    with pytest.raises(ValueError, match='pos_embed holds 6 tokens'):
        convert_dino_vit(state)


def test_convert_dino_vit_errors():
    with pytest.raises(ValueError, match='not a timm/DINO ViT .*Tensor'):
        convert_dino_vit(torch.zeros(1))
    with pytest.raises(ValueError, match=r"unknown keys: \['conv1.weight'\]"):
        convert_dino_vit({'conv1.weight': torch.zeros(1)})
    # classifier parts alone are dropped, which leaves no ViT
    with pytest.raises(ValueError, match='not a timm/DINO ViT'):
        convert_dino_vit({'head.weight': torch.zeros(1)})
