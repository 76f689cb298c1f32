# Copyright (c) mmssl contributors. All rights reserved.
"""What the embedded shape scenes draw: outlines, colours, textures,
anti-aliasing, instance maps and layouts."""
import colorsys
import copy
import math

import numpy as np
import pytest

import mmssl.datasets.embedded_shapes as es
from mmssl.datasets.embedded_shapes import (BACKGROUNDS, SHAPE_CLASSES,
                                            SHAPE_HIERARCHY, SHAPE_PARENT,
                                            TEXTURES, render_scene,
                                            sample_cls_scene, sample_det_scene,
                                            shape_polygon)


def _rng(seed=0):
    return np.random.default_rng(seed)


def _polar(pts):
    """Distances ``(K,)`` and angles ``(K,)`` of outline points about 0."""
    return np.hypot(pts[:, 0], pts[:, 1]), np.arctan2(pts[:, 1], pts[:, 0])


def _shoelace(pts):
    x, y = pts[:, 0], pts[:, 1]
    return 0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))


def _wrap(angle):
    return (angle + math.pi) % (2 * math.pi) - math.pi


def test_class_table():
    assert SHAPE_CLASSES == ('circle', 'ellipse', 'semicircle', 'triangle',
                             'square', 'pentagon', 'hexagon', 'star', 'cross')
    assert list(SHAPE_HIERARCHY) == ['round', 'polygon', 'spiky']
    assert SHAPE_PARENT['semicircle'] == 'round'
    assert SHAPE_PARENT['hexagon'] == 'polygon'
    assert SHAPE_PARENT['cross'] == 'spiky'
    # display colours: distinct RGB triples, none the black background
    palette = es.SHAPE_PALETTE
    assert len(palette) == len(SHAPE_CLASSES) == len(set(palette))
    assert all(len(c) == 3 and all(0 <= v <= 255 for v in c) for c in palette)
    assert (0, 0, 0) not in palette


def test_circle_and_rotation_and_centre():
    pts = shape_polygon('circle', _rng(), (10., 20.), 5., 0.3)
    assert pts.shape == (48, 2)
    dist, ang = _polar(pts - (10., 20.))
    np.testing.assert_allclose(dist, 5.)
    # evenly spaced, the first point on the rotation angle
    assert abs(_wrap(ang[0] - 0.3)) < 1e-9
    np.testing.assert_allclose(_wrap(np.diff(ang)), 2 * math.pi / 48)
    # any shape rotated by a: the unrotated outline turned about the centre
    for name in SHAPE_CLASSES:
        flat = shape_polygon(name, _rng(3), (0., 0.), 7., 0.)
        turned = shape_polygon(name, _rng(3), (4., -2.), 7., 1.1)
        c, s = math.cos(1.1), math.sin(1.1)
        np.testing.assert_allclose(
            turned, flat @ np.array([[c, s], [-s, c]]) + (4., -2.))


def test_ellipse_axes():
    aspects = []
    for seed in range(400):
        pts = shape_polygon('ellipse', _rng(seed), (0., 0.), 10., 0.)
        assert pts.shape == (48, 2)
        assert pts[:, 0].max() == pytest.approx(10.)
        assert pts[:, 0].min() == pytest.approx(-10.)
        aspects.append(pts[:, 1].max() / 10.)
        np.testing.assert_allclose(pts[:, 1].min(), -pts[:, 1].max())
        # an ellipse: (x / a)^2 + (y / b)^2 = 1
        np.testing.assert_allclose(
            (pts[:, 0] / 10.)**2 + (pts[:, 1] / pts[:, 1].max())**2, 1.)
    assert 0.4 <= min(aspects) < 0.41 and 0.61 < max(aspects) <= 0.62


def test_semicircle_centred_on_its_box():
    pts = shape_polygon('semicircle', _rng(), (0., 0.), 8., 0.)
    assert pts.shape == (25, 2)
    # the half disc's box is [-r, r] x [-r / 2, r / 2]
    np.testing.assert_allclose(pts.min(0), (-8., -4.), atol=1e-9)
    np.testing.assert_allclose(pts.max(0), (8., 4.), atol=1e-9)
    # every outline point lies on the arc about the middle of the flat side
    dist, _ = _polar(pts - (0., -4.))
    np.testing.assert_allclose(dist, 8.)
    np.testing.assert_allclose(
        pts[[0, 12, -1]], [(8, -4), (0, 4), (-8, -4)], atol=1e-9)


def test_star_points():
    ratios = []
    for seed in range(400):
        pts = shape_polygon('star', _rng(seed), (0., 0.), 6., 0.)
        assert pts.shape == (10, 2)
        dist, ang = _polar(pts)
        np.testing.assert_allclose(dist[0::2], 6.)
        np.testing.assert_allclose(dist[1::2], dist[1])
        ratios.append(dist[1] / 6.)
        # five points, the first straight up (-y), inner ones between them
        np.testing.assert_allclose(
            _wrap(ang - ang[0]), _wrap(np.arange(10) * math.pi / 5), atol=1e-9)
        assert abs(_wrap(ang[0] + math.pi / 2)) < 1e-9
    assert 0.38 <= min(ratios) < 0.385 and 0.495 < max(ratios) <= 0.5


def test_cross_arms():
    widths = []
    for seed in range(400):
        pts = shape_polygon('cross', _rng(seed), (0., 0.), 9., 0.)
        assert pts.shape == (12, 2)
        w = np.abs(pts).min()
        widths.append(w / 9.)
        # the arm tips lie on the circumcircle
        dist, _ = _polar(pts)
        length = np.abs(pts).max()
        # the arm length is r / hypot(1, w / r): the tips lie on a circle
        # just outside the circumcircle (by at most 0.6 %)
        assert length == pytest.approx(9. / math.hypot(1., w / 9.))
        np.testing.assert_allclose(np.sort(dist)[-8:], math.hypot(w, length))
        assert 9. < math.hypot(w, length) < 9. * 1.006
        # every vertex coordinate is a half width or an arm length
        assert np.isin(np.round(np.abs(pts), 9), np.round([w, length],
                                                          9)).all()
        # two bars of 2w x 2L over a shared 2w x 2w square
        assert _shoelace(pts) == pytest.approx(8 * w * length - 4 * w * w)
        # the same cross turned a quarter
        quarter = np.sort(np.round(pts[:, ::-1] * (1, -1), 9), axis=0)
        np.testing.assert_allclose(quarter, np.sort(np.round(pts, 9), axis=0))
    assert 0.22 <= min(widths) < 0.225 and 0.335 < max(widths) <= 0.34


@pytest.mark.parametrize('name,sides', [('triangle', 3), ('square', 4),
                                        ('pentagon', 5), ('hexagon', 6)])
def test_jittered_polygons(name, sides):
    radii, phases = [], []
    for seed in range(300):
        pts = shape_polygon(name, _rng(seed), (0., 0.), 10., 0.)
        assert pts.shape == (sides, 2)
        if name == 'triangle':
            # shifted a quarter radius towards its apex (-y)
            pts = pts + (0., 2.5)
        dist, ang = _polar(pts)
        radii.extend(dist / 10.)
        nominal = -math.pi / 2 + 2 * math.pi * np.arange(sides) / sides
        phases.extend(_wrap(ang - nominal))
    assert 0.93 <= min(radii) < 0.935 and 1.065 < max(radii) <= 1.07
    assert -0.07 <= min(phases) < -0.069 and 0.069 < max(phases) <= 0.07


def test_triangle_offset_and_unknown_shape():
    # vertex jitter aside, the apex is 1.25 r above the centre
    tri = shape_polygon('triangle', _rng(), (0., 0.), 10., 0.)
    apex = tri[np.argmin(tri[:, 1])]
    assert -13.4 < apex[1] < -11.6 and abs(apex[0]) < 0.8
    with pytest.raises(ValueError, match="'oval'.*circle"):
        shape_polygon('oval', _rng(), (0., 0.), 1., 0.)


def test_polygon_mask_fills_inclusive_pixels():
    mask = es._polygon_mask(
        np.array([(1., 1.), (4., 1.), (4., 3.), (1., 3.)]), 6)
    expected = np.zeros((6, 6), dtype=bool)
    expected[1:4, 1:5] = True
    assert mask.dtype == bool
    np.testing.assert_array_equal(mask, expected)


def test_random_colour_is_hsv_in_range():
    rng, ref = _rng(5), _rng(5)
    for _ in range(500):
        colour = es._random_colour(rng)
        h, s, v = ref.uniform(0, 1), ref.uniform(0.25, 1), ref.uniform(0.3, 1)
        np.testing.assert_allclose(
            colour, np.array(colorsys.hsv_to_rgb(h, s, v)) * 255, atol=1e-9)
    hsv = np.array([
        colorsys.rgb_to_hsv(*(es._random_colour(rng) / 255))
        for _ in range(3000)
    ])
    assert hsv[:, 0].max() > 0.99 and hsv[:, 0].min() < 0.01
    assert 0.25 <= hsv[:, 1].min() < 0.26 and hsv[:, 1].max() > 0.99
    assert 0.3 <= hsv[:, 2].min() < 0.31 and hsv[:, 2].max() > 0.99


def test_ramp_is_linear_from_0_to_1():
    for seed in range(20):
        ramp = es._ramp(_rng(seed), (9, 13))[..., 0]
        assert ramp.shape == (9, 13)
        assert ramp.min() == pytest.approx(0., abs=1e-6)
        assert ramp.max() == pytest.approx(1., abs=1e-6)
        theta = _rng(seed).uniform(0, 2 * math.pi)
        proj = (
            np.arange(13)[None] * math.cos(theta) +
            np.arange(9)[:, None] * math.sin(theta))
        np.testing.assert_allclose(
            ramp, (proj - proj.min()) / np.ptp(proj), atol=1e-5)
    # a single pixel has no extent: 0, not a division by zero
    assert es._ramp(_rng(), (1, 1)).item() == 0.


def _second_colour(seed, c1):
    """The shade ``_texture`` draws first, from the same generator."""
    ref = _rng(seed)
    c1 = c1.astype(np.float32)
    if ref.uniform() < 0.5:
        return c1 * ref.uniform(0.55, 0.8), ref
    return c1 + (255 - c1) * ref.uniform(0.2, 0.45), ref


def test_textures():
    c1 = np.array([200., 40., 100.])
    darker = lighter = 0
    for seed in range(40):
        c2, ref = _second_colour(seed, c1)
        darker += bool((c2 < c1).all())
        lighter += bool((c2 > c1).all())
        solid = es._texture(_rng(seed), (5, 7), c1, 'solid', 128)
        assert solid.shape == (5, 7, 3) and solid.dtype == np.float32
        assert (solid == c1.astype(np.float32)).all()

        grad = es._texture(_rng(seed), (16, 16), c1, 'gradient', 128)
        flat = grad.reshape(-1, 3)
        ends = flat[[
            np.abs(flat - c1).sum(1).argmin(),
            np.abs(flat - c2).sum(1).argmin()
        ]]
        np.testing.assert_allclose(ends, [c1, c2], atol=1e-3)

        noise = es._texture(_rng(seed), (64, 64), c1, 'noise', 128)
        std = ref.uniform(10, 30)
        # one grey-level noise for all channels, of the drawn spread
        offsets = noise - noise[..., :1]
        np.testing.assert_allclose(
            offsets, np.broadcast_to(c1 - c1[0], noise.shape), atol=1e-3)
        assert noise[..., 0].std() == pytest.approx(std, rel=0.05)
        assert noise[..., 0].mean() == pytest.approx(c1[0], abs=1.5)

        for kind in ('stripes', 'checker'):
            tex = es._texture(_rng(seed), (64, 64), c1, kind, 128)
            colours = {tuple(p) for p in tex.reshape(-1, 3).tolist()}
            assert colours == {
                tuple(c1.astype(np.float32).tolist()),
                tuple(c2.astype(np.float32).tolist())
            }
    assert darker > 10 and lighter > 10 and darker + lighter == 40
    with pytest.raises(ValueError, match="'dots'"):
        es._texture(_rng(), (2, 2), c1, 'dots', 128)


def test_checker_and_stripe_periods():
    c1 = np.array([200., 200., 200.])
    for seed in range(30):
        _, ref = _second_colour(seed, c1)
        period = ref.uniform(5, 12) * 256 / 128
        tex = es._texture(_rng(seed), (256, 256), c1, 'checker', 256)
        on = tex[..., 0] == 200
        assert on[0, 0]  # the top-left cell has the first colour
        ii, jj = np.mgrid[:256, :256]
        expected = ((jj // period) + (ii // period)) % 2 == 0
        np.testing.assert_array_equal(on, expected)

        _, ref = _second_colour(seed, c1)
        period = ref.uniform(5, 12) * 256 / 128
        theta = ref.uniform(0, math.pi)
        tex = es._texture(_rng(seed), (256, 256), c1, 'stripes', 256)
        proj = jj * math.cos(theta) + ii * math.sin(theta)
        expected = (proj // period) % 2 == 0
        assert (tex[..., 0] == 200)[expected].all()
        assert (tex[..., 0] != 200)[~expected].all()


def _spy_textures(monkeypatch):
    calls = []
    real = es._texture

    def spy(rng, shape, colour, kind, scale):
        calls.append(dict(shape=shape, colour=colour, kind=kind, scale=scale))
        return real(rng, shape, colour, kind, scale)

    monkeypatch.setattr(es, '_texture', spy)
    return calls


def test_backgrounds(monkeypatch):
    calls = _spy_textures(monkeypatch)
    colour = np.array([120., 60., 180.])
    kinds = []
    for seed in range(300):
        before = len(calls)
        bg = es._background(_rng(seed), 40, colour)
        assert bg.shape == (40, 40, 3) and bg.dtype == np.float32
        if len(calls) == before:
            kinds.append('noise')
            # smooth: neighbours differ little, within the amplitude of the
            # colour, never outside [0, 255]
            assert np.abs(np.diff(bg, axis=0)).max() < 40
            assert np.abs(bg - colour).max() <= 51
        else:
            call = calls[-1]
            assert call['shape'] == (40, 40) and call['scale'] == 40
            assert call['colour'] is colour
            kinds.append(call['kind'])
    # a light colour: the noise stays in [0, 255] (no uint8 wrap-around)
    noisy = [
        s for s in range(60) if BACKGROUNDS[_rng(s).integers(3)] == 'noise'
    ]
    light, dark = np.full(3, 250.), np.full(3, 5.)
    for seed in noisy:
        bg = es._background(_rng(seed), 16, light)
        assert bg.min() >= 195 and bg.max() <= 255
    assert min(es._background(_rng(s), 16, dark).min() for s in noisy) == 0
    counts = {k: kinds.count(k) for k in BACKGROUNDS}
    assert all(70 < n < 130 for n in counts.values()), counts
    # the noise grid: 3 to 8 cells of 20 to 50 levels of spread
    spreads = []
    for seed in range(300):
        rng = _rng(seed)
        if BACKGROUNDS[rng.integers(3)] != 'noise':
            continue
        cells = int(rng.integers(3, 9))
        amp = rng.uniform(-1, 1, (cells, cells, 3))
        spreads.append(rng.uniform(20, 50))
        bg = es._background(_rng(seed), 8 * cells, colour)
        # the middle of each cell is close to its grid value
        mid = bg[4::8, 4::8]
        target = np.clip(
            np.trunc(np.clip(amp * spreads[-1] + colour, 0, 255)), 0, 255)
        assert np.abs(mid - target).max() < 0.6 * spreads[-1]
    assert min(spreads) < 22 and max(spreads) > 48


def test_contrasting_colour():
    avoid = [np.array([128., 128., 128.])]
    for seed in range(50):
        rng, ref = _rng(seed), _rng(seed)
        colour = es._contrasting_colour(rng, avoid)
        assert np.linalg.norm(colour - avoid[0]) > 90
        # the first draw far enough is taken
        while True:
            first = es._random_colour(ref)
            if np.linalg.norm(first - avoid[0]) > 90:
                break
        np.testing.assert_array_equal(colour, first)
        assert rng.uniform() == ref.uniform()
    # with no colour far enough, the 21st draw is returned
    everything = [es._random_colour(_rng(s)) for s in range(3000)]
    rng, ref = _rng(9), _rng(9)
    colour = es._contrasting_colour(rng, everything)
    draws = [es._random_colour(ref) for _ in range(21)]
    np.testing.assert_array_equal(colour, draws[-1])
    assert rng.uniform() == ref.uniform()


def test_block_vote():
    blocks = {
        (1, 1, 0, 2): 1,  # the most frequent id
        (1, 2, 0, 0): 0,
        (1, 1, 2, 2): 2,  # ties go to the topmost (highest) id
        (0, 3, 2, 1): 3,
        (5, 5, 5, 4): 5,
        (0, 0, 0, 0): 0,
    }
    for block, winner in blocks.items():
        inst = np.array(block, dtype=np.int64).reshape(2, 2)
        assert es._block_vote(inst).tolist() == [[winner]]
    # blocks are read independently
    inst = np.array([[1, 1, 0, 2], [0, 2, 2, 2]])
    assert es._block_vote(inst).tolist() == [[1, 2]]


def test_render_anti_aliasing_and_instance_votes(monkeypatch):
    """One axis-aligned box on an 8 px image drawn by hand: the canvas is
    16 px, the box covers canvas columns 3..8 and rows 2..8 (edges
    included), background 0 and the object 200."""
    monkeypatch.setattr(
        es, '_background', lambda rng, size, colour: np.zeros(
            (size, size, 3), np.float32))
    monkeypatch.setattr(
        es, '_texture', lambda rng, shape, colour, kind, scale: np.full(
            (*shape, 3), 200., np.float32))
    monkeypatch.setattr(
        es, 'shape_polygon', lambda name, rng, center, radius, angle: np.array(
            [(3., 2.), (8., 2.), (8., 8.), (3., 8.)]) + center - (12., 8.))
    obj = dict(label=4, center=(6., 4.), radius=2., angle=0.)
    img, inst, area = render_scene(_rng(), [obj], 8)
    assert img.shape == (8, 8, 3) and img.dtype == np.uint8
    assert inst.shape == (8, 8) and inst.dtype == np.int64
    # columns: half, full, full, half; rows: full 1..3, half at 4
    expected = np.zeros((8, 8))
    expected[1:4, 1] = expected[1:4, 4] = 100
    expected[1:4, 2:4] = 200
    expected[4, 2:4] = 100
    expected[4, [1, 4]] = 50
    np.testing.assert_array_equal(img[..., 0], expected)
    assert (img[..., 0] == img[..., 2]).all()
    # half-covered blocks tie and go to the object, a quarter does not
    expected_inst = (expected >= 100).astype(np.int64)
    np.testing.assert_array_equal(inst, expected_inst)
    # 6 x 7 canvas pixels
    assert area.tolist() == [10.5]
    # a shape over the top-left border is cut there, its first row and
    # column drawn; one over the bottom-right border likewise
    borders = [((3., 2.), 0, 3 * 5), ((10.5, 9.), 7, 4 * 4)]
    for centre, pixel, visible in borders:
        obj = dict(label=4, center=centre, radius=2., angle=0.)
        img, inst, area = render_scene(_rng(), [obj], 8)
        assert inst[pixel, pixel] == 1 and img[pixel, pixel, 0] == 200
        assert area[0] == visible / 4
    # values past [0, 255] (a bright noise texture) are clipped, not wrapped
    monkeypatch.setattr(
        es, '_texture', lambda rng, shape, colour, kind, scale: np.full(
            (*shape, 3), 300., np.float32))
    monkeypatch.setattr(
        es, '_background', lambda rng, size, colour: np.full(
            (size, size, 3), -20., np.float32))
    img, _, _ = render_scene(_rng(), [obj], 8)
    assert img[7, 7, 0] == 255 and img[0, 0, 0] == 0


def test_render_order_area_and_contrast(monkeypatch):
    calls = _spy_textures(monkeypatch)
    big = dict(label=0, center=(16., 16.), radius=10., angle=0.)
    small = dict(label=4, center=(16., 16.), radius=4., angle=0.)
    img, inst, area = render_scene(_rng(2), [big, small], 32)
    alone_img, alone_inst, alone_area = render_scene(_rng(2), [big], 32)
    assert img.dtype == np.uint8 and img.shape == (32, 32, 3)
    # the later object on top; the full area ignores what covers it
    assert inst[16, 16] == 2
    assert area[0] == alone_area[0]
    assert area[0] == pytest.approx(math.pi * 100, rel=0.05)
    assert area[1] == pytest.approx(
        _shoelace(shape_polygon('square', _rng(), (0., 0.), 8., 0.)) / 4,
        rel=0.25)
    visible = np.count_nonzero(inst == 1)
    assert visible == pytest.approx(area[0] - area[1], abs=12)
    assert np.count_nonzero(alone_inst == 1) == pytest.approx(area[0], abs=12)
    assert set(np.unique(inst)) == {0, 1, 2}
    # empty scene: background only
    bg, bg_inst, bg_area = render_scene(_rng(4), [], 16)
    assert bg.shape == (16, 16, 3) and not bg_inst.any()
    assert bg_area.shape == (0, )
    # each object's colour is far from the background's and the earlier
    # objects', and textures follow their frequencies
    calls.clear()
    for seed in range(400):
        rng = _rng(seed)
        objects = sample_det_scene(rng, range(9), 16)
        bg_colour = _rng(seed)
        sample_det_scene(bg_colour, range(9), 16)
        used = [es._random_colour(bg_colour)]
        n = len(calls)
        render_scene(rng, objects, 16)
        mine = [c for c in calls[n:] if c['shape'] != (32, 32)]
        assert len(mine) == len(objects)
        for call in mine:
            assert call['scale'] == 32
            assert all(np.linalg.norm(call['colour'] - u) > 90 for u in used)
            used.append(call['colour'])
    kinds = [c['kind'] for c in calls if c['shape'] != (32, 32)]
    freq = np.array([kinds.count(k) for k in TEXTURES]) / len(kinds)
    np.testing.assert_allclose(freq, es._TEXTURE_P, atol=0.04)


def test_place():
    others = [dict(center=(20., 20.), radius=5.)]
    for seed in range(200):
        rng = _rng(seed)
        x, y = es._place(rng, 6., 40, others, 0.6)
        assert 6 <= x <= 34 and 6 <= y <= 34
        assert math.dist((x, y), (20., 20.)) > 0.6 * 11
    # no room: the 11th centre is taken
    crowd = [dict(center=(20., 20.), radius=100.)]
    rng, ref = _rng(1), _rng(1)
    centre = es._place(rng, 6., 40, crowd, 0.6)
    draws = [(ref.uniform(6, 34), ref.uniform(6, 34)) for _ in range(11)]
    assert centre == draws[-1]
    assert rng.uniform() == ref.uniform()


def test_cls_scene_layout():
    counts = np.zeros(3)
    front = behind = 0
    labels_seen = set()
    for seed in range(3000):
        label = seed % 9
        objects = sample_cls_scene(_rng(seed), label, 100)
        mains = [o for o in objects if o['label'] == label]
        assert len(mains) == 1
        main = mains[0]
        counts[len(objects) - 1] += 1
        assert 28 <= main['radius'] <= 42
        k = objects.index(main)
        behind += k
        front += len(objects) - 1 - k
        for o in objects:
            assert isinstance(o['label'], int)
            r = o['radius']
            assert r <= o['center'][0] <= 100 - r
            assert r <= o['center'][1] <= 100 - r
            assert 0 <= o['angle'] < 2 * math.pi
            if o is not main:
                assert 8 <= r <= 14
                labels_seen.add((label, o['label']))
    np.testing.assert_allclose(counts / 3000, [0.3, 0.4, 0.3], atol=0.03)
    angles = [
        o['angle'] for s in range(300)
        for o in sample_cls_scene(_rng(s), 0, 100)
    ]
    assert min(angles) < 0.1 and max(angles) > 2 * math.pi - 0.1
    assert abs(front - behind) < 0.1 * (front + behind)
    # every other class appears as a distractor of every class
    assert labels_seen == {(a, b)
                           for a in range(9)
                           for b in range(9) if a != b}


def test_det_scene_layout():
    counts = np.zeros(3)
    labels = []
    apart = total = 0
    for seed in range(3000):
        objects = sample_det_scene(_rng(seed), (2, 5, 7), 100)
        counts[len(objects) - 1] += 1
        for i, o in enumerate(objects):
            labels.append(o['label'])
            assert isinstance(o['label'], int)
            assert 14 <= o['radius'] <= 24
            r = o['radius']
            assert r <= o['center'][0] <= 100 - r
            assert r <= o['center'][1] <= 100 - r
            assert 0 <= o['angle'] < 2 * math.pi
            for p in objects[:i]:
                total += 1
                apart += math.dist(o['center'], p['center']) > 0.6 * (
                    r + p['radius'])
    np.testing.assert_allclose(counts / 3000, 1 / 3, atol=0.03)
    angles = [
        o['angle'] for s in range(300)
        for o in sample_det_scene(_rng(s), (2, 5, 7), 100)
    ]
    assert min(angles) < 0.1 and max(angles) > 2 * math.pi - 0.1
    assert sorted(set(labels)) == [2, 5, 7]
    freq = np.array([labels.count(c) for c in (2, 5, 7)]) / len(labels)
    np.testing.assert_allclose(freq, 1 / 3, atol=0.03)
    assert apart / total > 0.99
    # placed on purpose: uniform centres would clash far more often
    rng = _rng()
    clash = np.mean([
        math.dist(rng.uniform(14, 86, 2), rng.uniform(14, 86, 2)) <= 0.6 * 38
        for _ in range(3000)
    ])
    assert clash > 0.1


def test_scenes_are_reproducible():
    scene = sample_det_scene(_rng(7), range(9), 48)
    again = sample_det_scene(_rng(7), range(9), 48)
    assert scene == again
    a = render_scene(_rng(8), copy.deepcopy(scene), 48)
    b = render_scene(_rng(8), copy.deepcopy(scene), 48)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
