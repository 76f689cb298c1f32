# Copyright (c) mmssl contributors. All rights reserved.
"""LabelContrastMaskGenerator: the label pair, the fed-back x0-hat, the
z-map bookkeeping and the mask options."""
import os.path as osp
import sys

import pytest
import torch

from mmssl.models.diffusion import MaskError, predict_x0, standardise
from mmssl.registry import MODELS

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from difffashion_helpers import (BOX, BoxStubUNet, LabelBoxStubUNet,
                                 build_tiny, images, make_editor)

BOX_A = (slice(2, 8), slice(3, 11))
BOX_B = (slice(9, 14), slice(6, 14))


@pytest.fixture(scope='module')
def tiny():
    return build_tiny(16)


def _box(region):
    out = torch.zeros(16, 16)
    out[region] = 1
    return out


def test_mask_is_the_label_dependent_box(tiny):
    _, vit = tiny
    editor = make_editor(BoxStubUNet(), vit)
    garment, _ = images()
    out = editor.make_mask(garment, generator=torch.Generator().manual_seed(0))
    mask = out['mask']
    assert mask.shape == (1, 1, 16, 16)
    assert set(mask.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(mask[0, 0], _box(BOX))
    assert out['score'].shape == (1, 16, 16)
    assert len(out['candidates']) == 2


@pytest.mark.parametrize('source', ['trajectory', 'noised'])
def test_mask_contrasts_the_garment_label_with_the_sets(tiny, source):
    """Reference ``get_mask``: the garment's label (636) against the mean
    of each set's labels, per image of a batch."""
    _, vit = tiny
    # label 2 (the garment) moves box A, label 0 (not in the sets) box B,
    # labels 1 and 3 nothing
    unet = LabelBoxStubUNet({2: BOX_A, 0: BOX_B})
    editor = make_editor(
        unet,
        vit,
        garment_label=2,
        label_sets=[[1], [3]],
        mask=dict(source=source, mode='per_set'))
    garment, _ = images(0, n=2)
    out = editor.make_mask(garment, generator=torch.Generator().manual_seed(0))
    for m in [out['mask'][:, 0]] + out['candidates']:
        for b in range(2):
            assert torch.equal(m[b].float(), _box(BOX_A)), b
    # another garment label, the same sets: its own box
    out = editor.make_mask(garment, 0)
    assert torch.equal(out['mask'][1, 0], _box(BOX_B))


def test_mask_is_scored_on_the_fed_back_x0_hat(tiny):
    """Reference: ``get_mask(model, mask_sample['pred_xstart'], t=64)``:
    the UNet sees the clean estimate x0-hat of the trajectory sample at the
    mask step, at the mask step's timestep."""
    _, vit = tiny
    unet = LabelBoxStubUNet({0: BOX_A}, w=0.3)
    editor = make_editor(
        unet,
        vit,
        garment_label=0,
        label_sets=[[1, 2]],
        schedule=dict(num_steps=20))
    garment, _ = images()
    editor.make_mask(garment, generator=torch.Generator().manual_seed(0))
    s = editor.schedule
    index = s.scale(64)
    assert len(unet.calls) == editor.mask_generator.num_model_steps(editor) + 2
    (x_t, t_prev, y_prev), (x_in, t, y) = unet.calls[-2:]
    t_mask = s.t_at(index)
    assert set(t_prev.tolist()) == {t_mask} and y_prev.tolist() == [0]
    assert set(t.tolist()) == {t_mask} and y.tolist() == [0, 1, 2]
    eps = unet.w.detach() * x_t + _box(BOX_A)
    x0_hat = predict_x0(x_t, eps, s.alpha(index))
    for k in range(3):
        torch.testing.assert_close(x_in[k:k + 1], x0_hat)
    assert not torch.allclose(x_in[:1], x_t)


def test_label_sets_z_maps_are_averaged_without_restandardising(tiny):
    """Documented (mode='mean'): the score is the plain mean of the sets'
    z-maps; the threshold applies to it as it is."""
    _, vit = tiny
    # set [1] finds a small box (6 % of the image), set [3] nothing (its
    # z-map is 0): the mean's background lies at half the small box's
    # background z-score, above -0.2, so the mask covers the whole image;
    # standardised again, the mean would give the box
    unet = LabelBoxStubUNet({1: (slice(2, 6), slice(3, 7))})
    editor = make_editor(
        unet,
        vit,
        garment_label=0,
        label_sets=[[1], [3]],
        mask=dict(source='noised', clean_kernel=1))
    garment, _ = images()
    out = editor.make_mask(garment, generator=torch.Generator().manual_seed(0))
    a, b = out['set_scores']
    assert torch.equal(b, torch.zeros_like(b))
    torch.testing.assert_close(out['score'], (a + b) / 2)
    assert torch.equal(out['mask'][:, 0] > 0, out['score'] > -0.2)
    assert bool((out['mask'] > 0).all())
    small = _box((slice(2, 6), slice(3, 7))) > 0
    assert torch.equal(standardise(out['score'])[0] > -0.2, small)
    assert torch.equal(out['candidates'][0][0], small)


def test_random_model_mask_and_empty_masks(tiny):
    ddpm, vit = tiny
    garment, _ = images()
    editor = make_editor(ddpm, vit)
    mask = editor.make_mask(garment)['mask']
    assert mask.shape == (1, 1, 16, 16) and 0 < mask.mean() < 1
    never = make_editor(ddpm, vit, mask=dict(threshold=50.))
    with pytest.raises(MaskError, match='empty'):
        never.make_mask(garment)
    with pytest.raises(MaskError, match='given garment mask is empty'):
        editor.edit(garment, garment, mask=torch.zeros(1, 1, 16, 16))


def test_draws_average_the_score_maps(tiny):
    ddpm, vit = tiny
    garment, _ = images()
    one = make_editor(ddpm, vit)
    three = make_editor(ddpm, vit, mask=dict(draws=3))
    gen = torch.Generator().manual_seed(0)
    sets = one.mask_generator.sets_for(0, 4)
    maps = [
        one.mask_generator._draw(one, garment, 0, sets, gen, None)
        for _ in range(3)
    ]
    out = three.make_mask(garment, generator=torch.Generator().manual_seed(0))
    for k in range(2):  # two label sets
        mean = torch.stack([m[k] for m in maps]).mean(0)
        expect = (mean - mean.mean()) / mean.std()
        torch.testing.assert_close(out['set_scores'][k], expect)
    # one draw is the reference computation, unchanged
    torch.testing.assert_close(
        one.make_mask(garment,
                      generator=torch.Generator().manual_seed(0))['score'],
        torch.stack(maps[0]).mean(0))
    calls = []
    three.make_mask(garment, progress=lambda: calls.append(1))
    assert len(calls) == three.num_model_steps() - \
        three.num_model_steps(with_mask=False)
    box = make_editor(BoxStubUNet(), vit, mask=dict(draws=2))
    assert torch.equal(box.make_mask(garment)['mask'][0, 0], _box(BOX))


def test_per_set_mode_one_transfer_per_mask(tiny):
    ddpm, vit = tiny
    garment, reference = images()
    editor = make_editor(
        ddpm,
        vit,
        schedule=dict(num_steps=5, resample=1),
        mask=dict(mode='per_set'))
    calls = []
    out = editor.edit(
        garment, reference, seed=0, progress=lambda: calls.append(1))
    assert len(calls) == editor.num_model_steps()
    assert len(out['per_set']) == 2
    gen = torch.Generator().manual_seed(0)
    masks = editor.make_mask(garment, generator=gen)
    state = gen.get_state()
    for k, run in enumerate(out['per_set']):
        mask = masks['candidates'][k].unsqueeze(1).float()
        assert torch.equal(run['mask'], mask)
        gen.set_state(state)
        ref = editor.transfer(garment, reference, mask, generator=gen)
        torch.testing.assert_close(run['result'], ref['result'])
    assert out['result'] is out['per_set'][0]['result']
    empty = make_editor(
        BoxStubUNet(), vit, mask=dict(mode='per_set', threshold=50.))
    with pytest.raises(MaskError, match='label set 0'):
        empty.make_mask(garment)


def test_noised_source_feeds_the_noised_garment(tiny):
    ddpm, vit = tiny
    garment, _ = images()
    for contrast in ('mean', 'per_label'):
        editor = make_editor(
            BoxStubUNet(),
            vit,
            mask=dict(source='noised', draws=2, contrast=contrast))
        calls = []
        out = editor.make_mask(garment, progress=lambda: calls.append(1))
        assert torch.equal(out['mask'][0, 0], _box(BOX))
        assert not calls and editor.num_model_steps() == \
            editor.num_model_steps(with_mask=False)
    unet = LabelBoxStubUNet({0: BOX_A})
    editor = make_editor(
        unet, vit, label_sets=[[1, 2, 3]], mask=dict(source='noised', draws=2))
    editor.make_mask(garment, generator=torch.Generator().manual_seed(5))
    assert len(unet.calls) == 2  # one batched call per draw
    assert [c[2].tolist() for c in unet.calls] == [[0, 1, 2, 3]] * 2
    index = editor.schedule.scale(64)
    assert {int(t)
            for c in unet.calls
            for t in c[1]} == {editor.schedule.t_at(index)}
    noised = editor.schedule.add_noise(garment, index,
                                       torch.Generator().manual_seed(5))
    for k in range(4):
        torch.testing.assert_close(unet.calls[0][0][k:k + 1], noised)


def test_generator_settings_and_errors():
    gen = MODELS.build(
        dict(
            type='mmssl.LabelContrastMaskGenerator', label_sets=[[0, 1], [2]]))
    assert gen.sets_for(1, 4) == [[0], [2]]
    assert gen.sets_for(2, 4) == [[0, 1]]
    assert MODELS.build(dict(
        type='mmssl.LabelContrastMaskGenerator')).sets_for(1, 4) == [[0, 2, 3]]
    with pytest.raises(ValueError, match='no mask label set'):
        MODELS.build(
            dict(type='mmssl.LabelContrastMaskGenerator',
                 label_sets=[[2]])).sets_for(2, 4)
    for bad, match in ((dict(mode='max'), 'mode'), (dict(draws=0), 'draws'),
                       (dict(source='x0'), 'source'), (dict(contrast='max'),
                                                       'contrast'),
                       (dict(smooth=2), 'smooth'), (dict(smooth=0), 'smooth'),
                       (dict(clean_kernel=4), 'clean_kernel'),
                       (dict(clean_kernel=-1),
                        'clean_kernel'), (dict(label_sets=[[]]), 'non-empty')):
        with pytest.raises(ValueError, match=match):
            MODELS.build(dict(type='mmssl.LabelContrastMaskGenerator', **bad))


@pytest.mark.parametrize('clip_x0', [False, True])
def test_label_means_are_the_posterior_means_by_hand(tiny, clip_x0):
    """Each label's map comes from the DDPM posterior mean q(x_{i-1} | x_i,
    x0-hat) of that label's noise estimate, x0-hat clipped to [-1, 1] only
    with ``clip_x0``."""
    _, vit = tiny
    unet = LabelBoxStubUNet({1: BOX_A}, w=0.3)
    editor = make_editor(unet, vit, mask=dict(clip_x0=clip_x0))
    gen, s = editor.mask_generator, editor.schedule
    x = images(3, n=2)[0] * 2
    index = s.scale(64)
    means = gen._label_means(editor, x, index, [0, 1])
    a, a_prev = s.alpha(index).item(), s.alpha(index - 1).item()
    beta = 1 - a / a_prev
    assert a < a_prev < 1
    for label, mean in zip((0, 1), means):
        eps = 0.3 * x + (label == 1) * _box(BOX_A)
        x0 = (x - (1 - a)**0.5 * eps) / a**0.5
        assert x0.abs().max() > 1.5  # clipping changes it
        if clip_x0:
            x0 = x0.clamp(-1, 1)
        expect = (
            a_prev**0.5 * beta / (1 - a) * x0 + (1 - beta)**0.5 *
            (1 - a_prev) / (1 - a) * x)
        torch.testing.assert_close(mean, expect)


def test_label_range_checked_at_its_ends():
    build = lambda sets: MODELS.build(  # noqa: E731
        dict(type='mmssl.LabelContrastMaskGenerator', label_sets=sets))
    build([[0, 3]]).check_labels(4)
    build(None).check_labels(4)
    for bad in (4, -1):
        with pytest.raises(ValueError, match=rf'\[{bad}\] outside \[0, 4\)'):
            build([[0, bad]]).check_labels(4)
    # the last step is a valid mask step; below it is not
    assert MODELS.build(
        dict(type='mmssl.LabelContrastMaskGenerator',
             mask_index=0)).mask_index == 0
    with pytest.raises(ValueError, match='mask_index'):
        MODELS.build(
            dict(type='mmssl.LabelContrastMaskGenerator', mask_index=-1))


def test_empty_mask_check_follows_the_mode(tiny):
    """``per_set`` refuses an empty candidate even when the mean's mask is
    not empty; ``mean`` checks only its own mask."""
    _, vit = tiny
    # set [1]: one pixel (removed by the 3x3 opening), set [2]: a box
    unet = LabelBoxStubUNet({1: (slice(3, 4), slice(3, 4)), 2: BOX_B})
    garment, _ = images()
    kw = dict(source='noised', threshold=0.5)
    mean = make_editor(
        unet, vit, label_sets=[[1], [2]], mask=dict(mode='mean', **kw))
    out = mean.make_mask(garment)
    assert not out['candidates'][0].any()
    assert torch.equal(out['mask'][0, 0], _box(BOX_B))
    per_set = make_editor(
        unet, vit, label_sets=[[1], [2]], mask=dict(mode='per_set', **kw))
    with pytest.raises(MaskError, match='of label set 0 is empty'):
        per_set.make_mask(garment)
