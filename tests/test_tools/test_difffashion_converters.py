# Copyright (c) mmssl contributors. All rights reserved.
"""DINO/timm ViT -> mmpretrain converter: reload and compare features."""
import pytest
import torch


@pytest.fixture(scope='module')
def dino_tool(load_tool_module):
    return load_tool_module('model_converters/dino_vit_to_mmpretrain.py')


def test_timm_vit_small_to_mmpretrain_same_features(dino_tool, tmp_path):
    timm = pytest.importorskip('timm')
    from mmpretrain.models import VisionTransformer
    torch.manual_seed(0)
    src = timm.create_model('vit_small_patch16_224', pretrained=False)
    src.eval()
    # DINO-style training checkpoint: prefixed keys under 'teacher'
    torch.save(
        dict(teacher={
            f'module.backbone.{k}': v
            for k, v in src.state_dict().items()
        }), tmp_path / 'dino.pth')
    dst = tmp_path / 'out.pth'
    assert dino_tool.main(
        [str(tmp_path / 'dino.pth'),
         str(dst), '--key', 'teacher']) == 0
    ckpt = torch.load(dst, weights_only=True)
    cfg = dict(ckpt['meta']['vit_cfg'])
    assert cfg['patch_size'] == 16 and cfg['img_size'] == 224
    cfg.pop('type')
    vit = VisionTransformer(**cfg)
    missing, unexpected = vit.load_state_dict(ckpt['state_dict'], strict=False)
    assert not missing and not unexpected
    vit.eval()
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        ref = src.forward_features(x)
        out = vit(x)[-1]
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-4)


def test_dino_converter_errors(dino_tool, tmp_path, capsys):
    assert dino_tool.main(
        [str(tmp_path / 'none.pth'),
         str(tmp_path / 'o.pth')]) == 2
    err = capsys.readouterr().err
    assert 'dl.fbaipublicfiles.com/dino' in err
    torch.save({'conv1.weight': torch.zeros(1)}, tmp_path / 'r.pth')
    assert dino_tool.main([str(tmp_path / 'r.pth'),
                           str(tmp_path / 'o.pth')]) == 2
    assert 'not a timm/DINO ViT' in capsys.readouterr().err
    assert not (tmp_path / 'o.pth').exists()


# ---------------------------------------------------------------------------
# guided-diffusion -> diffusers
# ---------------------------------------------------------------------------
TINY_GD = dict(
    image_size=16,
    in_channels=3,
    model_channels=32,
    out_channels=6,
    num_res_blocks=1,
    attention_resolutions=(2, ),
    channel_mult=(1, 2),
    num_head_channels=16,
    num_classes=4)


@pytest.fixture(scope='module')
def gd_tool(load_tool_module):
    return load_tool_module(
        'model_converters/guided_diffusion_to_diffusers.py')


def _random_gd(gd_tool, cfg):
    g = torch.Generator().manual_seed(0)
    return {
        k: torch.randn(s, generator=g) * 0.2
        for k, s in gd_tool.guided_diffusion_shapes(cfg).items()
    }


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


def test_guided_diffusion_tiny_layout_loads_and_matches(gd_tool, tmp_path):
    import math

    from diffusers import UNet2DModel
    from mmpretrain.models import VisionTransformer
    sd = _random_gd(gd_tool, TINY_GD)
    torch.save(sd, tmp_path / 'gd.pt')
    unet = UNet2DModel(**gd_tool.diffusers_config(TINY_GD))
    conv = gd_tool.convert_guided_diffusion(sd, TINY_GD)
    unet.load_state_dict(conv, strict=True)
    unet.eval()
    # attention: legacy (heads x [q, k, v]) order de-interleaved exactly
    x = torch.randn(2, 64, 8, 8)
    with torch.no_grad():
        ref = _legacy_attention(x, sd, 'input_blocks.3.1', heads=4)
        out = unet.down_blocks[1].attentions[0](x)
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
    # the tool writes a ClassCondDDPM checkpoint
    assert gd_tool.main(
        [str(tmp_path / 'gd.pt'),
         str(tmp_path / 'o.pth'), '--arch', 'tiny']) == 2  # unknown arch
    gd_tool.ARCHS['tiny-test'] = TINY_GD
    try:
        assert gd_tool.main([
            str(tmp_path / 'gd.pt'),
            str(tmp_path / 'o.pth'), '--arch', 'tiny-test'
        ]) == 0
    finally:
        gd_tool.ARCHS.pop('tiny-test')
    # the converted checkpoint carries its config and runs DiffFashion
    # with the learned-range variance (6 output channels)
    from mmssl.apis import DiffFashion, load_diffusion_model
    from mmssl.models.diffusion import DiffFashionEditor
    model = load_diffusion_model(None, str(tmp_path / 'o.pth'))
    assert model.unet.config.out_channels == 6
    vit = VisionTransformer(
        arch=dict(
            embed_dims=32, num_layers=1, num_heads=2, feedforward_channels=64),
        img_size=16,
        patch_size=4)
    editor = DiffFashionEditor(
        diffusion=model,
        vit=vit,
        garment_label=0,
        schedule=dict(num_steps=5, resample=1),
        mask_generator=dict(
            type='mmssl.LabelContrastMaskGenerator', label_sets=[[1, 2]]))
    assert editor.vit_img_size == 16
    g = torch.rand(1, 3, 16, 16) * 2 - 1
    out = DiffFashion(editor)(g, g.flip(-1), use_mask=False)
    assert torch.isfinite(out['result']).all()


def test_guided_diffusion_imagenet256_layout_on_meta(gd_tool):
    from diffusers import UNet2DModel
    cfg = gd_tool.ARCHS['imagenet256-cond']
    shapes = gd_tool.guided_diffusion_shapes(cfg)
    sd = {k: torch.empty(s, device='meta') for k, s in shapes.items()}
    with torch.device('meta'):
        unet = UNet2DModel(**gd_tool.diffusers_config(cfg))
    ref = unet.state_dict()
    conv = gd_tool.convert_guided_diffusion(sd, cfg)
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


def test_guided_diffusion_errors(gd_tool, tmp_path, capsys):
    assert gd_tool.main([str(tmp_path / 'none.pt'),
                         str(tmp_path / 'o.pth')]) == 2
    assert '256x256_diffusion.pt' in capsys.readouterr().err
    sd = _random_gd(gd_tool, TINY_GD)
    sd.pop('out.2.weight')
    with pytest.raises(KeyError, match='1 missing'):
        gd_tool.convert_guided_diffusion(sd, TINY_GD)
