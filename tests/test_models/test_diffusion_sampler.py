# Copyright (c) mmssl contributors. All rights reserved.
"""DiffFashionEditor as the sampler: the guided step, the transfer and the
reference's bookkeeping, each pinned against the reference code's line."""
import os.path as osp
import sys

import pytest
import torch
import torch.nn.functional as F

import mmssl.models.diffusion.editor as editor_mod
from mmssl.models.diffusion import (DEFAULT_LOSS_WEIGHTS, ViTFeatureExtractor,
                                    ddpm_posterior, fashion_guidance_loss,
                                    key_self_similarity, noise_augment,
                                    predict_x0)

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from difffashion_helpers import BoxStubUNet, build_tiny, images, make_editor

ZERO = {k: 0. for k in DEFAULT_LOSS_WEIGHTS}


@pytest.fixture(scope='module')
def tiny():
    return build_tiny(16)


def _grad_of(editor, x, i, guide):
    """d guide(x_in, x0) / d x_t, through the UNet, computed here."""
    xr = x.clone().requires_grad_(True)
    eps, _ = editor.eps(xr, i, 0)
    a_t = editor.schedule.alpha(i)
    x0 = predict_x0(xr, eps, a_t)
    loss = guide(noise_augment(x0, xr, a_t), x0, i)
    return torch.autograd.grad(loss, xr)[0]


@pytest.mark.parametrize('sampler', ['ddpm', 'ddim'])
def test_guidance_sign_mean_moves_down_the_gradient(tiny, sampler):
    """Reference: ``new_mean = mean + variance * (-grad L)`` (DDPM),
    ``eps' = eps - sqrt(1 - a) * (-grad L)`` (DDIM)."""
    _, vit = tiny
    editor = make_editor(BoxStubUNet(), vit, schedule=dict(sampler=sampler))
    garment, reference = images()
    i = editor.schedule.start
    x = editor.schedule.add_noise(reference, i,
                                  torch.Generator().manual_seed(0))
    target = torch.linspace(-1, 1, x.numel()).view_as(x)

    def guide(x_in, x0, i):
        return ((x_in - target)**2).mean()

    with torch.enable_grad():
        grad = _grad_of(editor, x, i, guide)
    plain, _ = editor.step(x, i, 0, torch.Generator().manual_seed(1))
    guided, _ = editor.step(x, i, 0, torch.Generator().manual_seed(1), guide)
    s = editor.schedule
    a_t, a_prev = s.alpha(i), s.alpha(i - 1)
    if sampler == 'ddpm':
        _, var = ddpm_posterior(x, x, a_t, a_prev)  # fixed small variance
        torch.testing.assert_close(guided - plain, -var * grad)
    else:
        eps, _ = editor.eps(x, i, 0)
        expect = s.scheduler.step(
            eps + (1 - a_t).sqrt() * grad, s.t_at(i), x, eta=0.0).prev_sample
        torch.testing.assert_close(guided, expect)
    # the guided step lowers the energy of the next clean estimate
    with torch.no_grad():

        def energy(x_next):
            eps, _ = editor.eps(x_next, i - 1, 0)
            x0 = predict_x0(x_next, eps, s.alpha(i - 1))
            return guide(noise_augment(x0, x_next, s.alpha(i - 1)), x0, i)

        assert energy(guided) < energy(plain)
    # a zero guidance energy gives the unguided step exactly
    same, _ = editor.step(x, i, 0,
                          torch.Generator().manual_seed(1),
                          lambda x_in, x0, i: 0 * x_in.sum())
    torch.testing.assert_close(same, plain)


def test_posterior_takes_the_clipped_x0_by_default(tiny):
    """Documented: mmssl clips x0-hat in the DDPM posterior
    (``schedule.clip_x0=True``); ``clip_x0=False`` is the reference."""
    _, vit = tiny
    garment, _ = images()
    x = 8 * garment  # far outside [-1, 1]: x0-hat too
    for clip in (True, False):
        editor = make_editor(BoxStubUNet(), vit, schedule=dict(clip_x0=clip))
        s, i = editor.schedule, editor.schedule.start
        x_prev, x0 = editor.step(x, i, 0, torch.Generator().manual_seed(1))
        eps, _ = editor.eps(x, i, 0)
        raw = predict_x0(x, eps, s.alpha(i))
        assert raw.abs().max() > 1
        torch.testing.assert_close(x0, raw)  # returned unclipped
        post = raw.clamp(-1, 1) if clip else raw
        mean, var = ddpm_posterior(post, x, s.alpha(i), s.alpha(i - 1))
        noise = torch.randn(
            x.shape, generator=torch.Generator().manual_seed(1))
        torch.testing.assert_close(x_prev, mean + var.sqrt() * noise)


def test_structure_target_is_the_garment_appearance_the_reference(
        tiny, monkeypatch):
    """Reference: ``VIT_LOSS(x_in, self.init_image (garment), self.prev,
    target=self.target_image (reference), mask=self.mask)``; ``self.prev``
    starts as the garment image."""
    _, vit = tiny
    editor = make_editor(BoxStubUNet(), vit, guidance=dict(dir_until_index=-1))
    garment, reference = images()
    mask = torch.zeros(1, 1, 16, 16)
    mask[..., 2:14, 3:13] = 1
    calls = []
    real = editor_mod.fashion_guidance_loss

    def spy(extractor, x_in, x0, garment_keys, reference_cls, ref, m, prev,
            weights):
        calls.append((garment_keys, reference_cls, ref, m, prev))
        return real(extractor, x_in, x0, garment_keys, reference_cls, ref, m,
                    prev, weights)

    monkeypatch.setattr(editor_mod, 'fashion_guidance_loss', spy)
    editor.transfer(
        garment, reference, mask, generator=torch.Generator().manual_seed(0))
    g_keys, g_cls = editor.extractor(garment)
    r_keys, r_cls = editor.extractor(reference)
    assert len(calls) == editor.num_model_steps(with_mask=False)
    for keys, cls, ref, m, _ in calls:
        torch.testing.assert_close(keys, g_keys)
        assert not torch.allclose(keys, r_keys)
        torch.testing.assert_close(cls, r_cls)
        assert torch.equal(ref, reference) and m is mask
    # the first divergence term compares with the garment image's [CLS]
    torch.testing.assert_close(calls[0][4], g_cls)


def test_structure_loss_reads_the_keys_of_the_last_block(tiny):
    """Reference: ``get_keys_self_sim_from_input(layer_num=11)``: the keys
    (not the queries or values) of the last block, heads concatenated."""
    _, vit = tiny
    ext = ViTFeatureExtractor(vit, img_size=16)
    x = images()[0]
    seen = {}
    last = vit.layers[-1]
    h1 = last.attn.qkv.register_forward_hook(
        lambda m, a, o: seen.__setitem__('qkv', o))
    h2 = last.register_forward_hook(
        lambda m, a, o: seen.__setitem__('block', o))
    keys, cls = ext(x)
    h1.remove()
    h2.remove()
    C = seen['qkv'].shape[-1] // 3
    torch.testing.assert_close(keys, seen['qkv'][..., C:2 * C])
    assert not torch.allclose(keys, seen['qkv'][..., 2 * C:])
    torch.testing.assert_close(cls, seen['block'][:, 0])
    # the ssim term is the MSE of the keys' self-similarity (hand value)
    g = images(1)[0]
    g_keys, _ = ext(g)
    w = dict(ZERO, ssim=1000.)
    total, terms, _ = fashion_guidance_loss(
        ext, x, x, g_keys, cls, g, weights=w)
    hand = 1000. * F.mse_loss(
        key_self_similarity(keys), key_self_similarity(g_keys))
    torch.testing.assert_close(terms['ssim'], hand)
    torch.testing.assert_close(total, hand)


def test_cls_term_sees_the_masked_input_grey_outside(tiny):
    """The [CLS] term respects the mask; documented: outside the mask the
    ViT sees mid-grey (the product is taken in [-1, 1])."""
    _, vit = tiny
    real = ViTFeatureExtractor(vit, img_size=16)
    seen = []

    def ext(images):
        seen.append(images.detach().clone())
        return real(images)

    x_in, reference = images()
    _, r_cls = real(reference)
    mask = torch.zeros(1, 1, 16, 16)
    mask[..., 4:12, 4:12] = 1
    w = dict(ZERO, cls=200.)
    _, terms, cls = fashion_guidance_loss(
        ext, x_in, x_in, None, r_cls, reference, mask, weights=w)
    masked = seen[-1]
    torch.testing.assert_close(masked, x_in * mask)
    assert torch.equal(masked[..., :4, :],
                       torch.zeros_like(masked[..., :4, :]))
    hand = 200. * F.mse_loss(real(x_in * mask)[1], r_cls)
    torch.testing.assert_close(terms['cls'], hand)
    unmasked = 200. * F.mse_loss(real(x_in)[1], r_cls)
    assert not torch.allclose(terms['cls'], unmasked)
    _, terms, _ = fashion_guidance_loss(
        real, x_in, x_in, None, r_cls, reference, None, weights=w)
    torch.testing.assert_close(terms['cls'], unmasked)


def test_background_is_pasted_from_the_noised_garment(tiny, monkeypatch):
    """Reference: ``img = img * mask + q_sample(bag_image, i) * ~mask`` for
    ``i`` in 84 .. 118 of 200 (the garment noised to the step's own
    index)."""
    _, vit = tiny
    editor = make_editor(BoxStubUNet(), vit, schedule=dict(num_steps=40))
    garment, reference = images()
    mask = torch.zeros(1, 1, 16, 16)
    mask[..., 3:13, 3:13] = 1
    s = editor.schedule
    noised = []
    real_noise = s.add_noise

    def add_noise(x0, i, generator):
        out = real_noise(x0, i, generator)
        noised.append((x0, i, out))
        return out

    blends = []
    real_blend = editor_mod.blend_background

    def blend(x, m, background):
        out = real_blend(x, m, background)
        blends.append((out, background))
        return out

    monkeypatch.setattr(s, 'add_noise', add_noise)
    monkeypatch.setattr(editor_mod, 'blend_background', blend)
    editor.transfer(
        garment, reference, mask, generator=torch.Generator().manual_seed(0))
    assert len(blends) == s.blend_steps == 7
    # the first add_noise is the start: the noised reference
    assert torch.equal(noised[0][0], reference) and noised[0][1] == s.start
    bg = mask.expand(1, 3, 16, 16) == 0
    steps = []
    for (out, background), (x0, i, made) in zip(blends, noised[1:]):
        assert made is background
        assert torch.equal(x0, garment)
        steps.append(i)
        assert torch.equal(out[bg], background[bg])
    assert steps == list(range(s.start - 1, s.start - 1 - s.blend_steps, -1))


def test_divergence_gate_on_the_respaced_step_index(tiny):
    """Reference: ``t = unscale_timestep(t)`` (the respaced index) and
    ``use_dir = t[0] > diff_iter (100)``: 28 of the 129 guided calls of the
    reference schedule (19 steps above index 100, the first one 10 times),
    not the 108 whose training timestep is above 100."""
    _, vit = tiny
    editor = make_editor(
        BoxStubUNet(),
        vit,
        schedule=dict(num_steps=200, resample=10),
        guidance=dict(weights=dict(ZERO, dir=100.)))
    garment, reference = images()
    out = editor.transfer(
        garment,
        reference,
        None,
        generator=torch.Generator().manual_seed(0),
        return_losses=True)
    log = out['losses']
    assert len(log) == 129
    with_dir = [e['i'] for e in log if 'dir' in e]
    assert len(with_dir) == 28
    assert set(with_dir) == set(range(101, 120))
    assert all(e['dir'] <= 0 for e in log if 'dir' in e)
    # scaled with the schedule: 50 steps -> index 25
    editor = make_editor(
        BoxStubUNet(),
        vit,
        schedule=dict(num_steps=50, resample=1),
        guidance=dict(weights=dict(ZERO, dir=100.)))
    log = editor.transfer(garment, reference, return_losses=True)['losses']
    assert {e['i'] for e in log if 'dir' in e} == set(range(26, 30))
    # dir_until_index 0: on down to index 1; negative: on at every step
    for until, lowest in ((0, 1), (-1, 0), (-5, 0)):
        editor = make_editor(
            BoxStubUNet(),
            vit,
            schedule=dict(num_steps=10, resample=1),
            guidance=dict(weights=dict(ZERO, dir=100.), dir_until_index=until))
        log = editor.transfer(garment, reference, return_losses=True)['losses']
        assert {e['i']
                for e in log if 'dir' in e
                } == set(range(lowest, editor.schedule.start + 1))
    # the log only when asked for
    assert 'losses' not in editor.transfer(garment, reference)


def test_reference_bookkeeping(tiny):
    _, vit = tiny
    editor = make_editor(
        BoxStubUNet(),
        vit,
        label_sets=[[1]],
        schedule=dict(num_steps=200, resample=10),
        guidance=dict(weights=ZERO))
    s = editor.schedule
    assert len(s) == 200 and s.start == 119 and s.t_at(s.start) == 597
    assert s.scale(64) == 64 and s.blend_steps == 35
    assert [i for i in range(200) if s.blends(i)] == list(range(84, 119))
    assert editor.num_model_steps(with_mask=False) == 129
    # mask run: 119 -> 64 with the first step 10 times
    assert editor.num_model_steps() == 129 + 55 + 9


@pytest.mark.parametrize('sampler', ['ddpm', 'ddim'])
def test_end_to_end_few_steps(tiny, sampler):
    ddpm, vit = tiny
    garment, reference = images()
    editor = make_editor(
        ddpm, vit, schedule=dict(sampler=sampler, num_steps=5, resample=1))
    calls = []
    out = editor.edit(
        garment, reference, seed=0, progress=lambda: calls.append(1))
    assert out['result'].shape == (1, 3, 16, 16)
    assert torch.isfinite(out['result']).all()
    assert out['result'].abs().max() <= 1
    assert len(calls) == editor.num_model_steps()
    again = editor.edit(garment, reference, seed=0)
    torch.testing.assert_close(again['result'], out['result'])
    nomask = editor.edit(garment, reference, use_mask=False, seed=0)
    assert nomask['mask'] is None


def test_all_weights_zero_is_the_unguided_sampler(tiny):
    ddpm, vit = tiny
    garment, reference = images()
    off = make_editor(ddpm, vit, guidance=dict(weights=ZERO))
    tiny_w = make_editor(
        ddpm, vit, guidance=dict(weights=dict(ZERO, l2=1e-30)))
    a = off.transfer(
        garment, reference, generator=torch.Generator().manual_seed(0))
    b = tiny_w.transfer(
        garment, reference, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(a['raw'], b['raw'])


def test_bad_arguments(tiny):
    ddpm, vit = tiny
    with pytest.raises(ValueError, match='outside'):
        make_editor(ddpm, vit, label_sets=[[9]])
    with pytest.raises(ValueError, match='garment_label 7'):
        make_editor(ddpm, vit, garment_label=7)
    with pytest.raises(ValueError, match='sampler'):
        make_editor(ddpm, vit, schedule=dict(sampler='euler'))
    with pytest.raises(ValueError, match='unknown schedule'):
        make_editor(ddpm, vit, schedule=dict(num_step=3))
    with pytest.raises(ValueError, match='unknown guidance'):
        make_editor(ddpm, vit, guidance=dict(weight=dict(l2=0)))
    # unknown loss terms are refused when the editor is built
    with pytest.raises(KeyError, match='unknown guidance weights'):
        make_editor(ddpm, vit, guidance=dict(weights=dict(style=1.)))
    with pytest.raises(ValueError, match='finite'):
        make_editor(ddpm, vit, guidance=dict(weights=dict(l2=float('nan'))))
    editor = make_editor(ddpm, vit)
    g, _ = images()
    with pytest.raises(ValueError, match='same shape'):
        editor.transfer(g, torch.zeros(1, 3, 8, 8))
    with pytest.raises(ValueError, match='no garment label'):
        make_editor(ddpm, vit, garment_label=None).edit(g, g)


def test_guidance_terms_hand_values(tiny):
    """Each term of the energy against its formula (reference
    ``Loss_vit`` + ``cond_fn``): PatchNCE from the output's keys to the
    garment's, pixel L2 on the guidance input, range loss on the raw
    estimate, divergence negative."""
    from mmssl.models.diffusion import patch_nce_loss
    _, vit = tiny
    ext = ViTFeatureExtractor(vit, img_size=16)
    x_in, garment = images()
    reference, _ = images(3)
    x0 = 1.5 * x_in  # out of range: the range term is not zero
    g_keys, _ = ext(garment)
    _, r_cls = ext(reference)
    prev = ext(images(4)[0])[1]
    total, terms, cls = fashion_guidance_loss(ext, x_in, x0, g_keys, r_cls,
                                              reference, None, prev)
    keys, own_cls = ext(x_in)
    w = DEFAULT_LOSS_WEIGHTS
    hand = dict(
        ssim=w['ssim'] *
        F.mse_loss(key_self_similarity(keys), key_self_similarity(g_keys)),
        contra=w['contra'] * patch_nce_loss(keys, g_keys),
        cls=w['cls'] * F.mse_loss(own_cls, r_cls),
        dir=-w['dir'] * F.mse_loss(own_cls, prev),
        l2=w['l2'] * F.mse_loss(x_in, reference),
        range=w['range'] * ((x0 - x0.clamp(-1, 1))**2).mean())
    assert set(terms) == set(hand)
    for k in hand:
        torch.testing.assert_close(terms[k], hand[k], msg=k)
    assert not torch.allclose(
        patch_nce_loss(g_keys, keys), hand['contra'] / w['contra'])
    torch.testing.assert_close(total, sum(hand.values()))
    torch.testing.assert_close(cls, own_cls)
    # the returned [CLS] (the next step's previous one) carries no graph
    x_req = x_in.clone().requires_grad_(True)
    total, _, cls = fashion_guidance_loss(ext, x_req, x0, g_keys, r_cls,
                                          reference, None, prev)
    assert total.requires_grad and not cls.requires_grad


def test_learned_range_variance_is_guided_diffusions(tiny):
    """``exp(f log beta_i + (1 - f) log var_i)`` on the respaced schedule,
    with guided-diffusion's clipped ``var_0 := var_1`` at the last step."""
    import numpy as np
    _, vit = tiny
    s = make_editor(BoxStubUNet(), vit, schedule=dict(num_steps=200)).schedule
    abar = np.array([float(s.alpha(i)) for i in range(200)], np.float64)
    prev = np.append(1.0, abar[:-1])
    betas = 1 - abar / prev
    post = betas * (1 - prev) / (1 - abar)
    clipped = np.log(np.append(post[1], post[1:]))
    x = images()[0]
    v = torch.linspace(-1, 1, x.numel()).view_as(x)
    frac = (v.double() + 1) / 2
    for i in (0, 1, 64, 119):
        expect = torch.exp(frac * np.log(betas[i]) +
                           (1 - frac) * clipped[i]).float()
        zero = torch.zeros_like(x)
        plain, _ = s.step(x, i, zero, v, None, zero)
        moved, _ = s.step(x, i, zero, v, torch.ones_like(x), zero)
        torch.testing.assert_close(plain - moved, expect, rtol=1e-4, atol=1e-7)


def test_resample_renoises_with_the_start_steps_beta(tiny):
    """RePaint resampling of the start step: ``sqrt(1 - beta) x +
    sqrt(beta) z`` with the beta of the start step, between repeats."""
    from mmssl.models.diffusion import renoise
    _, vit = tiny
    editor = make_editor(BoxStubUNet(), vit, schedule=dict(resample=2))
    s, i = editor.schedule, editor.schedule.start
    x = images()[0]
    seen = []
    real = editor.step

    def step(x, i, label, generator=None, guide=None):
        out = real(x, i, label, generator, guide)
        seen.append((x, out[0]))
        return out

    editor.step = step
    editor.resampled_step(x, i, 0, torch.Generator().manual_seed(3))
    assert len(seen) == 2
    gen = torch.Generator().manual_seed(3)
    torch.randn(x.shape, generator=gen)  # the noise of the first step
    z = torch.randn(x.shape, generator=gen)
    torch.testing.assert_close(seen[1][0], renoise(seen[0][1], s.beta(i), z))
    assert not torch.allclose(seen[1][0], renoise(seen[0][1], s.beta(i - 1),
                                                  z))
    # no re-noising after the last repeat: the generator has drawn the two
    # steps' noises and the one re-noising between them, nothing more
    gen_run = torch.Generator().manual_seed(3)
    editor.resampled_step(x, i, 0, gen_run)
    torch.randn(x.shape, generator=gen)  # the noise of the second step
    assert torch.equal(
        torch.randn(4, generator=gen_run), torch.randn(4, generator=gen))
    # below the start step: one step, one draw
    gen_run, gen = (torch.Generator().manual_seed(3) for _ in range(2))
    editor.resampled_step(x, i - 1, 0, gen_run)
    torch.randn(x.shape, generator=gen)
    assert torch.equal(
        torch.randn(4, generator=gen_run), torch.randn(4, generator=gen))


def test_result_is_colour_matched_to_the_reference(tiny):
    from mmssl.models.diffusion import colour_match
    _, vit = tiny
    garment, reference = images()
    mask = torch.zeros(1, 1, 16, 16)
    mask[..., 3:13, 3:13] = 1
    editor = make_editor(BoxStubUNet(), vit)
    out = editor.transfer(
        garment, reference, mask, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out['result'],
                               colour_match(out['raw'], reference, mask))
    assert not torch.allclose(out['result'],
                              colour_match(out['raw'], garment, mask))
    off = make_editor(BoxStubUNet(), vit, colour_matching=False)
    out = off.transfer(
        garment, reference, mask, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out['result'], out['raw'])


def test_transfer_conditions_on_the_garment_label(tiny):
    """Reference: ``model_kwargs['y'] = 636`` (the garment's label) in
    every step of the transfer, guided or not."""
    from difffashion_helpers import LabelBoxStubUNet
    _, vit = tiny
    unet = LabelBoxStubUNet({2: (slice(2, 8), slice(3, 11))})
    editor = make_editor(unet, vit, garment_label=2, label_sets=[[1]])
    garment, reference = images()
    editor.transfer(garment, reference)
    assert len(unet.calls) == editor.num_model_steps(with_mask=False)
    assert {int(y) for c in unet.calls for y in c[2]} == {2}


class _RecordingViT(torch.nn.Module):
    """A ViT-shaped stub (``layers[-1].attn.qkv``) that records its input
    and returns one token per 56 x 56 patch, [CLS] first."""

    def __init__(self):
        super().__init__()
        block = torch.nn.Module()
        block.attn = torch.nn.Module()
        block.attn.qkv = torch.nn.Linear(3, 9)
        self.layers = torch.nn.ModuleList([block])
        self.seen = []

    def forward(self, x):
        self.seen.append(x)
        tokens = F.avg_pool2d(x, 56).flatten(2).transpose(1, 2)
        tokens = torch.cat([tokens.mean(1, keepdim=True), tokens], 1)
        self.layers[-1].attn.qkv(tokens)
        return self.layers[-1](tokens)


def test_extractor_defaults_are_dinos_input():
    """Reference (DINO ViT-B/8 through ``Loss_vit``): images in [-1, 1]
    resized to 224 px, mapped to [0, 1] and normalised with the ImageNet
    mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225)."""
    vit = _RecordingViT()
    vit.layers[-1].forward = lambda tokens: tokens
    ext = ViTFeatureExtractor(vit)
    x = images(2)[0]
    keys, cls = ext(x)
    seen = vit.seen[-1]
    assert seen.shape == (1, 3, 224, 224)
    up = F.interpolate(
        (x + 1) / 2, (224, 224), mode='bilinear', align_corners=False)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    torch.testing.assert_close(seen, (up - mean) / std)
    assert keys.shape == (1, 17, 3) and cls.shape == (1, 3)
    assert not any(p.requires_grad for p in vit.parameters())
    # either side off is resized; the right size is passed as it is
    for shape in ((224, 112), (112, 224), (224, 224)):
        x = torch.rand(1, 3, *shape) * 2 - 1
        ext(x)
        assert vit.seen[-1].shape == (1, 3, 224, 224)
    torch.testing.assert_close(vit.seen[-1], ((x + 1) / 2 - mean) / std)


def test_reference_guidance_weights():
    """The reference's weights (code defaults + its command): key
    self-similarity 1000, PatchNCE 200, [CLS] to the reference 2000 x 0.1,
    divergence 100, pixel L2 to the reference 3000, range 200."""
    assert DEFAULT_LOSS_WEIGHTS == dict(
        ssim=1000., contra=200., cls=200., dir=100., l2=3000., range=200.)
    from mmssl.models.diffusion import check_loss_weights
    assert check_loss_weights(None) == DEFAULT_LOSS_WEIGHTS
    assert check_loss_weights(dict(ssim=0))['ssim'] == 0.
    with pytest.raises(KeyError, match='known'):
        check_loss_weights(dict(sim=1.))
    for bad in (float('nan'), float('inf'), -float('inf'), '1'):
        with pytest.raises(ValueError, match='finite'):
            check_loss_weights(dict(l2=bad))


def test_vit_input_size_sources(tiny):
    from types import SimpleNamespace

    from mmssl.models.diffusion import vit_input_size
    _, vit = tiny
    assert vit_input_size(vit) == 16  # mmcv PatchEmbed's init_input_size
    bare = torch.nn.Module()
    assert vit_input_size(bare) == 224  # DINO's
    assert vit_input_size(bare, default=32) == 32
    bare.patch_embed = SimpleNamespace(init_input_size=(48, 48))
    assert vit_input_size(bare) == 48
    bare.img_size_hint = 64  # set by load_vit, wins
    assert vit_input_size(bare) == 64


def test_extractor_refuses_a_model_without_last_block_qkv():
    """The keys are read from ``layers[-1].attn.qkv``: the last block must
    have it, whatever the earlier blocks have."""

    def block(attn=True, qkv=True):
        b = torch.nn.Module()
        if attn:
            b.attn = torch.nn.Module()
            if qkv:
                b.attn.qkv = torch.nn.Linear(3, 9)
        return b

    for layers in (None, [block(),
                          block(attn=False)], [block(),
                                               block(qkv=False)]):
        model = torch.nn.Module()
        if layers is not None:
            model.layers = torch.nn.ModuleList(layers)
        with pytest.raises(TypeError, match='needs a ViT with'):
            ViTFeatureExtractor(model)
    model = torch.nn.Module()
    model.layers = torch.nn.ModuleList([block(attn=False), block()])
    ViTFeatureExtractor(model)


def test_extractor_takes_the_first_output_of_a_tuple_block():
    """Blocks that return ``(x, extra)`` (mmssl's ``D2V2ViT``): the [CLS]
    is read from ``x``."""
    vit = _RecordingViT()
    vit.layers[-1].forward = lambda tokens: (tokens, tokens + 5)
    keys, cls = ViTFeatureExtractor(vit, img_size=112)(images(2)[0])
    x = vit.seen[-1]
    tokens = F.avg_pool2d(x, 56).flatten(2).transpose(1, 2)
    torch.testing.assert_close(cls, tokens.mean(1))


def test_patch_nce_by_hand():
    """Reference ``PatchNCE``: per token i, logits [cos(o_i, s_i),
    cos(o_i, s_j) for j, the j = i one set to -10] / 0.07, cross-entropy
    with the positive first, mean over tokens and images."""
    from mmssl.models.diffusion import patch_nce_loss
    g = torch.Generator().manual_seed(0)
    out = torch.randn(2, 5, 4, generator=g) * 3
    src = torch.randn(2, 5, 4, generator=g)
    total = 0.
    for b in range(2):
        for i in range(5):
            o = out[b, i] / out[b, i].norm()
            logits = [float(o @ src[b, i] / src[b, i].norm())]
            for j in range(5):
                logits.append(-10. if j == i else float(o @ src[b, j] /
                                                        src[b, j].norm()))
            logits = torch.tensor(logits) / 0.07
            total += float(torch.logsumexp(logits, 0) - logits[0])
    hand = torch.tensor(total / 10)
    torch.testing.assert_close(patch_nce_loss(out, src), hand)
    assert not torch.allclose(patch_nce_loss(out, src, tau=0.5), hand)


def test_guided_step_returns_detached_tensors(tiny):
    """The guidance gradient is taken inside the step; what it returns (the
    next sample, the clean estimate) carries no graph, also with a
    learned-variance UNet."""
    ddpm, vit = build_tiny(16, out_channels=6)
    for unet in (BoxStubUNet(), ddpm.unet):
        editor = make_editor(unet, vit)
        x = images()[0]
        guide = lambda x_in, x0, i: (x_in**2).mean()  # noqa: E731
        x_prev, x0 = editor.step(x, 3, 0,
                                 torch.Generator().manual_seed(0), guide)
        assert not x_prev.requires_grad and not x0.requires_grad
        assert not x_prev.grad_fn and not x0.grad_fn


def test_result_is_the_last_estimate_clipped(tiny):
    """The result is the last step's clean estimate clipped to [-1, 1],
    also when the schedule does not clip x0 inside the steps."""
    _, vit = tiny
    editor = make_editor(
        BoxStubUNet(),
        vit,
        schedule=dict(clip_x0=False),
        colour_matching=False)
    garment, reference = images()
    seen = []
    real = editor.step

    def step(x, i, label, generator=None, guide=None):
        out = real(x, i, label, generator, guide)
        seen.append(out[1])
        return out

    editor.step = step
    out = editor.transfer(
        garment, reference, None, generator=torch.Generator().manual_seed(0))
    assert seen[-1].abs().max() > 1.5
    torch.testing.assert_close(out['raw'], seen[-1].clamp(-1, 1))
    assert out['result'] is out['raw']
