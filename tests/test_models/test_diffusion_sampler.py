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
