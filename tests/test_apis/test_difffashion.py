# Copyright (c) mmssl contributors. All rights reserved.
"""DiffFashion pipeline: mask, blending, guidance, end to end, bad input."""
import os.path as osp
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

import mmssl.apis.difffashion as df
from mmssl.apis import (DiffFashion, MaskError, WeightFileError,
                        load_diffusion_model, load_fashion_image, load_vit)
from mmssl.models.diffusion import (fashion_guidance_loss, noise_augment,
                                    predict_x0)

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from difffashion_helpers import build_tiny, fast_kwargs  # noqa: E402

BOX = (slice(4, 12), slice(2, 10))


class BoxStubUNet(nn.Module):
    """Noise estimate that depends on the label only inside ``BOX``."""

    def __init__(self, num_classes=4):
        super().__init__()
        self.config = SimpleNamespace(num_class_embeds=num_classes,
                                      sample_size=16)
        self.w = nn.Parameter(torch.tensor(0.1))

    def forward(self, x, t, class_labels):
        box = torch.zeros_like(x[:, :1])
        box[..., BOX[0], BOX[1]] = 1
        y = class_labels.view(-1, 1, 1, 1).to(x.dtype)
        return SimpleNamespace(sample=self.w * x + 0.5 * y * box)


@pytest.fixture(scope='module')
def tiny():
    return build_tiny(16)


def _images(seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(1, 3, 16, 16, generator=g) * 2 - 1,
            torch.rand(1, 3, 16, 16, generator=g) * 2 - 1)


def test_mask_shape_range_and_garment_box(tiny):
    _, vit = tiny
    pipe = DiffFashion(BoxStubUNet(), vit, **fast_kwargs())
    garment, _ = _images()
    out = pipe.make_mask(garment, torch.Generator().manual_seed(0))
    mask = out['mask']
    assert mask.shape == (1, 1, 16, 16)
    assert set(mask.unique().tolist()) <= {0.0, 1.0}
    expect = torch.zeros(16, 16)
    expect[BOX] = 1
    assert torch.equal(mask[0, 0], expect)
    assert out['score'].shape == (1, 16, 16)
    assert len(out['candidates']) == 2


def test_mask_from_random_model_and_empty_mask(tiny):
    ddpm, vit = tiny
    garment, _ = _images()
    pipe = DiffFashion(ddpm.unet, vit, **fast_kwargs())
    mask = pipe.make_mask(garment)['mask']
    assert mask.shape == (1, 1, 16, 16) and 0 < mask.mean() < 1
    pipe = DiffFashion(ddpm.unet, vit, **fast_kwargs(mask_threshold=50.))
    with pytest.raises(MaskError, match='empty'):
        pipe.make_mask(garment)
    with pytest.raises(MaskError):
        pipe(garment, garment, mask=torch.zeros(1, 1, 16, 16))


def test_blend_keeps_noised_garment_background(tiny, monkeypatch):
    ddpm, vit = tiny
    garment, reference = _images()
    mask = torch.zeros(1, 1, 16, 16)
    mask[..., 3:13, 3:13] = 1
    calls = []
    real = df.blend_background

    def spy(x, m, background):
        out = real(x, m, background)
        calls.append((out, background, m))
        return out

    monkeypatch.setattr(df, 'blend_background', spy)
    pipe = DiffFashion(ddpm.unet, vit, **fast_kwargs(num_steps=20))
    pipe.transfer(garment, reference, mask, torch.Generator().manual_seed(0))
    assert len(calls) == pipe.blend_steps > 0
    bg = mask.expand(1, 3, 16, 16) == 0
    for out, background, _ in calls:
        assert torch.equal(out[bg], background[bg])
    # the background is the garment noised to the step's timestep
    i = pipe.start - 1
    gen = torch.Generator().manual_seed(3)
    noise = torch.randn(garment.shape, generator=gen)
    noised = pipe.scheduler.add_noise(garment, noise,
                                      torch.tensor([pipe.t_at(i)]))
    gen = torch.Generator().manual_seed(3)
    torch.testing.assert_close(pipe.add_noise(garment, i, gen), noised)


def test_guidance_gradient_lowers_vit_losses(tiny):
    ddpm, vit = tiny
    garment, reference = _images()
    pipe = DiffFashion(ddpm.unet, vit, **fast_kwargs())
    with torch.no_grad():
        g_keys, _ = pipe.extractor(garment)
        _, r_cls = pipe.extractor(reference)
    i = pipe.start
    a_t = pipe._a(i)
    x = pipe.add_noise(reference, i, torch.Generator().manual_seed(0))

    def energy(x, weights):
        eps, _ = pipe._eps(x, i, 0)
        x0 = predict_x0(x, eps, a_t)
        return fashion_guidance_loss(pipe.extractor, noise_augment(x0, x, a_t),
                                     x0, g_keys, r_cls, reference,
                                     weights=weights)[0]

    for weights in (dict(contra=0, dir=0, l2=0, range=0, cls=0),
                    dict(contra=0, dir=0, l2=0, range=0, ssim=0), {}):
        with torch.enable_grad():
            xr = x.clone().requires_grad_(True)
            e = energy(xr, weights)
            grad = torch.autograd.grad(e, xr)[0]
        with torch.no_grad():
            lower = energy(x - 1e-2 * grad / grad.norm(), weights)
        assert lower < e.detach(), weights
    # the guided DDPM step moves the mean by -Sigma * grad L
    guide = lambda x_in, x0: fashion_guidance_loss(  # noqa: E731
        pipe.extractor, x_in, x0, g_keys, r_cls, reference)[0]
    plain, _ = pipe.step(x, i, torch.Generator().manual_seed(1))
    guided, _ = pipe.step(x, i, torch.Generator().manual_seed(1), guide)
    assert not torch.allclose(plain, guided)
    # a zero guidance energy gives the unguided step exactly
    zero = lambda x_in, x0: 0 * x_in.sum()  # noqa: E731
    same, _ = pipe.step(x, i, torch.Generator().manual_seed(1), zero)
    torch.testing.assert_close(same, plain)


@pytest.mark.parametrize('sampler', ['ddpm', 'ddim'])
def test_end_to_end_few_steps(tiny, sampler):
    ddpm, vit = tiny
    garment, reference = _images()
    pipe = DiffFashion(ddpm.unet, vit, sampler=sampler,
                       **fast_kwargs(num_steps=5, resample=1))
    calls = []
    out = pipe(garment, reference, seed=0, progress=lambda: calls.append(1))
    assert out['result'].shape == (1, 3, 16, 16)
    assert torch.isfinite(out['result']).all()
    assert out['result'].abs().max() <= 1
    assert len(calls) == pipe.num_model_steps()
    again = pipe(garment, reference, seed=0)
    torch.testing.assert_close(again['result'], out['result'])
    nomask = pipe(garment, reference, use_mask=False, seed=0)
    assert nomask['mask'] is None


def test_reference_bookkeeping_129_model_calls(tiny):
    ddpm, vit = tiny
    pipe = DiffFashion(ddpm.unet, vit, garment_label=0,
                       mask_label_sets=[[1]],
                       loss_weights={k: 0 for k in df.DEFAULT_LOSS_WEIGHTS})
    assert len(pipe.timesteps) == 200 and pipe.start == 119
    assert pipe.t_at(pipe.start) == 597
    assert pipe.mask_index == 64 and pipe.blend_steps == 35
    assert pipe.num_model_steps(with_mask=False) == 129


def test_bad_arguments(tiny):
    ddpm, vit = tiny
    with pytest.raises(ValueError, match='outside'):
        DiffFashion(ddpm.unet, vit, garment_label=0, mask_label_sets=[[9]])
    with pytest.raises(ValueError, match='must not be'):
        DiffFashion(ddpm.unet, vit, garment_label=0, mask_label_sets=[[0]])
    with pytest.raises(ValueError, match='sampler'):
        DiffFashion(ddpm.unet, vit, sampler='euler', **fast_kwargs())
    pipe = DiffFashion(ddpm.unet, vit, **fast_kwargs(
        loss_weights=dict(style=1.)))
    g, r = _images()
    with pytest.raises(KeyError, match='unknown guidance'):
        pipe(g, r)
    with pytest.raises(ValueError, match='same shape'):
        pipe.transfer(g, torch.zeros(1, 3, 8, 8))


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


def test_missing_weights_name_where_to_get_them(tmp_path):
    with pytest.raises(WeightFileError, match='guided-diffusion'):
        load_diffusion_model('configs/difffashion/'
                             'ddpm_unet-tiny_1xb64-10e_embedded32.py',
                             str(tmp_path / 'none.pth'))
    with pytest.raises(WeightFileError, match='dino'):
        load_vit(None, str(tmp_path / 'none.pth'))


def test_fashion_metrics(tiny):
    from mmssl.apis import fashion_metrics
    _, vit = tiny
    pipe = DiffFashion(BoxStubUNet(), vit, **fast_kwargs())
    garment, reference = _images()
    mask = torch.zeros(1, 1, 16, 16)
    mask[..., 4:12, 4:12] = 1
    same = fashion_metrics(garment, garment, reference, mask, pipe.extractor)
    assert same['structure_selfsim'] < 1e-10 and same['background_l1'] == 0
    assert same['mask_fraction'] == 0.25
    other = fashion_metrics(reference, garment, reference, None,
                            pipe.extractor)
    assert other['appearance_cls'] < 1e-10
    assert other['structure_selfsim'] > 0
    assert other['background_l1'] != other['background_l1']  # nan
    half = mask.clone()
    half[..., 8:] = 0
    scored = fashion_metrics(garment, garment, reference, mask,
                             pipe.extractor, true_mask=half)
    assert scored['mask_iou'] == 0.5


def test_load_diffusion_model_from_checkpoint_config(tiny, tmp_path):
    from mmengine.config import Config

    from difffashion_helpers import tiny_ddpm_cfg
    ddpm, _ = tiny
    text = Config(dict(model=tiny_ddpm_cfg(16))).pretty_text
    torch.save(dict(meta=dict(cfg=text), state_dict=ddpm.state_dict()),
               tmp_path / 'runner.pth')
    model = load_diffusion_model(None, str(tmp_path / 'runner.pth'))
    for k, v in ddpm.state_dict().items():
        assert torch.equal(model.state_dict()[k], v)
    torch.save(dict(state_dict=ddpm.state_dict()), tmp_path / 'bare.pth')
    with pytest.raises(ValueError, match='--config'):
        load_diffusion_model(None, str(tmp_path / 'bare.pth'))


def test_mask_draws_average_the_score_maps(tiny):
    ddpm, vit = tiny
    garment, _ = _images()
    one = DiffFashion(ddpm.unet, vit, **fast_kwargs())
    three = DiffFashion(ddpm.unet, vit, **fast_kwargs(mask_draws=3))
    gen = torch.Generator().manual_seed(0)
    maps = [one._mask_scores(garment, gen, None) for _ in range(3)]
    out = three.make_mask(garment, torch.Generator().manual_seed(0))
    for k in range(2):  # two label sets
        mean = torch.stack([m[k] for m in maps]).mean(0)
        expect = (mean - mean.mean()) / mean.std()
        torch.testing.assert_close(out['set_scores'][k], expect)
    # one draw is the reference computation, unchanged
    torch.testing.assert_close(
        one.make_mask(garment, torch.Generator().manual_seed(0))['score'],
        torch.stack(maps[0]).mean(0))
    calls = []
    three.make_mask(garment, progress=lambda: calls.append(1))
    assert len(calls) == three.num_model_steps() - \
        three.num_model_steps(with_mask=False)
    # the label-dependent box is still found exactly
    box = DiffFashion(BoxStubUNet(), vit, **fast_kwargs(mask_draws=2))
    expect = torch.zeros(16, 16)
    expect[BOX] = 1
    assert torch.equal(box.make_mask(garment)['mask'][0, 0], expect)
    with pytest.raises(ValueError, match='mask_draws'):
        DiffFashion(ddpm.unet, vit, **fast_kwargs(mask_draws=0))


def test_per_set_mode_one_transfer_per_mask(tiny):
    ddpm, vit = tiny
    garment, reference = _images()
    pipe = DiffFashion(ddpm.unet, vit,
                       **fast_kwargs(num_steps=5, resample=1,
                                     mask_mode='per_set'))
    calls = []
    out = pipe(garment, reference, seed=0, progress=lambda: calls.append(1))
    assert len(calls) == pipe.num_model_steps()
    assert len(out['per_set']) == 2
    gen = torch.Generator().manual_seed(0)
    masks = pipe.make_mask(garment, gen)
    state = gen.get_state()
    for k, run in enumerate(out['per_set']):
        mask = masks['candidates'][k].unsqueeze(1).float()
        assert torch.equal(run['mask'], mask)
        gen.set_state(state)
        ref = pipe.transfer(garment, reference, mask, gen)
        torch.testing.assert_close(run['result'], ref['result'])
    assert out['result'] is out['per_set'][0]['result']
    # different masks give different transfers
    if not torch.equal(out['per_set'][0]['mask'], out['per_set'][1]['mask']):
        assert not torch.equal(out['per_set'][0]['raw'],
                               out['per_set'][1]['raw'])
    with pytest.raises(ValueError, match='mask_mode'):
        DiffFashion(ddpm.unet, vit, **fast_kwargs(mask_mode='max'))
    # an empty candidate is an error in per_set mode, naming the set
    empty = DiffFashion(BoxStubUNet(), vit,
                        **fast_kwargs(mask_mode='per_set',
                                      mask_threshold=50.))
    with pytest.raises(MaskError, match='label set 0'):
        empty.make_mask(garment)


def test_set_labels_checks(tiny):
    ddpm, vit = tiny
    pipe = DiffFashion(ddpm.unet, vit, **fast_kwargs())
    pipe.set_labels(2, [[0, 1], [3]])
    assert pipe.garment_label == 2 and pipe.mask_label_sets == [[0, 1], [3]]
    with pytest.raises(ValueError, match='must not be'):
        pipe.set_labels(3, [[3]])
    with pytest.raises(ValueError, match='non-empty'):
        pipe.set_labels(3, [[]])


def test_structure_inside_the_true_mask(tiny):
    from mmssl.apis import fashion_metrics
    _, vit = tiny
    pipe = DiffFashion(BoxStubUNet(), vit, **fast_kwargs())
    garment, reference = _images()
    true = torch.zeros(1, 1, 16, 16)
    true[..., :8, :8] = 1  # the top-left 2x2 of the 4x4 patches
    same = fashion_metrics(garment, garment, reference, None,
                           pipe.extractor, true_mask=true)
    assert same['structure_selfsim_fg'] < 1e-10
    # change only the pixels outside the silhouette: the score inside
    # moves less than the whole-image one
    edited = garment.clone()
    edited[..., 8:, :] = reference[..., 8:, :]
    s = fashion_metrics(edited, garment, reference, None, pipe.extractor,
                        true_mask=true)
    assert s['structure_selfsim'] > 0
    assert s['structure_selfsim_fg'] < s['structure_selfsim']
    assert s['background_l1'] > 0 and s['mask_iou'] == 0.25


def test_noised_mask_source(tiny):
    ddpm, vit = tiny
    garment, _ = _images()
    expect = torch.zeros(16, 16)
    expect[BOX] = 1
    for contrast in ('mean', 'per_label'):
        pipe = DiffFashion(BoxStubUNet(), vit,
                           **fast_kwargs(mask_source='noised', mask_draws=2,
                                         mask_contrast=contrast))
        calls = []
        out = pipe.make_mask(garment, progress=lambda: calls.append(1))
        assert torch.equal(out['mask'][0, 0], expect)
        assert not calls and pipe.num_model_steps() == \
            pipe.num_model_steps(with_mask=False)
    # the UNet sees the garment noised to the mask step, once per draw
    # and label (garment label + 3 others)
    seen = []
    pipe = DiffFashion(ddpm.unet, vit, **fast_kwargs(
        mask_source='noised', mask_draws=2, mask_label_sets=[[1, 2, 3]]))
    real = pipe._eps

    def spy(x, i, label):
        seen.append((x.clone(), i, label))
        return real(x, i, label)

    pipe._eps = spy
    pipe.make_mask(garment, torch.Generator().manual_seed(5))
    assert len(seen) == 2  # one batched call per draw
    assert [s[2].tolist() for s in seen] == [[0, 1, 2, 3]] * 2
    assert {s[1] for s in seen} == {pipe.mask_index}
    gen = torch.Generator().manual_seed(5)
    noised = pipe.add_noise(garment, pipe.mask_index, gen)
    for k in range(4):
        torch.testing.assert_close(seen[0][0][k:k + 1], noised)
    with pytest.raises(ValueError, match='mask_source'):
        DiffFashion(ddpm.unet, vit, **fast_kwargs(mask_source='x0'))
    with pytest.raises(ValueError, match='mask_contrast'):
        DiffFashion(ddpm.unet, vit, **fast_kwargs(mask_contrast='max'))
