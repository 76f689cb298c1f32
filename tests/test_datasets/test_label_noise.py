# Copyright (c) mmssl contributors. All rights reserved.
"""Label-noise functions: label checks, default seeds, the instance-noise
flip rates and their truncation, the measured matrix by hand, and the image
reader behind the instance-noise features."""
import mmcv
import numpy as np
import pytest
from scipy.stats import truncnorm

from mmssl.datasets.label_noise import (asymmetric_noise,
                                        cifar100_asym_mapping, image_features,
                                        instance_noise, noise_rate, read_rgb,
                                        symmetric_noise, transition_matrix)


def _feats(n, d=16, seed=0, scale=1.):
    rng = np.random.default_rng(seed)
    return (scale * rng.standard_normal((n, d))).astype(np.float32)


def test_label_checks():
    with pytest.raises(
            ValueError,
            match=r'1-D array of class indices, got '
            r'shape \(2,\) dtype float64'):
        symmetric_noise(np.array([0.5, 1.5]), 3, 0.5)
    with pytest.raises(ValueError, match='1-D array'):
        symmetric_noise(np.array([1.]), 3, 0.5)  # one float label too
    with pytest.raises(ValueError, match=r'got shape \(2, 2\)'):
        symmetric_noise(np.zeros((2, 2), dtype=np.int64), 3, 0.5)
    empty = symmetric_noise(np.array([], dtype=np.float64), 3, 0.5)
    assert empty.shape == (0, ) and empty.dtype == np.int64
    with pytest.raises(ValueError, match=r'\[0, 3\) .* got \[0, 3\]'):
        symmetric_noise([0, 3], 3, 0.5)  # a label equal to C
    with pytest.raises(ValueError, match=r'got \[-1, 1\]'):
        symmetric_noise([-1, 1], 3, 0.5)


def test_default_seeds_are_zero():
    clean = np.arange(400) % 4
    feats = _feats(400)
    assert np.array_equal(
        symmetric_noise(clean, 4, 0.5), symmetric_noise(clean, 4, 0.5, 0))
    mapping = {0: 1, 2: 3}
    assert np.array_equal(
        asymmetric_noise(clean, 4, 0.5, mapping),
        asymmetric_noise(clean, 4, 0.5, mapping, 0))
    assert np.array_equal(
        instance_noise(clean, feats, 4, 0.5),
        instance_noise(clean, feats, 4, 0.5, 0, norm_std=0.1))
    # (the norm_std default matters: another std draws other labels)
    assert not np.array_equal(
        instance_noise(clean, feats, 4, 0.5),
        instance_noise(clean, feats, 4, 0.5, 0, norm_std=0.2))


def test_index_blocks_cover_the_100_classes():
    blocks = cifar100_asym_mapping('index')
    assert sorted(blocks) == list(range(100))
    assert blocks[95] == 96 and blocks[99] == 95


def test_instance_noise_checks():
    clean = np.arange(6) % 3
    with pytest.raises(ValueError, match='norm_std'):
        instance_noise(clean, _feats(6), 3, 0.4, norm_std=0.)
    with pytest.raises(
            ValueError, match=r'\(N, D\) with N = 6 labels, got '
            r'shape \(6,\)'):
        instance_noise(clean, np.zeros(6), 3, 0.4)
    with pytest.raises(ValueError, match=r'got shape \(7, 16\)'):
        instance_noise(clean, _feats(7), 3, 0.4)


def test_instance_noise_single_item_and_truncated_rates():
    # one item is redrawn like many: over 40 seeds it flips about as often
    # as the rate says
    flips = [
        instance_noise([1], _feats(1), 3, 0.5, seed=s)[0] != 1
        for s in range(40)
    ]
    assert 10 <= sum(flips) <= 30
    # the per-item rates are a normal truncated to [0, 1]: at rate 0.9 the
    # realised rate is the truncated mean, below 0.9
    n = 40000
    clean = np.arange(n) % 4
    noisy = instance_noise(clean, _feats(n), 4, 0.9, seed=0)
    want = truncnorm.mean(-9., 1., loc=0.9, scale=0.1)  # 0.871
    assert abs(noise_rate(clean, noisy) - want) < 0.008


def test_instance_noise_large_logits():
    # normalised pixels give logits of hundreds; the softmax stays finite
    n = 4000
    clean = np.arange(n) % 4
    with np.errstate(over='raise', invalid='raise'):
        noisy = instance_noise(clean, _feats(n, d=64, scale=30.), 4, 0.4)
    assert abs(noise_rate(clean, noisy) - 0.4) < 0.03
    assert noisy.min() >= 0 and noisy.max() <= 3


def test_transition_matrix_and_noise_rate_by_hand():
    clean = [0, 0, 0, 1, 2]
    noisy = [0, 1, 1, 1, 0]
    T = transition_matrix(clean, noisy, 4)
    np.testing.assert_allclose(
        T, [[1 / 3, 2 / 3, 0, 0], [0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]])
    assert noise_rate(clean, noisy) == 0.6
    assert noise_rate([], []) == 0.


def test_read_rgb_channels_and_sizes():
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, (8, 8), dtype=np.uint8)
    out = read_rgb(dict(img=gray), None)
    assert out.shape == (8, 8, 3)
    assert all(np.array_equal(out[..., c], gray) for c in range(3))
    rgba = rng.integers(0, 256, (8, 8, 4), dtype=np.uint8)
    assert np.array_equal(read_rgb(dict(img=rgba), None), rgba[..., :3])
    assert np.array_equal(read_rgb(dict(img=rgba), 8), rgba[..., :3])
    # area when a side shrinks, bilinear when both grow or stay
    for shape in ((64, 16, 3), (16, 64, 3), (32, 16, 3), (16, 32, 3), (8, 8,
                                                                       3)):
        img = rng.integers(0, 256, shape, dtype=np.uint8)
        shrink = shape[0] > 32 or shape[1] > 32
        want = mmcv.imresize(
            img, (32, 32), interpolation='area' if shrink else 'bilinear')
        assert np.array_equal(read_rgb(dict(img=img), 32), want), shape
    same = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    assert np.array_equal(read_rgb(dict(img=same), 32), same)


def test_image_features_default_size():
    rng = np.random.default_rng(0)
    items = [
        dict(img=rng.integers(0, 256, (40, 40, 3), dtype=np.uint8))
        for _ in range(3)
    ]
    feats = image_features(items)
    assert feats.shape == (3, 3 * 32 * 32) and feats.dtype == np.float32
    # standardised per channel over the items
    per_channel = feats.reshape(3, 32, 32, 3)
    np.testing.assert_allclose(per_channel.mean(axis=(0, 1, 2)), 0, atol=1e-5)
    np.testing.assert_allclose(per_channel.std(axis=(0, 1, 2)), 1, atol=1e-4)


def test_image_features_of_a_constant_channel():
    # a channel without spread is centred, not divided by zero
    items = [
        dict(img=np.stack([np.full((4, 4), v, np.uint8)] * 3, -1))
        for v in (10, 20)
    ]
    for info in items:
        info['img'][..., 2] = 7
    feats = image_features(items, size=4).reshape(2, 4, 4, 3)
    assert np.isfinite(feats).all()
    assert np.array_equal(feats[..., 2], np.zeros((2, 4, 4)))
    np.testing.assert_allclose(feats[0, ..., 0], -1, rtol=1e-5)
