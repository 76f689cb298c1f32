# Copyright (c) mmssl contributors. All rights reserved.
"""Adversarial noisy masking, label softening, the reconstruction decoder
and GMM label quality."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mmssl.models.necks import (MaskReconstructionDecoder,
                                ReconstructionMSELoss, reconstruction_loss)
from mmssl.models.utils import (AdversarialNoisyMasking, activation_map, auroc,
                                box_mask, box_sizes, erase, gmm_label_quality,
                                mask_ratio, normalise_losses, peak_locations,
                                place_boxes, rectangles, soften_labels)
from mmssl.registry import MODELS


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _spike(r, c, hw=(32, 32), batch=1):
    amap = torch.zeros(batch, *hw)
    amap[:, r, c] = 1.
    return amap


# -- activation map and boxes -------------------------------------------------


def test_activation_map_of_a_feature_spike():
    feats = torch.zeros(2, 8, 4, 4)
    feats[0, :, 1, 2] = 1.
    feats[1, 3, 3, 0] = -2.  # squared: the sign does not matter
    amap = activation_map(feats, (32, 32))
    assert amap.shape == (2, 32, 32)
    assert amap.min() == 0 and torch.allclose(amap.amax((1, 2)), torch.ones(2))
    max_rc, min_rc = peak_locations(amap)
    # a cell of the 4 x 4 map covers 8 x 8 pixels
    assert max_rc[0, 0] // 8 == 1 and max_rc[0, 1] // 8 == 2
    assert max_rc[1, 0] // 8 == 3 and max_rc[1, 1] // 8 == 0
    assert amap[0, min_rc[0, 0], min_rc[0, 1]] == 0
    # without resizing the peaks are the feature cells
    max_rc, _ = peak_locations(activation_map(feats))
    assert max_rc.tolist() == [[1, 2], [3, 0]]


def test_activation_map_values_by_hand():
    """A = sum_c F_c^2 / ||.||, resized like cv2.resize (bilinear, half
    pixel centres) to a non-square image, min-max scaled per sample."""
    import cv2
    torch.manual_seed(0)
    feats = torch.randn(2, 5, 4, 6) + 0.5
    want = []
    for m in (feats.double()**2).sum(1).numpy():
        m = cv2.resize(
            m / np.linalg.norm(m), (20, 12), interpolation=cv2.INTER_LINEAR)
        want.append((m - m.min()) / (m.max() - m.min()))
    got = activation_map(feats, (12, 20))
    np.testing.assert_allclose(got.numpy(), np.stack(want), atol=1e-6)
    # at the feature size: no resize, only the scaling
    a = (feats**2).sum(1)
    lo, hi = a.amin((1, 2), keepdim=True), a.amax((1, 2), keepdim=True)
    torch.testing.assert_close(activation_map(feats), (a - lo) / (hi - lo))
    torch.testing.assert_close(
        activation_map(feats, (4, 6)), (a - lo) / (hi - lo))


@pytest.mark.parametrize('r,c', [(5, 9), (0, 0), (20, 3)])
def test_corner_box_starts_at_the_spike(r, c):
    max_rc, min_rc = peak_locations(_spike(r, c))
    assert max_rc.tolist() == [[r, c]]
    assert min_rc.tolist() == ([[0, 1]] if (r, c) == (0, 0) else [[0, 0]])
    boxes = rectangles(
        torch.tensor([0.1]), (32, 32),
        anchor_rc=max_rc,
        mode='corner',
        generator=_gen(0))
    top, left, bottom, right = boxes[0].tolist()
    assert (top, left) == (r, c) and bottom > top and right > left


def test_boxes_are_clamped_inside_and_centred_boxes_contain_the_peak():
    g = _gen(1)
    anchors = torch.randint(0, 32, (500, 2), generator=g)
    anchors[:4] = torch.tensor([[31, 31], [0, 31], [31, 0], [0, 0]])
    rho = 0.02 + 0.08 * torch.rand(500, generator=g)
    sizes = box_sizes(rho, (32, 32), generator=g)
    for mode in ('corner', 'center'):
        boxes = place_boxes(sizes, anchors, (32, 32), mode)
        assert (boxes[:, :2] >= 0).all() and (boxes[:, 2:] <= 32).all()
        assert torch.equal(boxes[:, 2:] - boxes[:, :2], sizes)  # no shrink
    inside = box_mask(boxes, (32, 32))
    assert inside[torch.arange(500), anchors[:, 0], anchors[:, 1]].all()
    corner = place_boxes(sizes, anchors, (32, 32), 'corner')
    fits = ((anchors + sizes) <= 32).all(1)
    assert torch.equal(corner[fits, :2], anchors[fits])  # unless clamped
    # rho = 0 erases nothing: an empty box
    assert box_sizes(torch.zeros(2), (32, 32)).tolist() == [[0, 0], [0, 0]]
    # a box bigger than the image is shrunk to it
    big = box_sizes(torch.tensor([5.]), (32, 32), area_factor=1.)
    assert big.tolist() == [[32, 32]]


def test_centred_boxes_start_half_a_size_before_the_anchor():
    g = _gen(3)
    anchors = torch.randint(0, 64, (300, 2), generator=g)
    sizes = box_sizes(torch.full((300, ), 0.08), (64, 64), generator=g)
    boxes = place_boxes(sizes, anchors, (64, 64), 'center')
    start = anchors - sizes // 2
    fits = ((start >= 0) & (start + sizes <= 64)).all(1)
    assert fits.sum() > 100
    assert torch.equal(boxes[fits, :2], start[fits])


def test_box_size_defaults_area_and_aspect():
    """Defaults of the reference: erased area 0.5 * rho * H * W, aspect
    h / w ~ U(0.8, 1.25); rectangles() draws anchors over the whole image
    when none are given."""
    g = _gen(4)
    n, side = 4000, 1000
    rho = torch.full((n, ), 0.04)
    for boxes in (rectangles(rho, (side, side), generator=g),
                  place_boxes(
                      box_sizes(rho, (side, side), generator=g),
                      torch.zeros(n, 2, dtype=torch.long), (side, side))):
        hw = (boxes[:, 2:] - boxes[:, :2]).double()
        area = hw.prod(1)
        assert ((area / (0.5 * 0.04 * side * side)) - 1).abs().max() < 0.02
        ratio = hw[:, 0] / hw[:, 1]
        assert 0.79 < ratio.min() < 0.81 and 1.24 < ratio.max() < 1.26
        assert abs(ratio.mean().item() - 1.025) < 0.01  # uniform in a
    tops = rectangles(rho, (side, side), mode='corner', generator=g)[:, :2]
    # uniform anchors: each quarter of the rows / columns is reached
    assert (tops.float().mean(0) - side / 2).abs().max() < 0.05 * side
    assert (tops.amax(0) > 0.75 * side).all()


def test_mask_ratio_defaults():
    """rho = U(0.02, 0.07) + 0.03 (1 - w)."""
    g = _gen(5)
    for w, shift in ((1.0, 0.0), (0.0, 0.03)):
        rho = mask_ratio(torch.full((20000, ), w), generator=g)
        assert 0.02 + shift <= rho.min() < 0.0205 + shift
        assert 0.0695 + shift < rho.max() < 0.07 + shift
        assert abs(rho.mean().item() - (0.045 + shift)) < 1e-3


def test_erased_fraction_is_half_rho_within_rounding():
    g = _gen(2)
    B, H, W = 400, 32, 32
    rho = 0.02 + 0.08 * torch.rand(B, generator=g)
    boxes = rectangles(rho, (H, W), generator=g)
    sizes = boxes[:, 2:] - boxes[:, :2]
    area = sizes.prod(1).float()
    target = 0.5 * rho * H * W
    side = target.sqrt() * 1.25**0.5  # longest exact side for the aspects
    assert ((area - target).abs() <= side + 0.25).all()
    assert abs((area / (H * W)).mean() / (0.5 * rho.mean()) - 1) < 0.03
    images = torch.randn(B, 3, H, W, generator=g)
    out = erase(images, boxes, generator=g)
    changed = (out != images).any(1)
    assert torch.equal(changed, box_mask(boxes, (H, W)))
    # one constant per sample and channel, from U(0, 1)
    b = 7
    t, left, bot, r = boxes[b].tolist()
    patch = out[b, :, t:bot, left:r].flatten(1)
    assert torch.equal(patch.amin(1), patch.amax(1))
    assert ((patch >= 0) & (patch < 1)).all()


def test_mask_ratio_grows_as_quality_falls():
    n = 20000
    low = mask_ratio(torch.zeros(n), generator=_gen(3))
    high = mask_ratio(torch.ones(n), generator=_gen(4))
    assert abs((low.mean() - high.mean()).item() - 0.03) < 0.005
    assert low.min() >= 0.05 and low.max() <= 0.1
    assert high.min() >= 0.02 and high.max() <= 0.07
    # the same draw is monotone in w
    w = torch.linspace(0, 1, 50)
    rho_a = mask_ratio(w, generator=_gen(5))
    rho_b = mask_ratio(w + 0.1, generator=_gen(5))
    assert (rho_b < rho_a).all()
    assert torch.allclose(rho_a - rho_b, torch.full((50, ), 0.003), atol=1e-6)


# -- label softening ----------------------------------------------------------


def test_soften_one_hot_by_hand():
    out = soften_labels(F.one_hot(torch.tensor([3]), 10).float(), 0.05)
    expected = torch.full((1, 10), 0.05 / 9)
    expected[0, 3] = 0.95
    assert torch.allclose(out, expected, atol=1e-7)


def test_soften_two_classes_scalar_and_per_sample_rho():
    two = torch.tensor([[1., 0.], [0., 1.], [0.7, 0.3]])
    out = soften_labels(two, 0.1)  # one rho for the batch
    want = torch.tensor([[0.9, 0.1], [0.1, 0.9], [0.6, 0.4]])
    torch.testing.assert_close(out, want)
    out = soften_labels(two, torch.tensor([0.1, 0.2, 0.0]))
    want = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3]])
    torch.testing.assert_close(out, want)
    for bad in (torch.ones(3, 1), torch.ones(4)):
        with pytest.raises(ValueError, match='C >= 2'):
            soften_labels(bad, 0.1)


def test_soften_soft_targets_keeps_the_sum():
    g = _gen(6)
    target = torch.softmax(3 * torch.randn(64, 10, generator=g), 1)
    rho = 0.1 * torch.rand(64, generator=g)
    out = soften_labels(target, rho)
    assert torch.allclose(out.sum(1), torch.ones(64), atol=1e-6)
    top, idx = target.max(1)
    assert torch.allclose(out.gather(1, idx[:, None])[:, 0], top - rho)
    rise = (out - target).scatter(1, idx[:, None], 0.)
    expected = (rho / 9)[:, None].expand(-1, 10).scatter(1, idx[:, None], 0.)
    assert torch.allclose(rise, expected, atol=1e-7)
    # rho above the largest entry is clamped: nothing negative, sum kept
    flat = torch.full((2, 10), 0.1)
    out = soften_labels(flat, torch.tensor([0.5, 0.05]))
    assert (out >= 0).all() and torch.allclose(out.sum(1), torch.ones(2))
    assert out[0, 0] == 0 and torch.isclose(out[1, 0], torch.tensor(0.05))


# -- the module ---------------------------------------------------------------


def _batch(seed=7, B=6):
    g = _gen(seed)
    images = torch.randn(B, 3, 32, 32, generator=g)
    feats = torch.rand(B, 16, 4, 4, generator=g)
    quality = torch.rand(B, generator=g)
    targets = torch.softmax(torch.randn(B, 10, generator=g), 1)
    return images, feats, quality, targets


def test_masking_module_is_seeded_and_local():
    anm = MODELS.build(dict(type='mmssl.AdversarialNoisyMasking', seed=0))
    assert anm.anchor == 'center' and anm.locations == ('max', 'min')
    images, feats, quality, targets = _batch()
    out = anm(images, feats, quality, targets, generator=_gen(11))
    again = anm(images, feats, quality, targets, generator=_gen(11))
    other = anm(images, feats, quality, targets, generator=_gen(12))
    for loc in ('max', 'min'):
        assert torch.equal(out.images[loc], again.images[loc])
        assert torch.equal(out.boxes[loc], again.boxes[loc])
        assert not torch.equal(out.images[loc], other.images[loc])
        # each view differs from the input only inside its box
        inside = box_mask(out.boxes[loc], (32, 32))[:, None]
        assert torch.equal(out.images[loc] * ~inside, images * ~inside)
        # the boxes sit on the activation peaks of the feature map
        amap = activation_map(feats, (32, 32))
        peaks = peak_locations(amap)[0 if loc == 'max' else 1]
        assert torch.equal(out.peaks[loc], peaks)
        assert box_mask(out.boxes[loc], (32, 32))[torch.arange(6), peaks[:, 0],
                                                  peaks[:, 1]].all()
    # one size per sample shared by both locations
    size = out.boxes['max'][:, 2:] - out.boxes['max'][:, :2]
    assert torch.equal(size, out.boxes['min'][:, 2:] - out.boxes['min'][:, :2])
    assert torch.allclose(out.targets, soften_labels(targets, out.rho))
    # the module's own generator: two modules of one seed agree
    a = AdversarialNoisyMasking(seed=3)(images, feats, quality)
    b = AdversarialNoisyMasking(seed=3)(images, feats, quality)
    assert torch.equal(a.images['max'], b.images['max']) and a.targets is None


def test_masking_module_options_and_errors():
    images, feats, quality, _ = _batch()
    anm = AdversarialNoisyMasking(
        anchor='corner', locations=('max', ), fill='zero', seed=0)
    out = anm(images, feats, quality)
    assert list(out.images) == ['max']
    t, left = out.boxes['max'][0, :2].tolist()
    assert out.images['max'][0, :, t, left].abs().sum() == 0
    for kwargs, match in [(dict(anchor='middle'), 'anchor'),
                          (dict(locations=('max', 'max')), 'locations'),
                          (dict(locations=('top', )), 'locations'),
                          (dict(base_ratio=(0.07, 0.02)), 'low <= high'),
                          (dict(aspect=(0, 1)), 'aspect'),
                          (dict(fill='noise'), 'fill')]:
        with pytest.raises(ValueError, match=match):
            AdversarialNoisyMasking(**kwargs)
    with pytest.raises(ValueError, match='same batch size'):
        anm(images, feats[:2], quality)
    # bounds: area_factor in (0, 1], ratios in [0, 1], aspect above 0
    with pytest.raises(ValueError, match='area_factor'):
        AdversarialNoisyMasking(area_factor=0.)
    edges = AdversarialNoisyMasking(
        area_factor=1., base_ratio=(0., 1.), quality_coef=0.)
    assert edges.area_factor == 1. and edges.base_ratio == (0., 1.)
    for bad in ((0.02, 0.05, 0.07), 0.05):
        with pytest.raises(ValueError, match='must be a .low, high. pair'):
            AdversarialNoisyMasking(base_ratio=bad)


def test_masking_module_defaults_are_the_papers():
    """rho ~ U(0.02, 0.07) + 0.03 (1 - w), erased area 0.5 rho H W,
    aspect U(0.8, 1.25), centred boxes at the max and min peaks, uniform
    constant fill."""
    anm = AdversarialNoisyMasking()
    assert (anm.base_ratio, anm.quality_coef, anm.area_factor,
            anm.aspect) == ((0.02, 0.07), 0.03, 0.5, (0.8, 1.25))
    assert (anm.anchor, anm.locations, anm.fill) == \
        ('center', ('max', 'min'), 'uniform_const')


# -- decoder ------------------------------------------------------------------


def test_decoder_presets_shapes():
    cifar = MODELS.build(
        dict(type='mmssl.MaskReconstructionDecoder', preset='cifar'))
    assert cifar(torch.randn(2, 512, 4, 4)).shape == (2, 3, 32, 32)
    # a backbone's tuple of maps: the last one is decoded
    assert cifar((torch.randn(1, 8, 2, 2), torch.randn(1, 512, 4, 4))).shape \
        == (1, 3, 32, 32)
    imagenet = MaskReconstructionDecoder('imagenet')
    assert imagenet.output_size(7) == (224, 224)
    with torch.no_grad():
        assert imagenet(torch.randn(1, 2048, 7, 7)).shape == (1, 3, 224, 224)
    assert [m.kernel_size for m in imagenet.layers] == [(6, 6), (2, 2), (2, 2)]


def test_decoder_presets_are_the_references_stacks():
    """(in, out, kernel, stride, output padding) of each ConvTranspose2d:
    CIFAR 512-256 k4 s2, 256-128 k6 s1, 128-3 k4 s2; ImageNet 2048-256 k6
    s3 op1, 256-128 k2 s3 op1, 128-3 k2 s3. The size rule also holds for
    non-square maps."""

    def stack(dec):
        return [(m.in_channels, m.out_channels, m.kernel_size[0], m.stride[0],
                 m.output_padding[0]) for m in dec.layers]

    cifar = MaskReconstructionDecoder('cifar')
    assert stack(cifar) == [(512, 256, 4, 2, 0), (256, 128, 6, 1, 0),
                            (128, 3, 4, 2, 0)]
    assert stack(MaskReconstructionDecoder('imagenet')) == [
        (2048, 256, 6, 3, 1), (256, 128, 2, 3, 1), (128, 3, 2, 3, 0)
    ]
    # 4 -> 10 -> 15 -> 32 and 6 -> 14 -> 19 -> 40
    assert cifar.output_size((4, 6)) == (32, 40)
    assert MaskReconstructionDecoder(
        'cifar', out_size=(32, 40)).out_size == (32, 40)


def test_decoder_of_one_layer_but_not_of_none():
    dec = MaskReconstructionDecoder(
        in_channels=4, channels=(3, ), kernel_sizes=(2, ), strides=(2, ))
    assert dec(torch.randn(1, 4, 4, 4)).shape == (1, 3, 8, 8)
    with pytest.raises(ValueError, match='one entry per layer'):
        MaskReconstructionDecoder(
            in_channels=4, channels=(), kernel_sizes=(), strides=())


def test_decoder_layer_ranges():
    """Kernels and strides are >= 1, output paddings >= 0 and smaller than
    their stride (ConvTranspose2d's rule)."""

    def one_layer(**kwargs):
        cfg = dict(
            in_channels=4, channels=(3, ), kernel_sizes=(2, ), strides=(2, ))
        return MaskReconstructionDecoder(**dict(cfg, **kwargs))

    assert one_layer(output_paddings=(1, )).output_size(4) == (9, 9)
    for key in ('kernel_sizes', 'strides'):
        with pytest.raises(ValueError, match=key):
            one_layer(**{key: (0, )})
    with pytest.raises(ValueError, match='output_paddings'):
        one_layer(output_paddings=(-1, ))
    with pytest.raises(ValueError, match='smaller than its stride'):
        one_layer(output_paddings=(2, ))


def test_decoder_takes_the_last_of_several_maps_and_weight_one_loss():
    dec = MaskReconstructionDecoder('cifar')
    maps = [
        torch.randn(1, 8, 2, 2),
        torch.randn(1, 512, 4, 4),
        torch.randn(1, 512, 4, 4)
    ]
    torch.testing.assert_close(dec(maps), dec(maps[-1]))
    pred, target = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    torch.testing.assert_close(ReconstructionMSELoss()(pred, target),
                               ((pred - target)**2).mean())


def test_decoder_generic_form_and_size_check():
    dec = MaskReconstructionDecoder(
        in_channels=16, channels=(8, 3), kernel_sizes=(4, 4), strides=(2, 2))
    assert dec.out_size is None
    assert dec(torch.randn(1, 16, 3, 3)).shape == (1, 3, 18, 18)
    with pytest.raises(ValueError, match=r'decodes to \(18, 18\).*\(32, 32\)'):
        dec(torch.randn(1, 16, 3, 3), target_size=32)
    cifar = MaskReconstructionDecoder('cifar')
    with pytest.raises(ValueError, match=r'\(7, 7\) feature map decodes'):
        cifar(torch.randn(1, 512, 7, 7))
    with pytest.raises(ValueError, match='one entry per layer'):
        MaskReconstructionDecoder(
            in_channels=4, channels=(3, ), kernel_sizes=(2, 2), strides=(1, ))
    with pytest.raises(ValueError, match='in_channels is needed'):
        MaskReconstructionDecoder()
    with pytest.raises(ValueError, match='preset must be one of'):
        MaskReconstructionDecoder('vit')


def test_reconstruction_loss():
    pred, target = torch.randn(2, 3, 8, 8), torch.randn(2, 3, 8, 8)
    assert torch.allclose(
        reconstruction_loss(pred, target), ((pred - target)**2).mean())
    loss = ReconstructionMSELoss(loss_weight=0.02)
    assert torch.allclose(loss(pred, target), 0.02 * F.mse_loss(pred, target))
    with pytest.raises(ValueError, match='shapes differ'):
        reconstruction_loss(pred, target[:, :, :4])


# -- label quality ------------------------------------------------------------


def test_gmm_separates_clean_from_noisy_losses():
    rng = np.random.default_rng(0)
    clean = np.abs(rng.normal(0.2, 0.1, 700))
    noisy = rng.normal(2.5, 0.4, 300)
    losses = np.concatenate([clean, noisy])
    is_clean = np.arange(1000) < 700
    w = gmm_label_quality(losses)
    assert w.shape == (1000, ) and w.dtype == np.float64
    assert ((w >= 0) & (w <= 1)).all()
    assert auroc(w, is_clean) > 0.98
    assert w[is_clean].mean() > 0.9 and w[~is_clean].mean() < 0.1
    # torch input and T epochs of losses
    w2 = gmm_label_quality(torch.tensor(np.stack([losses, losses * 3])))
    assert np.allclose(w2, w, atol=1e-6)


def test_normalised_losses_by_hand():
    np.testing.assert_allclose(normalise_losses([1., 3., 2.]), [0, 1, .5])
    np.testing.assert_allclose(normalise_losses([0.4, 0.1]), [1, 0])
    # T epochs: each row scaled on its own, then averaged
    np.testing.assert_allclose(
        normalise_losses([[1., 3., 2.], [10., 0., 5.]]), [0.5, 0.5, 0.5])
    np.testing.assert_allclose(
        normalise_losses([[1., 3., 2.], [0., 4., 1.]]), [0, 1, 0.375])


def test_gmm_is_dividemix_fit_on_overlapping_losses():
    """The defaults are DivideMix's GaussianMixture(n_components=2,
    max_iter=10, tol=1e-2, reg_covar=5e-4, random_state=0) on the
    normalised losses; w is the posterior of the low-mean component. Three
    overlapping groups keep EM going for several iterations, so tol,
    reg_covar and the seed each show in the result (EM stops by tol before
    the 10th iteration on such losses, so max_iter is read from the
    signature)."""
    import inspect

    from sklearn.mixture import GaussianMixture
    rng = np.random.default_rng(2)
    losses = np.concatenate([
        rng.normal(0, 0.1, 300),
        rng.normal(0.5, 0.1, 400),
        rng.normal(1, 0.1, 300)
    ])
    x = normalise_losses(losses).reshape(-1, 1)
    ref = GaussianMixture(
        n_components=2, max_iter=10, tol=1e-2, reg_covar=5e-4,
        random_state=0).fit(x)
    assert ref.n_iter_ > 3
    want = ref.predict_proba(x)[:, ref.means_.argmin()]
    np.testing.assert_allclose(gmm_label_quality(losses), want, atol=1e-12)
    defaults = {
        k: v.default
        for k, v in inspect.signature(gmm_label_quality).parameters.items()
        if k != 'losses'
    }
    assert defaults == dict(max_iter=10, tol=1e-2, reg_covar=5e-4, seed=0)


def test_label_quality_errors():
    with pytest.raises(ValueError, match='1 sample'):
        gmm_label_quality([0.3])
    with pytest.raises(ValueError, match='tol'):
        gmm_label_quality([0.1, 0.5, 0.9], tol=0.)
    with pytest.raises(ValueError, match='all losses are equal'):
        gmm_label_quality(np.full(10, 0.7))
    with pytest.raises(ValueError, match='NaN or infinite'):
        gmm_label_quality([0.1, float('nan'), 0.3])
    with pytest.raises(ValueError, match='both clean and noisy'):
        auroc([0.1, 0.2], [True, True])
    with pytest.raises(ValueError, match='differ in length'):
        auroc([0.1, 0.2], [True])
