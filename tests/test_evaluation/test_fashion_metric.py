# Copyright (c) mmssl contributors. All rights reserved.
"""FashionTransferMetric on a hand-computed example."""
import math

import pytest
import torch

from mmssl.evaluation.metrics import FashionTransferMetric


def _pair():
    """4x4 garment (all -1) and a result that differs in two pixels."""
    garment = -torch.ones(3, 4, 4)
    result = garment.clone()
    result[:, 0, 0] = 1.0  # inside the true mask: not background
    result[:, 3, 3] = 0.0  # background pixel changed by 1 = 0.5 in [0, 1]
    gt = torch.zeros(1, 4, 4)
    gt[:, :2, :2] = 1  # 4 pixels
    pred = torch.zeros(1, 4, 4)
    pred[:, :2, :3] = 1  # 6 pixels, 4 of them inside gt
    return garment, result, pred, gt


def test_hand_example():
    garment, result, pred, gt = _pair()
    metric = FashionTransferMetric()
    batch = dict(inputs=[torch.stack([garment, garment])])
    metric.process(batch, [
        dict(
            pred_img=result,
            pred_mask=pred,
            gt_mask=gt,
            pred_scores=dict(
                structure_selfsim=0.25,
                appearance_cls=2.0,
                structure_selfsim_fg=float('nan'),
                other=7.0))
    ])
    # a second pair: perfect mask, untouched image, no ViT scores
    metric.process(batch, [dict(pred_img=garment, pred_mask=gt, gt_mask=gt)])
    out = metric.compute_metrics(metric.results)
    # pair 1: IoU 4 / 6; background: one of 12 pixels off by 0.5 -> 0.5/12
    assert out['mask_iou'] == pytest.approx((4 / 6 + 1) / 2)
    assert out['mask_fraction'] == pytest.approx((6 / 16 + 4 / 16) / 2)
    assert out['background_l1'] == pytest.approx((0.5 / 12 + 0) / 2)
    # ViT scores: mean over the pairs that have them, NaN skipped
    assert out['structure_selfsim'] == pytest.approx(0.25)
    assert out['appearance_cls'] == pytest.approx(2.0)
    assert math.isnan(out['structure_selfsim_fg'])
    assert 'other' not in out and out['num_pairs'] == 2


def test_per_set_runs_are_averaged():
    garment, result, pred, gt = _pair()
    metric = FashionTransferMetric()
    metric.process(
        dict(inputs=[torch.stack([garment, garment])]), [
            dict(
                pred_img=torch.stack([result, garment]),
                pred_mask=torch.stack([pred, gt]),
                gt_mask=gt)
        ])
    out = metric.compute_metrics(metric.results)
    assert out['mask_iou'] == pytest.approx((4 / 6 + 1) / 2)
    assert out['background_l1'] == pytest.approx(0.5 / 12 / 2)


def test_missing_fields_are_named():
    garment, result, pred, gt = _pair()
    metric = FashionTransferMetric()
    with pytest.raises(KeyError, match='gt_mask'):
        metric.process(
            dict(inputs=[torch.stack([garment, garment])]),
            [dict(pred_img=result, pred_mask=pred)])
    with pytest.raises(ValueError, match='expected'):
        metric.process(
            dict(inputs=[torch.stack([garment, garment])]),
            [dict(pred_img=result[:2], pred_mask=pred, gt_mask=gt)])


def test_registered_with_prefix():
    from mmssl.registry import METRICS
    metric = METRICS.build(dict(type='mmssl.FashionTransferMetric'))
    assert metric.prefix == 'fashion'


def test_mask_score_auroc_hand_example():
    from mmssl.evaluation.metrics.fashion_metric import mask_score_auroc
    gt = torch.tensor([[1., 1.], [0., 0.]])
    # positives 3, 1; negatives 2, 1: pairs (3>2, 3>1, 1<2, 1=1) -> 2.5/4
    assert mask_score_auroc(torch.tensor([[3., 1.], [2., 1.]]),
                            gt) == pytest.approx(0.625)
    assert mask_score_auroc(torch.tensor([[5., 4.], [0., 1.]]), gt) == 1.0
    assert math.isnan(mask_score_auroc(torch.ones(2, 2), torch.ones(2, 2)))
    garment, result, pred, gt4 = _pair()
    metric = FashionTransferMetric()
    metric.process(
        dict(inputs=[torch.stack([garment, garment])]), [
            dict(
                pred_img=result,
                pred_mask=pred,
                gt_mask=gt4,
                pred_mask_score=-gt4[0])
        ])
    out = metric.compute_metrics(metric.results)
    assert out['mask_score_auroc'] == 0.0  # inverted score


def test_garment_is_the_first_input_and_empty_masks_are_counted():
    garment, result, pred, gt = _pair()
    metric = FashionTransferMetric()
    # the second input (the reference) is far from the result everywhere
    pair = torch.stack([garment, torch.ones(3, 4, 4)])
    metric.process(
        dict(inputs=[pair, pair]),
        [dict(pred_img=result, pred_mask=pred, gt_mask=gt)] * 2)
    metric.process(
        dict(inputs=[pair]),
        [dict(pred_img=result, pred_mask=pred, gt_mask=gt, empty_mask=True)])
    out = metric.compute_metrics(metric.results)
    assert out['background_l1'] == pytest.approx(0.5 / 12)
    assert out['empty_masks'] == 1 and out['num_pairs'] == 3
