# Copyright (c) mmssl contributors. All rights reserved.
"""The DiffFashion entry points: the inferencer from files, the weight
loaders and their errors, image reading, and the layering of the code."""
import ast
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from mmssl.apis import (DiffFashion, MaskError, WeightFileError,
                        fashion_metrics, load_diffusion_model,
                        load_fashion_image, load_vit)
from mmssl.testing.checkpoints import save_as_backbone

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from difffashion_helpers import (BoxStubUNet, build_tiny, images, make_editor,
                                 tiny_ddpm_cfg, tiny_vit_cfg)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@pytest.fixture(scope='module')
def tiny():
    return build_tiny(16)


@pytest.fixture
def files(tmp_path, tiny):
    ddpm, vit = tiny
    with open(tmp_path / 'ddpm.py', 'w') as f:
        f.write(f'model = {tiny_ddpm_cfg(16)!r}\n')
    with open(tmp_path / 'vit.py', 'w') as f:
        f.write(f'model = dict(backbone={tiny_vit_cfg(16)!r})\n')
    torch.save(dict(state_dict=ddpm.state_dict()), tmp_path / 'ddpm.pth')
    save_as_backbone(vit, str(tmp_path / 'vit.pth'))
    garment, reference = images()
    for name, img in (('garment.png', garment), ('reference.png', reference)):
        arr = ((img[0].permute(1, 2, 0) + 1) * 127.5).round().byte().numpy()
        Image.fromarray(arr).save(tmp_path / name)
    return tmp_path


def test_inferencer_from_files_equals_the_editor(files, tiny):
    pipe = DiffFashion.from_files(
        str(files / 'ddpm.pth'),
        str(files / 'vit.pth'),
        config=str(files / 'ddpm.py'),
        vit_config=str(files / 'vit.py'),
        garment_label=0,
        schedule=dict(num_steps=5, resample=1),
        mask_generator=dict(
            type='mmssl.LabelContrastMaskGenerator', label_sets=[[1, 2], [3]]))
    assert pipe.size == 16 and pipe.model.vit_img_size == 16
    calls = []
    out = pipe(
        str(files / 'garment.png'),
        str(files / 'reference.png'),
        seed=0,
        progress=lambda: calls.append(1))
    assert len(calls) == pipe.num_model_steps()
    g = load_fashion_image(str(files / 'garment.png'), 16)
    r = load_fashion_image(str(files / 'reference.png'), 16)
    torch.testing.assert_close(out['garment'], g)
    ref = pipe.model.edit(g, r, seed=0)
    torch.testing.assert_close(out['result'], ref['result'])
    # a given mask file (white = garment), then the scores
    mask = np.zeros((16, 16), np.uint8)
    mask[4:12, 4:12] = 255
    Image.fromarray(mask).save(files / 'mask.png')
    out = pipe(g, r, mask=str(files / 'mask.png'), seed=0)
    assert out['mask'].sum() == 64 and 'score' not in out
    scores = pipe.metrics(out, str(files / 'mask.png'))
    assert scores['mask_iou'] == 1.0
    assert set(scores) >= {
        'structure_selfsim', 'appearance_cls', 'background_l1',
        'structure_selfsim_fg'
    }
    with pytest.raises(MaskError):
        pipe(g, r, mask=torch.zeros(1, 1, 16, 16))


def test_image_loading_conversions_and_errors(tmp_path):
    rgb = np.random.RandomState(0).randint(0, 255, (40, 20, 3), np.uint8)
    Image.fromarray(rgb).save(tmp_path / 'rgb.png')
    Image.fromarray(rgb[..., 0]).save(tmp_path / 'gray.png')
    rgba = np.concatenate([rgb, np.zeros((40, 20, 1), np.uint8)], -1)
    Image.fromarray(rgba).save(tmp_path / 'rgba.png')
    (tmp_path / 'not.png').write_text('not an image')
    Image.fromarray(rgb[:4, :4]).save(tmp_path / 'tiny.png')
    x = load_fashion_image(str(tmp_path / 'rgb.png'), 16)
    assert x.shape == (1, 3, 16, 16) and x.min() >= -1 and x.max() <= 1
    g = load_fashion_image(str(tmp_path / 'gray.png'), 16)
    assert torch.equal(g[:, 0], g[:, 1]) and torch.equal(g[:, 1], g[:, 2])
    # fully transparent -> white
    a = load_fashion_image(str(tmp_path / 'rgba.png'), 16)
    torch.testing.assert_close(a, torch.ones_like(a))
    with pytest.raises(ValueError, match='not a readable image'):
        load_fashion_image(str(tmp_path / 'not.png'), 16)
    with pytest.raises(ValueError, match='too small'):
        load_fashion_image(str(tmp_path / 'tiny.png'), 16)
    with pytest.raises(FileNotFoundError):
        load_fashion_image(str(tmp_path / 'missing.png'), 16)


def test_16bit_grayscale_is_scaled_not_clipped_to_white(tmp_path):
    gray8 = np.random.RandomState(1).randint(0, 256, (24, 24), np.uint8)
    Image.fromarray(gray8).save(tmp_path / 'g8.png')
    Image.fromarray(gray8.astype(np.uint16) * 257).save(tmp_path / 'g16.png')
    assert Image.open(tmp_path / 'g16.png').mode.startswith('I')
    a = load_fashion_image(str(tmp_path / 'g8.png'), 16)
    b = load_fashion_image(str(tmp_path / 'g16.png'), 16)
    torch.testing.assert_close(a, b)
    assert b.mean() < 0.5  # not an all-white garment
    Image.fromarray(np.ones((16, 16), np.float32)).save(tmp_path / 'f.tiff')
    with pytest.raises(ValueError, match='floating-point'):
        load_fashion_image(str(tmp_path / 'f.tiff'), 16)


def test_missing_weights_name_where_to_get_them(tmp_path):
    with pytest.raises(WeightFileError, match='guided-diffusion'):
        load_diffusion_model(
            'configs/difffashion/'
            'ddpm_unet-tiny_1xb64-10e_embedded32.py',
            str(tmp_path / 'none.pth'))
    with pytest.raises(WeightFileError, match='dino'):
        load_vit(None, str(tmp_path / 'none.pth'))


def test_vit_weights_of_another_architecture_are_named(files):
    # the tiny ViT's weights without its config: the default DINO ViT-B/8
    # is built and refused with the keys, the shapes and the fix
    with pytest.raises(ValueError, match=r'--vit-config') as err:
        load_vit(None, str(files / 'vit.pth'))
    assert 'pos_embed' in str(err.value) and 'ViT-B/8' in str(err.value)
    # DINO ViT-B/8 at 224 px: 28 x 28 patches + [CLS] of 768 channels
    assert '(1, 785, 768) in the model' in str(err.value)
    vit = load_vit(str(files / 'vit.py'), str(files / 'vit.pth'))
    assert vit.img_size_hint == 16


def test_load_diffusion_model_from_checkpoint_config(tiny, tmp_path):
    from mmengine.config import Config
    ddpm, _ = tiny
    text = Config(dict(model=tiny_ddpm_cfg(16))).pretty_text
    torch.save(
        dict(meta=dict(cfg=text), state_dict=ddpm.state_dict()),
        tmp_path / 'runner.pth')
    model = load_diffusion_model(None, str(tmp_path / 'runner.pth'))
    for k, v in ddpm.state_dict().items():
        assert torch.equal(model.state_dict()[k], v)
    torch.save(dict(state_dict=ddpm.state_dict()), tmp_path / 'bare.pth')
    with pytest.raises(ValueError, match='--config'):
        load_diffusion_model(None, str(tmp_path / 'bare.pth'))
    partial = dict(ddpm.state_dict())
    partial.pop('unet.conv_in.weight')
    torch.save(
        dict(meta=dict(cfg=text), state_dict=partial), tmp_path / 'part.pth')
    with pytest.raises(
            ValueError,
            match=r'(?s)part.pth do not fit .*stored in the checkpoint'
            r'.*--config.*unet.conv_in.weight'):
        load_diffusion_model(None, str(tmp_path / 'part.pth'))


def test_fashion_metrics_with_the_guidance_vit(tiny):
    _, vit = tiny
    editor = make_editor(BoxStubUNet(), vit)
    garment, reference = images()
    mask = torch.zeros(1, 1, 16, 16)
    mask[..., 4:12, 4:12] = 1
    same = fashion_metrics(garment, garment, reference, mask, editor.extractor)
    assert same['structure_selfsim'] < 1e-10 and same['background_l1'] == 0
    assert same['mask_fraction'] == 0.25
    other = fashion_metrics(reference, garment, reference, None,
                            editor.extractor)
    assert other['appearance_cls'] < 1e-10
    assert other['structure_selfsim'] > 0
    assert other['background_l1'] != other['background_l1']  # nan
    half = mask.clone()
    half[..., 8:] = 0
    scored = fashion_metrics(
        garment, garment, reference, mask, editor.extractor, true_mask=half)
    assert scored['mask_iou'] == 0.5
    # structure inside the silhouette: the top-left 2x2 of the 4x4 patches
    true = torch.zeros(1, 1, 16, 16)
    true[..., :8, :8] = 1
    edited = garment.clone()
    edited[..., 8:, :] = reference[..., 8:, :]
    s = fashion_metrics(
        edited, garment, reference, None, editor.extractor, true_mask=true)
    assert s['structure_selfsim'] > 0
    assert s['structure_selfsim_fg'] < s['structure_selfsim']
    assert s['background_l1'] > 0 and s['mask_iou'] == 0.25


# -- layering ---------------------------------------------------------------
DIFFFASHION_FILES = [
    'mmssl/models/diffusion', 'mmssl/datasets/fashion_pairs.py',
    'mmssl/evaluation/metrics/fashion_metric.py',
    'mmssl/evaluation/functional/fashion.py', 'mmssl/utils/image_io.py'
]


def _imports(path):
    tree = ast.parse(open(path).read())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            yield node.module
        elif isinstance(node, ast.Import):
            yield from (a.name for a in node.names)


def test_difffashion_below_apis_does_not_import_apis():
    paths = []
    for rel in DIFFFASHION_FILES:
        path = osp.join(ROOT, rel)
        if osp.isdir(path):
            paths += [
                osp.join(path, f) for f in sorted(os.listdir(path))
                if f.endswith('.py')
            ]
        else:
            paths.append(path)
    assert len(paths) > 8
    for path in paths:
        bad = [m for m in _imports(path) if m.startswith('mmssl.apis')]
        assert not bad, (path, bad)
        assert sum(1 for _ in open(path)) <= 600, path


def test_nothing_outside_models_diffusion_needs_diffusers():
    code = ('import sys; sys.modules["diffusers"] = None\n'
            'import mmssl.apis, mmssl.datasets, mmssl.evaluation\n'
            'import mmssl.models\n'
            'from mmssl.apis import DiffFashion, load_fashion_image\n'
            'from mmssl.evaluation.functional import fashion_metrics\n'
            'from mmssl.models.diffusion import require_diffusers\n'
            'try:\n'
            '    require_diffusers()\n'
            'except ImportError as err:\n'
            '    print("needs diffusers:", err)\n')
    res = subprocess.run([sys.executable, '-c', code],
                         cwd=ROOT,
                         capture_output=True,
                         text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert 'needs diffusers' in res.stdout
