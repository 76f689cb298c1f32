# Copyright (c) mmssl contributors. All rights reserved.
"""guided-diffusion UNet -> diffusers ``UNet2DModel``: layout and outputs."""
import math
import os.path as osp
import sys

import pytest
import torch

from mmssl.converters import (GUIDED_DIFFUSION_ARCHS, classcond_ddpm_cfg,
                              convert_guided_diffusion, diffusers_config,
                              guided_diffusion_shapes)

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from difffashion_helpers import TINY_GD, random_guided_diffusion  # noqa: E402


def _legacy_attention(x, sd, p, heads):
    """guided-diffusion AttentionBlock with QKVAttentionLegacy."""
    import torch.nn.functional as F
    B, C, H, W = x.shape
    h = F.group_norm(x, 32, sd[f'{p}.norm.weight'], sd[f'{p}.norm.bias'])
    qkv = F.conv1d(
        h.reshape(B, C, -1), sd[f'{p}.qkv.weight'], sd[f'{p}.qkv.bias'])
    ch = C // heads
    q, k, v = qkv.reshape(B * heads, 3 * ch, -1).split(ch, dim=1)
    scale = 1 / ch**0.25
    w = torch.softmax(torch.einsum('bct,bcs->bts', q * scale, k * scale), -1)
    a = torch.einsum('bts,bcs->bct', w, v).reshape(B, C, -1)
    out = F.conv1d(a, sd[f'{p}.proj_out.weight'], sd[f'{p}.proj_out.bias'])
    return x + out.reshape(B, C, H, W)


def _res_block(x, emb, sd, p):
    """guided-diffusion ResBlock, scale-shift norm, no up/down."""
    import torch.nn.functional as F
    h = F.silu(
        F.group_norm(x, 32, sd[f'{p}.in_layers.0.weight'],
                     sd[f'{p}.in_layers.0.bias']))
    h = F.conv2d(
        h,
        sd[f'{p}.in_layers.2.weight'],
        sd[f'{p}.in_layers.2.bias'],
        padding=1)
    e = F.linear(
        F.silu(emb), sd[f'{p}.emb_layers.1.weight'],
        sd[f'{p}.emb_layers.1.bias'])[..., None, None]
    scale, shift = e.chunk(2, dim=1)
    h = F.group_norm(h, 32, sd[f'{p}.out_layers.0.weight'],
                     sd[f'{p}.out_layers.0.bias']) * (1 + scale) + shift
    h = F.conv2d(
        F.silu(h),
        sd[f'{p}.out_layers.3.weight'],
        sd[f'{p}.out_layers.3.bias'],
        padding=1)
    skip = x
    if f'{p}.skip_connection.weight' in sd:
        skip = F.conv2d(x, sd[f'{p}.skip_connection.weight'],
                        sd[f'{p}.skip_connection.bias'])
    return skip + h


def test_tiny_layout_loads_and_matches():
    from diffusers import UNet2DModel
    sd = random_guided_diffusion()
    unet = UNet2DModel(**diffusers_config(TINY_GD))
    conv = convert_guided_diffusion(sd, TINY_GD)
    unet.load_state_dict(conv, strict=True)
    unet.eval()
    # attention: legacy (heads x [q, k, v]) order de-interleaved exactly
    x = torch.randn(2, 64, 8, 8)
    with torch.no_grad():
        ref = _legacy_attention(x, sd, 'input_blocks.3.1', heads=4)
        out = unet.down_blocks[1].attentions[0](x)
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-4)
    # the mid-block attention keeps guided-diffusion's GroupNorm of 32
    with torch.no_grad():
        ref = _legacy_attention(x, sd, 'middle_block.1', heads=4)
        out = unet.mid_block.attentions[0](x)
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-4)
    # ResBlock with scale-shift norm and a 1x1 skip
    x, emb = torch.randn(2, 32, 8, 8), torch.randn(2, 128)
    with torch.no_grad():
        ref = _res_block(x, emb, sd, 'input_blocks.3.0')
        out = unet.down_blocks[1].resnets[0](x, emb)
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-4)
    # timestep embedding: guided-diffusion's [cos, sin] with 10000^(-i/half)
    t = torch.tensor([0, 17, 999])
    half = 16
    freqs = torch.exp(-math.log(10000) * torch.arange(half) / half)
    args = t[:, None].float() * freqs[None]
    gd_emb = torch.cat([torch.cos(args), torch.sin(args)], -1)
    torch.testing.assert_close(unet.time_proj(t), gd_emb, atol=1e-5, rtol=1e-5)


def test_classcond_ddpm_cfg_builds_the_converted_model():
    from mmssl.registry import MODELS
    cfg = classcond_ddpm_cfg(TINY_GD)
    assert cfg['unet'] == diffusers_config(TINY_GD)
    # guided-diffusion's linear schedule of 1000 steps
    assert cfg['scheduler'] == dict(
        num_train_timesteps=1000,
        beta_schedule='linear',
        beta_start=1e-4,
        beta_end=0.02)
    model = MODELS.build(cfg)
    conv = convert_guided_diffusion(random_guided_diffusion(), TINY_GD)
    model.load_state_dict({f'unet.{k}': v for k, v in conv.items()})
    betas = model.scheduler.betas
    assert len(betas) == 1000
    torch.testing.assert_close(betas[[0, -1]], torch.tensor([1e-4, 0.02]))


def test_imagenet256_layout_on_meta():
    from diffusers import UNet2DModel
    cfg = GUIDED_DIFFUSION_ARCHS['imagenet256-cond']
    shapes = guided_diffusion_shapes(cfg)
    sd = {k: torch.empty(s, device='meta') for k, s in shapes.items()}
    with torch.device('meta'):
        unet = UNet2DModel(**diffusers_config(cfg))
    ref = unet.state_dict()
    conv = convert_guided_diffusion(sd, cfg)
    assert set(conv) == set(ref)
    assert all(conv[k].shape == ref[k].shape for k in ref)
    # ADM ImageNet 256 (conditional) has about 554 M parameters
    assert abs(sum(v.numel() for v in sd.values()) / 1e6 - 554) < 1
    assert shapes['label_emb.weight'] == (1000, 1024)
    # down ResBlock after level 0, attention at 8 px, up ResBlocks after an
    # attention level (index 2) and after a plain level (index 1)
    for key in ('input_blocks.3.0.in_layers.0.weight',
                'input_blocks.17.1.qkv.weight',
                'output_blocks.2.2.in_layers.0.weight',
                'output_blocks.14.1.in_layers.0.weight',
                'middle_block.1.proj_out.weight'):
        assert key in shapes, key
    assert len(shapes) == 567
    # the published model: 256 px RGB in, 6 channels out (eps and the
    # learned variance), 64-channel attention heads
    assert shapes['input_blocks.0.0.weight'] == (256, 3, 3, 3)
    assert shapes['out.2.weight'] == (6, 256, 3, 3)
    unet_cfg = diffusers_config(cfg)
    assert (unet_cfg['sample_size'], unet_cfg['attention_head_dim']) == \
        (256, 64)


def test_layout_errors_name_the_keys():
    sd = random_guided_diffusion()
    sd.pop('out.2.weight')
    with pytest.raises(KeyError, match=r"1 missing \['out.2.weight'\]"):
        convert_guided_diffusion(sd, TINY_GD)
    sd = random_guided_diffusion()
    sd['extra.weight'] = torch.zeros(1)
    with pytest.raises(KeyError, match=r"1 unexpected \['extra.weight'\]"):
        convert_guided_diffusion(sd, TINY_GD)
    sd = random_guided_diffusion()
    sd['out.2.bias'] = torch.zeros(7)
    with pytest.raises(KeyError, match=r"1 of another shape \['out.2.bias'\]"):
        convert_guided_diffusion(sd, TINY_GD)
