# Copyright (c) mmssl contributors. All rights reserved.
"""tools/model_converters: extract_backbone.py and mae_official_to_mmssl.py.

convert_backbone.py is tested in test_convert_backbone.py.
"""
import argparse
import copy

import pytest
import torch
import torch.nn.functional as F
from mmengine.logging import MessageHub
from mmengine.registry import MODELS, init_default_scope

from mmssl.utils import safe_torch_load

EMBED, DEPTH, HEADS, MLP = 32, 2, 2, 64
DEC_EMBED, DEC_DEPTH, DEC_HEADS, DEC_MLP = 16, 1, 2, 64
PATCH, IMG = 8, 32
NUM_PATCHES = (IMG // PATCH)**2


@pytest.fixture(scope='module')
def extract(load_tool_module):
    return load_tool_module('model_converters/extract_backbone.py')


@pytest.fixture(scope='module')
def mae_conv(load_tool_module):
    return load_tool_module('model_converters/mae_official_to_mmssl.py')


def _build(cfg):
    init_default_scope('mmpretrain')
    return MODELS.build(copy.deepcopy(cfg))


def _randomize(model, seed=0):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.state_dict().values():
            param.copy_(torch.randn(param.shape, generator=gen))
    return model


# --------------------------------------------------------------------------
# extract_backbone.py
# --------------------------------------------------------------------------
@pytest.fixture
def pretrain_ckpt(tmp_path, tiny_mae_model):
    """A runner-style MAE checkpoint with training state and a teacher."""
    mae = _randomize(_build(tiny_mae_model))
    state_dict = mae.state_dict()
    for key, value in list(state_dict.items()):
        if key.startswith('backbone.'):  # an EMA teacher copy
            state_dict['teacher.' + key] = value + 1
    hub = MessageHub.get_instance('extract_backbone_test')
    hub.update_scalar('train/loss', 0.5)
    path = tmp_path / 'pretrain.pth'
    torch.save(
        dict(
            meta=dict(epoch=3, iter=30, mmengine_version='0.10.7'),
            state_dict=state_dict,
            message_hub=hub.state_dict(),
            optimizer=dict(state={}, param_groups=[dict(lr=0.1)])), path)
    return str(path), mae


def test_extract_backbone_round_trip(extract, pretrain_ckpt, tmp_path,
                                     tiny_mae_model, tiny_vit_backbone,
                                     capsys):
    src, mae = pretrain_ckpt
    dst = str(tmp_path / 'backbone.pth')
    assert extract.main([src, dst]) == 0
    printed = capsys.readouterr().out
    assert "prefix='backbone.'" in printed and 'dropped 20 neck.*' in printed
    out = safe_torch_load(dst)
    assert set(out) == {'meta', 'state_dict'}
    meta = out['meta']
    assert meta['source'].endswith('pretrain.pth')
    assert meta['prefix'] == 'backbone.' and meta['target'] == 'mmpretrain'
    assert meta['arch'] == 'vit'
    assert meta['source_epoch'] == 3 and meta['source_iter'] == 30
    assert meta['dropped'] == {'neck': 20, 'teacher': 30}
    state_dict = out['state_dict']
    expected = {
        k: v
        for k, v in mae.state_dict().items() if k.startswith('backbone.')
    }
    assert set(state_dict) == set(expected)
    for key, value in expected.items():  # the student, not the teacher
        assert torch.equal(state_dict[key], value), key

    # loads into MAEViT and VisionTransformer with no missing key
    bare = {k[len('backbone.'):]: v for k, v in state_dict.items()}
    maevit = _build(tiny_mae_model['backbone'])
    maevit.load_state_dict(bare, strict=True)
    vit = _build(tiny_vit_backbone)
    vit.load_state_dict(bare, strict=True)
    # a fine-tuning ViT (avg-pooled) only adds its new ln2
    ft = _build(
        dict(tiny_vit_backbone, out_type='avg_featmap', final_norm=False))
    result = ft.load_state_dict(bare, strict=False)
    assert sorted(result.missing_keys) == ['ln2.bias', 'ln2.weight']
    assert sorted(result.unexpected_keys) == ['ln1.bias', 'ln1.weight']

    # the documented init_cfg form loads it
    init = _build(
        dict(
            tiny_vit_backbone,
            init_cfg=dict(
                type='Pretrained', prefix='backbone.', checkpoint=dst)))
    init.init_weights()
    assert torch.equal(init.layers[1].attn.qkv.weight,
                       expected['backbone.layers.1.attn.qkv.weight'])


def test_extract_backbone_other_prefix_and_errors(extract, pretrain_ckpt,
                                                  tmp_path, capsys):
    src, mae = pretrain_ckpt
    dst = str(tmp_path / 'neck.pth')
    # weights of no known architecture are copied (under 'backbone.')
    assert extract.main([src, dst, '--prefix', 'neck']) == 0
    out = safe_torch_load(dst)
    assert out['meta']['arch'] == 'unknown'
    assert torch.equal(out['state_dict']['backbone.mask_token'],
                       mae.neck.mask_token)
    # the teacher copy is a ViT too
    assert extract.main([src, dst, '--prefix', 'teacher.backbone.']) == 0
    out = safe_torch_load(dst)['state_dict']
    assert torch.equal(out['backbone.cls_token'], mae.backbone.cls_token + 1)
    capsys.readouterr()
    assert extract.main([src, dst, '--prefix', 'encoder.']) == 2
    err = capsys.readouterr().err
    assert "no key starts with 'encoder.'" in err
    assert "'backbone.'" in err and "'teacher.'" in err
    assert extract.main([str(tmp_path / 'missing.pth'), dst]) == 2
    assert 'does not exist' in capsys.readouterr().err


def test_extract_backbone_mmseg_layout(extract, pretrain_ckpt, tmp_path):
    src, mae = pretrain_ckpt
    dst = str(tmp_path / 'seg.pth')
    assert extract.main([src, dst, '--target', 'mmseg']) == 0
    # mmseg's VisionTransformer ignores prefix=: its keys carry none
    state_dict = safe_torch_load(dst)['state_dict']
    assert torch.equal(state_dict['layers.0.attn.attn.in_proj_weight'],
                       mae.backbone.layers[0].attn.qkv.weight)
    assert torch.equal(state_dict['layers.1.attn.attn.out_proj.bias'],
                       mae.backbone.layers[1].attn.proj.bias)
    assert not any('.qkv.' in k or 'attn.proj' in k for k in state_dict)
    from mmseg.models.backbones import VisionTransformer
    seg_vit = VisionTransformer(
        img_size=IMG,
        patch_size=PATCH,
        embed_dims=EMBED,
        num_layers=DEPTH,
        num_heads=HEADS,
        mlp_ratio=MLP // EMBED,
        patch_bias=True,  # MAE / mmpretrain patch embeddings have a bias
        final_norm=True)
    result = seg_vit.load_state_dict(state_dict, strict=False)
    assert not result.missing_keys and not result.unexpected_keys


# --------------------------------------------------------------------------
# mae_official_to_mmssl.py
# --------------------------------------------------------------------------
def _official_block(prefix, dim, mlp, gen):
    return {
        f'{prefix}.norm1.weight': torch.randn(dim, generator=gen),
        f'{prefix}.norm1.bias': torch.randn(dim, generator=gen),
        f'{prefix}.attn.qkv.weight': torch.randn(3 * dim, dim, generator=gen),
        f'{prefix}.attn.qkv.bias': torch.randn(3 * dim, generator=gen),
        f'{prefix}.attn.proj.weight': torch.randn(dim, dim, generator=gen),
        f'{prefix}.attn.proj.bias': torch.randn(dim, generator=gen),
        f'{prefix}.norm2.weight': torch.randn(dim, generator=gen),
        f'{prefix}.norm2.bias': torch.randn(dim, generator=gen),
        f'{prefix}.mlp.fc1.weight': torch.randn(mlp, dim, generator=gen),
        f'{prefix}.mlp.fc1.bias': torch.randn(mlp, generator=gen),
        f'{prefix}.mlp.fc2.weight': torch.randn(dim, mlp, generator=gen),
        f'{prefix}.mlp.fc2.bias': torch.randn(dim, generator=gen),
    }


def official_state_dict(full=True, seed=0):
    """A random state dict with facebookresearch/mae's names and shapes."""
    gen = torch.Generator().manual_seed(seed)
    sd = {
        'cls_token':
        torch.randn(1, 1, EMBED, generator=gen),
        'pos_embed':
        torch.randn(1, NUM_PATCHES + 1, EMBED, generator=gen),
        'patch_embed.proj.weight':
        torch.randn(EMBED, 3, PATCH, PATCH, generator=gen),
        'patch_embed.proj.bias':
        torch.randn(EMBED, generator=gen),
    }
    for i in range(DEPTH):
        sd.update(_official_block(f'blocks.{i}', EMBED, MLP, gen))
    sd['norm.weight'] = torch.randn(EMBED, generator=gen)
    sd['norm.bias'] = torch.randn(EMBED, generator=gen)
    if full:
        sd['mask_token'] = torch.randn(1, 1, DEC_EMBED, generator=gen)
        sd['decoder_embed.weight'] = torch.randn(
            DEC_EMBED, EMBED, generator=gen)
        sd['decoder_embed.bias'] = torch.randn(DEC_EMBED, generator=gen)
        sd['decoder_pos_embed'] = torch.randn(
            1, NUM_PATCHES + 1, DEC_EMBED, generator=gen)
        for i in range(DEC_DEPTH):
            sd.update(
                _official_block(f'decoder_blocks.{i}', DEC_EMBED, DEC_MLP,
                                gen))
        sd['decoder_norm.weight'] = torch.randn(DEC_EMBED, generator=gen)
        sd['decoder_norm.bias'] = torch.randn(DEC_EMBED, generator=gen)
        sd['decoder_pred.weight'] = torch.randn(
            PATCH * PATCH * 3, DEC_EMBED, generator=gen)
        sd['decoder_pred.bias'] = torch.randn(PATCH * PATCH * 3, generator=gen)
    return sd


def reference_block(x, sd, prefix, heads):
    """timm's ``Block`` (as used by the official MAE), written out."""
    dim = x.shape[-1]
    B, N, C = x.shape
    h = F.layer_norm(x, (dim, ), sd[f'{prefix}.norm1.weight'],
                     sd[f'{prefix}.norm1.bias'], 1e-6)
    qkv = F.linear(h, sd[f'{prefix}.attn.qkv.weight'],
                   sd[f'{prefix}.attn.qkv.bias'])
    q, k, v = qkv.reshape(B, N, 3, heads, C // heads).permute(2, 0, 3, 1, 4)
    attn = ((q @ k.transpose(-2, -1)) * (C // heads)**-0.5).softmax(dim=-1)
    h = (attn @ v).transpose(1, 2).reshape(B, N, C)
    x = x + F.linear(h, sd[f'{prefix}.attn.proj.weight'],
                     sd[f'{prefix}.attn.proj.bias'])
    h = F.layer_norm(x, (dim, ), sd[f'{prefix}.norm2.weight'],
                     sd[f'{prefix}.norm2.bias'], 1e-6)
    h = F.linear(
        F.gelu(
            F.linear(h, sd[f'{prefix}.mlp.fc1.weight'],
                     sd[f'{prefix}.mlp.fc1.bias'])),
        sd[f'{prefix}.mlp.fc2.weight'], sd[f'{prefix}.mlp.fc2.bias'])
    return x + h


def reference_encoder(img, sd):
    """The official ``forward_encoder`` without masking."""
    x = F.conv2d(
        img,
        sd['patch_embed.proj.weight'],
        sd['patch_embed.proj.bias'],
        stride=PATCH).flatten(2).transpose(1, 2)
    x = x + sd['pos_embed'][:, 1:]
    cls = (sd['cls_token'] + sd['pos_embed'][:, :1]).expand(len(x), -1, -1)
    x = torch.cat([cls, x], dim=1)
    for i in range(DEPTH):
        x = reference_block(x, sd, f'blocks.{i}', HEADS)
    return F.layer_norm(x, (EMBED, ), sd['norm.weight'], sd['norm.bias'], 1e-6)


def test_mae_key_mapping_matches_mmpretrain(mae_conv, tiny_mae_model):
    official = official_state_dict()
    converted = mae_conv.convert_official_mae(official)
    mae = _build(tiny_mae_model)
    assert set(converted) == set(mae.state_dict())
    assert converted['neck.ln1.weight'] is official['decoder_norm.weight']
    assert converted['backbone.ln1.bias'] is official['norm.bias']
    assert converted['backbone.layers.1.ffn.layers.0.0.weight'] is \
        official['blocks.1.mlp.fc1.weight']
    assert converted['neck.decoder_blocks.0.ffn.layers.1.bias'] is \
        official['decoder_blocks.0.mlp.fc2.bias']
    assert mae_conv.convert_key('fc_norm.weight') == 'backbone.ln2.weight'
    assert mae_conv.convert_key('head.bias') == 'head.layers.head.bias'


def test_mae_converter_end_to_end(mae_conv, tiny_mae_model, tmp_path):
    official = official_state_dict()
    src = tmp_path / 'mae_official.pth'
    # main_pretrain.py also stores its argparse args
    torch.save(
        dict(model=official, epoch=799, args=argparse.Namespace(lr=1.5e-4)),
        src)
    dst = str(tmp_path / 'mae_mmssl.pth')
    assert mae_conv.main([str(src), dst]) == 0
    out = safe_torch_load(dst)
    assert out['meta']['source_layout'] == 'facebookresearch/mae'

    mae = _build(tiny_mae_model).eval()
    mae.load_state_dict(out['state_dict'], strict=True)
    loaded = mae.state_dict()
    for key, value in official.items():  # bit-identical, pos_embed included
        assert torch.equal(loaded[mae_conv.convert_key(key)], value), key

    torch.manual_seed(0)
    tokens = torch.randn(2, NUM_PATCHES + 1, EMBED)
    with torch.no_grad():
        ours = mae.backbone.layers[0](tokens)
        dec_tokens = torch.randn(2, NUM_PATCHES + 1, DEC_EMBED)
        ours_dec = mae.neck.decoder_blocks[0](dec_tokens)
        img = torch.randn(2, 3, IMG, IMG)
        ours_enc = mae.backbone(img, mask=None)[0]
    # random N(0, 1) weights give large activations: float32 round-off only
    tol = dict(rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(
        ours, reference_block(tokens, official, 'blocks.0', HEADS), **tol)
    torch.testing.assert_close(
        ours_dec,
        reference_block(dec_tokens, official, 'decoder_blocks.0', DEC_HEADS),
        **tol)
    torch.testing.assert_close(ours_enc, reference_encoder(img, official),
                               **tol)


def test_mae_converter_encoder_only_and_unknown_keys(mae_conv, tiny_mae_model,
                                                     tmp_path, capsys):
    encoder = official_state_dict(full=False)
    converted = mae_conv.convert_official_mae(encoder)
    assert all(k.startswith('backbone.') for k in converted)
    result = _build(tiny_mae_model).load_state_dict(converted, strict=False)
    assert all(k.startswith('neck.') for k in result.missing_keys)
    assert not result.unexpected_keys

    bad = dict(encoder, **{'blocks.0.attn.q_norm.weight': torch.ones(16)})
    with pytest.raises(ValueError, match='blocks.0.attn.q_norm.weight'):
        mae_conv.convert_official_mae(bad)
    src = tmp_path / 'bad.pth'
    torch.save(dict(model=bad), src)
    assert mae_conv.main([str(src), str(tmp_path / 'o.pth')]) == 2
    assert 'not in the official MAE layout' in capsys.readouterr().err
