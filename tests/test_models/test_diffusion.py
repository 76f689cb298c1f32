# Copyright (c) mmssl contributors. All rights reserved.
"""ClassCondDDPM and DiffFashion's pure helpers."""
import os.path as osp
import sys

import pytest
import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler
from mmpretrain.structures import DataSample

from mmssl.models.diffusion import (ViTFeatureExtractor, blend_background,
                                    clean_mask, ddpm_posterior,
                                    key_self_similarity, label_contrast_score,
                                    noise_augment, patch_nce_loss, predict_x0,
                                    q_sample, space_timesteps, threshold_mask)
from mmssl.registry import MODELS

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from difffashion_helpers import tiny_ddpm_cfg, tiny_vit_cfg  # noqa: E402


def _samples(labels):
    return [DataSample().set_gt_label(int(y)) for y in labels]


def test_loss_equals_hand_computation():
    torch.manual_seed(0)
    model = MODELS.build(tiny_ddpm_cfg())
    x0 = torch.rand(3, 3, 16, 16) * 2 - 1
    labels = torch.tensor([0, 2, 3])
    noise = torch.randn_like(x0)
    t = torch.tensor([0, 500, 999])
    loss = model.loss(x0, labels, noise=noise, timesteps=t)['loss']
    # by hand: scheduler's alphas_cumprod, UNet on the noised images
    sched = DDPMScheduler(
        num_train_timesteps=1000,
        beta_schedule='linear',
        beta_start=1e-4,
        beta_end=0.02)
    a = sched.alphas_cumprod[t].view(-1, 1, 1, 1)
    x_t = a.sqrt() * x0 + (1 - a).sqrt() * noise
    torch.testing.assert_close(x_t, sched.add_noise(x0, noise, t))
    eps = model.unet(x_t, t, class_labels=labels).sample
    hand = ((eps - noise)**2).sum() / eps.numel()
    torch.testing.assert_close(loss, hand)
    # labels matter: another label gives another loss
    other = model.loss(x0, (labels + 1) % 4, noise=noise, timesteps=t)
    assert not torch.allclose(other['loss'], loss)


def test_forward_modes_and_bad_labels():
    torch.manual_seed(0)
    model = MODELS.build(tiny_ddpm_cfg())
    data = dict(
        inputs=[
            torch.randint(0, 255, (3, 16, 16), dtype=torch.uint8)
            for _ in range(2)
        ],
        data_samples=_samples([1, 3]))
    batch = model.data_preprocessor(data, training=True)
    assert batch['inputs'].min() >= -1 and batch['inputs'].max() <= 1
    losses = model(**batch, mode='loss')
    assert losses['loss'].ndim == 0 and losses['loss'] > 0
    out = model(**batch, mode='predict')
    assert out[0].pred_img.shape == (3, 16, 16)
    assert model(**batch, mode='tensor').shape == (2, 3, 16, 16)
    for bad in ([1, 7], [4, 0], [0, -1]):  # 4 classes
        batch['data_samples'] = _samples(bad)
        with pytest.raises(ValueError, match=r'gt_label must lie in \[0, '):
            model(**batch, mode='loss')
    cfg = tiny_ddpm_cfg()
    cfg['unet']['num_class_embeds'] = None
    with pytest.raises(ValueError, match='num_class_embeds'):
        MODELS.build(cfg)


def test_compiled_loss_keeps_its_graph_and_refuses_bad_labels():
    """The label check is an in-graph assert under torch.compile: the loss
    equals the eager one, the next batch (other labels) reuses the graph,
    and a label outside the classes is still refused."""
    torch.manual_seed(0)
    model = MODELS.build(tiny_ddpm_cfg())

    def batch(labels):
        return model.data_preprocessor(
            dict(
                inputs=[
                    torch.randint(0, 255, (3, 16, 16), dtype=torch.uint8)
                    for _ in labels
                ],
                data_samples=_samples(labels)),
            training=True)

    data = batch([1, 3])
    torch.manual_seed(1)
    eager = model(**data, mode='loss')['loss']
    torch._dynamo.reset()
    step = torch.compile(model.forward, backend='eager')
    torch.manual_seed(1)
    torch.testing.assert_close(step(**data, mode='loss')['loss'], eager)
    with torch._dynamo.config.patch(error_on_recompile=True):
        step(**batch([0, 2]), mode='loss')
        with pytest.raises(RuntimeError, match='gt_label must lie'):
            step(**batch([1, 7]), mode='loss')
    torch._dynamo.reset()


def test_learned_variance_uses_eps_channels():
    torch.manual_seed(0)
    model = MODELS.build(tiny_ddpm_cfg(out_channels=6))
    x0 = torch.rand(2, 3, 16, 16) * 2 - 1
    noise, t, y = torch.randn_like(x0), torch.tensor([3, 700
                                                      ]), torch.tensor([0, 1])
    loss = model.loss(x0, y, noise=noise, timesteps=t)['loss']
    out = model.unet(
        q_sample(x0, noise, t, model.alphas_cumprod), t, class_labels=y).sample
    torch.testing.assert_close(loss, F.mse_loss(out[:, :3], noise))


def test_space_timesteps_matches_guided_diffusion():
    ts = space_timesteps(1000, 200)
    assert len(ts) == 200 and ts[0] == 999 and ts[-1] == 0
    asc = ts[::-1]
    assert asc[119] == 597  # skip 80 of 200: start ~60 % noise
    assert asc[1] == 5
    # round(i * (T - 1) / (n - 1)): 0, 3, 6, 9 of 10; every step when n = T
    assert space_timesteps(10, 4) == [9, 6, 3, 0]
    assert space_timesteps(10, 10) == list(range(9, -1, -1))
    # one step: the noisiest timestep (guided-diffusion's stride 1 would
    # take 0, a "sampler" that starts from the clean image)
    assert space_timesteps(1000, 1) == [999]
    with pytest.raises(ValueError):
        space_timesteps(1000, 0)


def test_posterior_matches_scheduler_and_label_identity():
    sched = DDPMScheduler(
        beta_schedule='linear', beta_start=1e-4, beta_end=0.02)
    ac = sched.alphas_cumprod
    torch.manual_seed(0)
    x_t, x0 = torch.randn(1, 3, 8, 8), torch.randn(1, 3, 8, 8).clamp(-1, 1)
    # consecutive steps of the full schedule: diffusers' posterior
    t = 10
    mean, var = ddpm_posterior(x0, x_t, ac[t], ac[t - 1])
    sched.set_timesteps(1000)
    torch.testing.assert_close(sched._get_variance(t), var)
    # guided-diffusion's posterior_mean_coef1 / coef2 from the betas
    beta_t, alpha_t = sched.betas[t], sched.alphas[t]
    coef1 = beta_t * ac[t - 1].sqrt() / (1 - ac[t])
    coef2 = (1 - ac[t - 1]) * alpha_t.sqrt() / (1 - ac[t])
    # (float32 rounding of beta = 1 - a_t / a_prev near t = 0: ~1e-5)
    torch.testing.assert_close(
        mean, coef1 * x0 + coef2 * x_t, atol=1e-4, rtol=1e-4)
    # step at t = 0 adds no noise: its output is the posterior mean
    mean0, _ = ddpm_posterior(x0, x_t, ac[0], torch.tensor(1.0))
    eps0 = (x_t - ac[0].sqrt() * x0) / (1 - ac[0]).sqrt()
    step = sched.step(eps0, 0, x_t).prev_sample
    torch.testing.assert_close(step, mean0, atol=1e-5, rtol=1e-5)
    # unclipped x0: mu_a - mu_b = -beta / (sqrt(alpha) sqrt(1 - a_t)) (e_a-e_b)
    a_t, a_prev = ac[597], ac[592]
    beta = 1 - a_t / a_prev
    e_a, e_b = torch.randn_like(x_t), torch.randn_like(x_t)
    mu_a = ddpm_posterior(predict_x0(x_t, e_a, a_t), x_t, a_t, a_prev)[0]
    mu_b = ddpm_posterior(predict_x0(x_t, e_b, a_t), x_t, a_t, a_prev)[0]
    expect = -beta / ((1 - beta).sqrt() * (1 - a_t).sqrt()) * (e_a - e_b)
    torch.testing.assert_close(mu_a - mu_b, expect, atol=1e-5, rtol=1e-4)


def test_noise_augment_hand_values():
    """Reference ``--use_noise_aug_all``: ``fac = sqrt(1 - a_t)``,
    ``x_in = pred_xstart * fac + x * (1 - fac)``."""
    x0, x_t = torch.full((1, 3, 2, 2), 2.), torch.full((1, 3, 2, 2), -.5)
    # a_t = 0.36: fac = 0.8, 0.8 * 2 + 0.2 * (-0.5) = 1.5
    out = noise_augment(x0, x_t, torch.tensor(0.36))
    torch.testing.assert_close(out, torch.full((1, 3, 2, 2), 1.5))
    # nearly clean (a_t -> 1): x_t itself; pure noise (a_t -> 0): x0-hat
    torch.testing.assert_close(noise_augment(x0, x_t, torch.tensor(1.)), x_t)
    torch.testing.assert_close(noise_augment(x0, x_t, torch.tensor(0.)), x0)


def test_label_contrast_mask_box_and_threshold_fraction():
    mu_ref = torch.zeros(1, 3, 16, 16)
    box = torch.zeros(1, 16, 16, dtype=torch.bool)
    box[:, 4:12, 2:10] = True
    others = [mu_ref + 0.3 * box[:, None], mu_ref + 0.1 * box[:, None]]
    z = label_contrast_score(mu_ref, others)
    mask = threshold_mask(z, -0.2)
    assert torch.equal(mask, box)
    # random scores: fraction of True = fraction of z above -0.2
    torch.manual_seed(0)
    z = label_contrast_score(
        torch.randn(2, 3, 8, 8), [torch.randn(2, 3, 8, 8)])
    assert torch.allclose(z.flatten(1).mean(1), torch.zeros(2), atol=1e-5)
    frac = threshold_mask(z).float().mean()
    assert frac == (z > -0.2).float().mean()
    with pytest.raises(ValueError):
        label_contrast_score(mu_ref, [])


def test_clean_mask_removes_specks_and_fills_holes():
    m = torch.zeros(1, 16, 16, dtype=torch.bool)
    m[:, 3:12, 3:12] = True
    m[:, 7, 7] = False  # pin-hole
    m[:, 14, 1] = True  # speck
    out = clean_mask(m, 3)
    assert out[0, 7, 7] and not out[0, 14, 1]
    assert out[:, 3:12, 3:12].all()
    assert torch.equal(clean_mask(m, 1), m)
    with pytest.raises(ValueError):
        clean_mask(m, 2)


def test_blend_keeps_background_exactly():
    torch.manual_seed(0)
    x, bg = torch.randn(2, 3, 8, 8), torch.randn(2, 3, 8, 8)
    mask = (torch.rand(2, 1, 8, 8) > 0.5).float()
    out = blend_background(x, mask, bg)
    keep = mask.expand_as(x) == 0
    assert torch.equal(out[keep], bg[keep])
    assert torch.equal(out[~keep], x[~keep])
    sched = DDPMScheduler()
    eps = torch.randn(2, 3, 8, 8)
    noised = sched.add_noise(bg, eps, torch.tensor([400]))
    out = blend_background(x, mask[:, 0], noised)
    assert torch.equal(out[keep], noised[keep])


def test_vit_features_self_similarity_and_patch_nce():
    torch.manual_seed(0)
    vit = MODELS.build(tiny_vit_cfg(16))
    ext = ViTFeatureExtractor(vit, img_size=16)
    keys, cls = ext(torch.rand(2, 3, 32, 32) * 2 - 1)  # resized to 16
    assert keys.shape == (2, 1 + 16, 32) and cls.shape == (2, 32)
    assert not any(p.requires_grad for p in vit.parameters())
    s = key_self_similarity(keys)
    assert s.shape == (2, 17, 17)
    torch.testing.assert_close(s, s.transpose(1, 2))
    torch.testing.assert_close(
        torch.diagonal(s, dim1=1, dim2=2), torch.ones(2, 17))
    shuffled = keys[:, torch.randperm(17)]
    assert patch_nce_loss(keys, keys) < patch_nce_loss(shuffled, keys)
    with pytest.raises(TypeError):
        ViTFeatureExtractor(torch.nn.Linear(2, 2))


def test_smooth_score_restandardises_and_keeps_a_box():
    from mmssl.models.diffusion import smooth_score
    torch.manual_seed(0)
    box = torch.zeros(1, 16, 16)
    box[:, 4:12, 4:12] = 1
    z = label_contrast_score(
        torch.zeros(1, 3, 16, 16),
        [box[:, None].expand(1, 3, 16, 16) + 0.5 * torch.randn(1, 3, 16, 16)])
    s = smooth_score(z, 5)
    assert abs(float(s.mean())) < 1e-5 and abs(float(s.std()) - 1) < 1e-4
    inside = threshold_mask(s, -0.2)[0, 5:11, 5:11].float().mean()
    outside = threshold_mask(s, -0.2)[0, :2].float().mean()
    assert inside == 1 and outside == 0
    assert torch.equal(smooth_score(z, 1), z)
    with pytest.raises(ValueError):
        smooth_score(z, 4)


def test_label_contrast_per_label_does_not_cancel():
    mu_ref = torch.zeros(1, 3, 8, 8)
    box = torch.zeros(1, 1, 8, 8)
    box[..., 2:6, 2:6] = 1
    # two labels move the box in opposite directions: their mean equals
    # the reference, so the 'mean' contrast sees nothing there
    others = [mu_ref + box, mu_ref - box]
    flat = label_contrast_score(mu_ref, others, 'mean')
    assert torch.allclose(flat, torch.zeros_like(flat))
    z = label_contrast_score(mu_ref, others, 'per_label')
    assert torch.equal(threshold_mask(z, 0.0), box[:, 0] > 0)
    # hand value: D = mean_y sum_c (mu_y - mu_ref)^2 = 3 inside, 0 outside
    d = box[:, 0] * 3
    expect = (d - d.mean()) / d.flatten().std()
    torch.testing.assert_close(z, expect)
    with pytest.raises(ValueError, match='contrast'):
        label_contrast_score(mu_ref, others, 'max')


def test_label_contrast_squares_the_differences():
    """``D = sum_c (mu_y - mu_ref)^2``: differences of 0 / 1 / 2 in all
    3 channels give D = 0 / 3 / 12 per pixel, standardised per image (a
    map of two levels would hide any power)."""
    level = torch.zeros(2, 6, 6)
    level[0, :2] = 1
    level[0, 4:] = 2
    level[1, :, :3] = 2  # the second image: two levels only
    level[1, 0, 0] = 1
    mu_ref = torch.randn(2, 3, 6, 6)
    other = mu_ref + level[:, None]
    d = 3 * level**2
    flat = d.flatten(1)
    expect = (d - flat.mean(1).view(2, 1, 1)) / flat.std(1).view(2, 1, 1)
    for contrast in ('mean', 'per_label'):
        z = label_contrast_score(mu_ref, [other], contrast)
        assert z.shape == (2, 6, 6)
        torch.testing.assert_close(z, expect, msg=contrast)


def test_smooth_score_hand_values():
    """The box mean over the pixels inside the image (borders average fewer
    pixels, no zero padding), per image, then standardised again."""
    from mmssl.models.diffusion import smooth_score
    torch.manual_seed(0)
    z = torch.randn(2, 5, 4)
    box = torch.empty_like(z)
    for b in range(2):
        for i in range(5):
            for j in range(4):
                box[b, i, j] = z[b,
                                 max(i - 1, 0):i + 2,
                                 max(j - 1, 0):j + 2].mean()
    flat = box.flatten(1)
    expect = (box - flat.mean(1).view(2, 1, 1)) / flat.std(1).view(2, 1, 1)
    torch.testing.assert_close(smooth_score(z, 3), expect)
    assert smooth_score(z) is z  # default: off
    for even in (2, 6):
        with pytest.raises(ValueError, match='odd'):
            smooth_score(z, even)


def test_clean_mask_default_is_a_3x3_opening_and_closing():
    m = torch.zeros(1, 9, 9, dtype=torch.bool)
    m[:, 2:7, 2:7] = True
    m[:, 0, 8] = True  # a one-pixel speck
    assert torch.equal(clean_mask(m), clean_mask(m, 3))
    assert not clean_mask(m)[0, 0, 8] and clean_mask(m)[0, 2:7, 2:7].all()
    # a 3-pixel-wide bar survives a 3x3 opening, not a 5x5 one
    bar = torch.zeros(1, 9, 9, dtype=torch.bool)
    bar[:, 3:6, :] = True
    assert torch.equal(clean_mask(bar), bar)
    assert not clean_mask(bar, 5).any()


def test_blend_with_a_soft_mask_is_the_convex_mix():
    x, bg = torch.full((1, 3, 2, 2), 2.), torch.full((1, 3, 2, 2), -2.)
    mask = torch.tensor([[[[0.25, 1.], [0., 0.5]]]])
    out = blend_background(x, mask, bg)
    # 0.25 * 2 + 0.75 * (-2) = -1; 2; -2; 0
    expect = torch.tensor([[-1., 2.], [-2., 0.]]).expand(1, 3, 2, 2)
    torch.testing.assert_close(out, expect)


def test_renoise_hand_values():
    """RePaint's forward step ``sqrt(1 - beta) x + sqrt(beta) noise``."""
    from mmssl.models.diffusion import renoise
    x, noise = torch.full((1, 3, 2, 2), 2.), torch.full((1, 3, 2, 2), -.5)
    # beta = 0.36: 0.8 * 2 + 0.6 * (-0.5) = 1.3
    out = renoise(x, torch.tensor(0.36), noise)
    torch.testing.assert_close(out, torch.full((1, 3, 2, 2), 1.3))


def test_colour_match_moments_inside_the_mask():
    """Inside the mask each channel takes the reference's mean and std
    (both over pixels, population std); outside the image is unchanged;
    an empty mask changes nothing."""
    from mmssl.models.diffusion import colour_match
    torch.manual_seed(0)
    img = 0.2 * torch.randn(2, 3, 12, 12)
    reference = 0.1 * torch.randn(2, 3, 12, 12) + torch.tensor(
        [0.3, -0.2, 0.1]).view(1, 3, 1, 1)
    mask = torch.zeros(2, 1, 12, 12)
    mask[0, :, 2:9, 1:7] = 1
    mask[1, :, 5:, :] = 1
    out = colour_match(img, reference, mask)
    for b in range(2):
        inside = out[b][:, mask[b, 0] > 0]  # (3, n)
        torch.testing.assert_close(inside.mean(1), reference[b].mean((1, 2)))
        torch.testing.assert_close(
            inside.std(1, correction=0), reference[b].std((1, 2),
                                                          correction=0))
        outside = mask[b, 0] == 0
        torch.testing.assert_close(out[b][:, outside], img[b][:, outside])
    whole = colour_match(img, reference)
    torch.testing.assert_close(whole.mean((2, 3)), reference.mean((2, 3)))
    torch.testing.assert_close(
        whole.std((2, 3), correction=0), reference.std((2, 3), correction=0))
    empty = colour_match(img, reference, torch.zeros(2, 1, 12, 12))
    torch.testing.assert_close(empty, img)
    # the result stays in [-1, 1]
    loud = colour_match(img, 3 * reference.sign())
    assert loud.abs().max() <= 1 and loud.abs().max() == 1


def test_respaced_schedule_defaults_betas_and_start():
    """The reference command's defaults (200 steps, skip 80, blend 35, the
    first step 10 times; mmssl clips x0 in the posterior by default); the
    respaced beta ``1 - a_i / a_(i-1)`` (the training betas when nothing
    is skipped); a skip may leave one step before 0, not none."""
    from mmssl.models.diffusion import RespacedSchedule
    s = RespacedSchedule()
    assert len(s) == 200 and s.start == 119 and s.t_at(119) == 597
    assert (s.blend_steps, s.resample, s.clip_x0) == (35, 10, True)
    ac = s.alphas_cumprod
    t, t_prev = s.t_at(119), s.t_at(118)
    torch.testing.assert_close(s.beta(119), 1 - ac[t] / ac[t_prev])
    torch.testing.assert_close(s.beta(0), 1 - ac[0])  # a_(-1) = 1
    full = RespacedSchedule(num_steps=1000, skip=0)
    betas = full.scheduler.betas
    for i in (1, 500, 999):
        torch.testing.assert_close(full.beta(i), betas[i], rtol=1e-3, atol=0)
    assert RespacedSchedule(skip=198).start == 1
    # the last step (i = 0) adds no noise, the one before it does
    torch.manual_seed(0)
    x, eps = torch.randn(1, 3, 4, 4), torch.randn(1, 3, 4, 4)
    n1, n2 = torch.randn(1, 3, 4, 4), torch.randn(1, 3, 4, 4)
    assert torch.equal(
        s.step(x, 0, eps, None, None, n1)[0],
        s.step(x, 0, eps, None, None, n2)[0])
    assert not torch.allclose(
        s.step(x, 1, eps, None, None, n1)[0],
        s.step(x, 1, eps, None, None, n2)[0])
    with pytest.raises(ValueError, match='skip=199'):
        RespacedSchedule(skip=199)


def test_threshold_is_strictly_above():
    """Reference: ``z > sigma`` (-0.2); a score exactly at the threshold
    is background."""
    z = torch.tensor([[[-0.3, -0.2, -0.1999]]])
    assert threshold_mask(z, -0.2).tolist() == [[[False, False, True]]]


def test_default_schedule_preprocessing_and_timestep_draws(monkeypatch):
    """guided-diffusion's schedule (1000 linear betas 1e-4 .. 0.02, no
    clipping inside the scheduler), uint8 images to [-1, 1] in their
    channel order, ``alphas_cumprod`` not saved, t ~ U{0, ..., T - 1}."""
    import numpy as np
    model = MODELS.build(tiny_ddpm_cfg())
    cfg = model.scheduler.config
    assert cfg.num_train_timesteps == 1000 and not cfg.clip_sample
    np.testing.assert_allclose(
        model.scheduler.betas.numpy(),
        np.linspace(1e-4, 0.02, 1000),
        rtol=1e-5)
    default = tiny_ddpm_cfg()
    default.pop('num_sample_steps')
    assert MODELS.build(default).num_sample_steps == 50
    img = torch.zeros(3, 2, 2, dtype=torch.uint8)
    img[0] = 255  # red channel white, the others black
    img[1, 0, 0] = 51
    data = model.data_preprocessor(
        dict(inputs=[img], data_samples=_samples([1])))
    expect = img.float() / 127.5 - 1
    torch.testing.assert_close(data['inputs'][0], expect)
    assert 'alphas_cumprod' not in model.state_dict()
    seen = []
    monkeypatch.setattr(model, 'predict_noise',
                        lambda x, t, y: seen.append(t) or torch.zeros_like(x))
    model.loss(torch.zeros(20000, 3, 1, 1), torch.zeros(20000).long())
    assert int(seen[0].min()) == 0 and int(seen[0].max()) == 999


def test_sample_is_ancestral_ddpm_on_the_eps_channels():
    """``sample``: the scheduler's DDPM steps from N(0, I) on the first
    three output channels (a learned-variance UNet has six), clipped to
    [-1, 1] at the end."""
    torch.manual_seed(0)
    model = MODELS.build(tiny_ddpm_cfg(out_channels=6)).eval()
    labels = torch.tensor([0, 3])
    out = model.sample(labels, generator=torch.Generator().manual_seed(4))
    g = torch.Generator().manual_seed(4)
    sched = DDPMScheduler(**model.scheduler_cfg)
    sched.set_timesteps(3)  # num_sample_steps of the tiny config
    x = torch.randn(2, 3, 16, 16, generator=g)
    with torch.no_grad():
        for t in sched.timesteps:
            eps = model.unet(x, t.expand(2), class_labels=labels).sample[:, :3]
            x = sched.step(eps, t, x, generator=g).prev_sample
    assert x.abs().max() > 1  # the clip matters here
    torch.testing.assert_close(out, x.clamp(-1, 1))
