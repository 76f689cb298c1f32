# Copyright (c) mmssl contributors. All rights reserved.
"""The DiffFashion scores by hand: pixel scores with soft and half-way
masks, the token mask of a silhouette, the ViT scores from known
features and the AUROC's threshold."""
import math

import pytest
import torch

from mmssl.evaluation.functional.fashion import (_token_mask, fashion_metrics,
                                                 key_self_similarity,
                                                 mask_score_auroc,
                                                 pixel_metrics)


def _images():
    g = torch.Generator().manual_seed(0)
    result = torch.rand(1, 3, 4, 4, generator=g) * 2 - 1
    garment = torch.rand(1, 3, 4, 4, generator=g) * 2 - 1
    return result, garment


def test_pixel_scores_by_hand():
    result, garment = _images()
    # mask: 0.5 exactly is not garment; true mask: the left half
    mask = torch.zeros(1, 1, 4, 4)
    mask[..., :2, :] = 1
    mask[..., 2, 0] = 0.5
    true = torch.zeros(1, 1, 4, 4)
    true[..., :, :2] = 1
    true[..., 3, 3] = 0.5  # not garment for the IoU
    out = pixel_metrics(result, garment, mask, true)
    # IoU of {rows 0-1} and {columns 0-1}: 4 / (8 + 8 - 4)
    assert out['mask_iou'] == pytest.approx(4 / 12)
    assert out['mask_fraction'] == pytest.approx((8 + 0.5) / 16)
    # background weights 1 - true: 1 on the right half but (3, 3), 0.5 there
    w = 1 - true[0, 0]
    diff = (result - garment).abs()[0] / 2  # (3, 4, 4) in [0, 1] units
    hand = sum(
        float(diff[c, i, j] * w[i, j]) for c in range(3) for i in range(4)
        for j in range(4)) / (3 * float(w.sum()))
    assert out['background_l1'] == pytest.approx(hand)
    # without a true mask the background is outside the mask used
    out = pixel_metrics(result, garment, mask)
    w = 1 - mask[0, 0]
    hand = float((diff * w).sum()) / (3 * float(w.sum()))
    assert out['background_l1'] == pytest.approx(hand)
    assert 'mask_iou' not in out


def test_pixel_scores_at_the_edges():
    result, garment = _images()
    empty = torch.zeros(1, 1, 4, 4)
    assert pixel_metrics(result, garment, empty, empty)['mask_iou'] == 0.0
    # no background: nan; a background weight below one pixel still counts
    full = torch.ones(1, 1, 4, 4)
    assert math.isnan(pixel_metrics(result, garment, full)['background_l1'])
    almost = full.clone()
    almost[..., 1, 2] = 0.9
    out = pixel_metrics(result, garment, None, almost)
    hand = float((result - garment).abs()[0, :, 1, 2].mean()) / 2
    assert out['background_l1'] == pytest.approx(hand)
    assert out['mask_fraction'] == 1.0  # None: every pixel is garment


def test_token_mask_keeps_patches_at_least_half_inside():
    true = torch.zeros(1, 1, 8, 8)
    true[..., :4, :4] = 1  # patch (0, 0) of the 2 x 2 grid: all inside
    true[..., :2, 4:] = 1  # patch (0, 1): half inside
    true[..., 4:5, :4] = 1  # patch (1, 0): a quarter inside
    tok = _token_mask(true, 5)
    assert tok.tolist() == [False, True, True, False, False]
    one = _token_mask(torch.ones(1, 1, 8, 8), 2)  # one patch
    assert one.tolist() == [False, True]
    with pytest.raises(ValueError, match='square grid'):
        _token_mask(true, 4)


def test_vit_scores_from_known_features():
    """``structure_selfsim``: mean squared difference of the key
    self-similarities; ``_fg`` over the pairs of silhouette tokens;
    ``appearance_cls``: mean squared [CLS] difference."""
    g = torch.Generator().manual_seed(1)
    feats = {}

    def extractor(images):
        key = float(images.sum())
        if key not in feats:
            feats[key] = (torch.randn(1, 5, 3, generator=g),
                          torch.randn(1, 6, generator=g))
        return feats[key]

    result, garment = _images()
    reference = -garment
    true = torch.zeros(1, 1, 4, 4)
    true[..., :2, :] = 1  # the top two of the 2 x 2 patches
    out = fashion_metrics(result, garment, reference, None, extractor, true)
    (k_out, c_out), (k_g, _), (_, c_ref) = (
        extractor(x) for x in (result, garment, reference))
    s_out, s_g = key_self_similarity(k_out)[0], key_self_similarity(k_g)[0]
    sq = [[float(s_out[i, j] - s_g[i, j])**2 for j in range(5)]
          for i in range(5)]
    assert out['structure_selfsim'] == pytest.approx(sum(map(sum, sq)) / 25)
    inside = [1, 2]  # tokens of patches (0, 0) and (0, 1); [CLS] is 0
    assert out['structure_selfsim_fg'] == pytest.approx(
        sum(sq[i][j] for i in inside for j in inside) / 4)
    assert out['appearance_cls'] == pytest.approx(
        sum(float(a - b)**2 for a, b in zip(c_out[0], c_ref[0])) / 6)
    # a silhouette that covers no patch by half: nan
    tiny = torch.zeros(1, 1, 4, 4)
    tiny[..., 0, 0] = 1
    out = fashion_metrics(result, garment, reference, None, extractor, tiny)
    assert math.isnan(out['structure_selfsim_fg'])


def test_auroc_threshold_and_one_sided_masks():
    score = torch.tensor([[3., 1.], [2., 0.]])
    # 0.5 is not garment: positives (3, 1) against negatives (2, 0)
    gt = torch.tensor([[1., 0.9], [0.5, 0.]])
    assert mask_score_auroc(score, gt) == pytest.approx(3 / 4)
    assert math.isnan(mask_score_auroc(score, torch.zeros(2, 2)))
    assert math.isnan(mask_score_auroc(score, torch.ones(1, 2, 2)))
    # one pixel on either side is enough
    assert mask_score_auroc(score, torch.tensor([[1., 1.], [1., 0.]])) == 1.0
    assert mask_score_auroc(score, torch.tensor([[0., 0.], [0., 1.]])) == 0.0


def test_key_self_similarity_by_hand():
    # per token cosine: (3, 4) and (4, -3) are orthogonal, (6, 8) is (3, 4)
    keys = torch.tensor([[[3., 4.], [4., -3.], [6., 8.]]])
    expected = torch.tensor([[1., 0., 1.], [0., 1., 0.], [1., 0., 1.]])
    assert torch.allclose(key_self_similarity(keys)[0], expected, atol=1e-6)
    # each image of a batch on its own
    two = torch.cat([keys, torch.tensor([[[1., 0.], [1., 1.], [0., 2.]]])])
    sim = key_self_similarity(two)
    assert sim.shape == (2, 3, 3)
    assert torch.allclose(sim[0], expected, atol=1e-6)
    assert sim[1, 0, 1].item() == pytest.approx(2**-0.5)
    assert sim[1, 0, 2].item() == pytest.approx(0.0, abs=1e-7)


def test_token_mask_of_a_cls_token_alone():
    # no patch at all: only [CLS], which never counts as garment
    assert _token_mask(torch.ones(1, 1, 4, 4), 1).tolist() == [False]
