# Copyright (c) mmssl contributors. All rights reserved.
"""The DiffFashion weight converters as tools: files in, checkpoints out.

The conversions themselves are tested in ``tests/test_converters``.
"""
import os.path as osp
import sys

import pytest
import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from difffashion_helpers import TINY_GD, random_guided_diffusion  # noqa: E402


@pytest.fixture(scope='module')
def dino_tool(load_tool_module):
    return load_tool_module('model_converters/dino_vit_to_mmpretrain.py')


@pytest.fixture(scope='module')
def gd_tool(load_tool_module):
    return load_tool_module(
        'model_converters/guided_diffusion_to_diffusers.py')


def test_dino_tool_writes_a_loadable_checkpoint(dino_tool, tmp_path, capsys):
    timm = pytest.importorskip('timm')
    from mmpretrain.models import VisionTransformer
    torch.manual_seed(0)
    src = timm.create_model(
        'vit_tiny_patch16_224', pretrained=False, img_size=32, depth=2)
    src.eval()
    # DINO-style training checkpoint: prefixed keys under 'teacher'
    torch.save(
        dict(teacher={
            f'module.backbone.{k}': v
            for k, v in src.state_dict().items()
        }), tmp_path / 'dino.pth')
    dst = tmp_path / 'out.pth'
    assert dino_tool.main([
        str(tmp_path / 'dino.pth'),
        str(dst), '--key', 'teacher', '--prefix', 'backbone.'
    ]) == 0
    assert f'-> {dst}' in capsys.readouterr().out
    ckpt = torch.load(dst, weights_only=True)
    assert ckpt['meta']['source'] == 'dino.pth'
    assert ckpt['meta']['converted_by'].endswith('dino_vit_to_mmpretrain.py')
    cfg = dict(ckpt['meta']['vit_cfg'])
    assert cfg['patch_size'] == 16 and cfg['img_size'] == 32
    cfg.pop('type')
    vit = VisionTransformer(**cfg)
    assert all(k.startswith('backbone.') for k in ckpt['state_dict'])
    vit.load_state_dict(
        {
            k[len('backbone.'):]: v
            for k, v in ckpt['state_dict'].items()
        },
        strict=True)
    vit.eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(
            vit(x)[-1], src.forward_features(x), atol=1e-4, rtol=1e-4)


def test_dino_tool_errors(dino_tool, tmp_path, capsys):
    out = tmp_path / 'o.pth'
    assert dino_tool.main([str(tmp_path / 'none.pth'), str(out)]) == 2
    assert 'dl.fbaipublicfiles.com/dino' in capsys.readouterr().err
    torch.save({'conv1.weight': torch.zeros(1)}, tmp_path / 'r.pth')
    assert dino_tool.main([str(tmp_path / 'r.pth'), str(out)]) == 2
    assert 'not a timm/DINO ViT' in capsys.readouterr().err
    assert dino_tool.main(
        [str(tmp_path / 'r.pth'),
         str(out), '--key', 'teacher']) == 2
    err = capsys.readouterr().err
    assert "r.pth: no 'teacher' entry (has ['conv1.weight'])" in err
    assert not out.exists()


def test_guided_diffusion_tool_checkpoint_runs_difffashion(gd_tool, tmp_path):
    from mmpretrain.models import VisionTransformer
    torch.save(random_guided_diffusion(), tmp_path / 'gd.pt')
    assert gd_tool.main(
        [str(tmp_path / 'gd.pt'),
         str(tmp_path / 'o.pth'), '--arch', 'tiny']) == 2  # unknown arch
    assert not (tmp_path / 'o.pth').exists()
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
    meta = torch.load(tmp_path / 'o.pth', weights_only=True)['meta']
    assert (meta['source'], meta['arch']) == ('gd.pt', 'tiny-test')
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


def test_guided_diffusion_tool_errors(gd_tool, tmp_path, capsys):
    out = tmp_path / 'o.pth'
    assert gd_tool.main([str(tmp_path / 'none.pt'), str(out)]) == 2
    assert '256x256_diffusion.pt' in capsys.readouterr().err
    torch.save(torch.zeros(1), tmp_path / 't.pt')
    assert gd_tool.main([str(tmp_path / 't.pt'), str(out)]) == 2
    assert 'holds a Tensor, not a state dict' in capsys.readouterr().err
    sd = random_guided_diffusion()
    sd.pop('out.2.weight')
    torch.save(dict(state_dict=sd), tmp_path / 'gd.pt')
    gd_tool.ARCHS['tiny-test'] = TINY_GD
    try:
        assert gd_tool.main(
            [str(tmp_path / 'gd.pt'),
             str(out), '--arch', 'tiny-test']) == 2
    finally:
        gd_tool.ARCHS.pop('tiny-test')
    assert 'gd.pt: the checkpoint does not fit the guided-diffusion layout: ' \
        "1 missing ['out.2.weight']" in capsys.readouterr().err
    assert not out.exists()
