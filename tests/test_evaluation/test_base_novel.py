# Copyright (c) mmssl contributors. All rights reserved.
"""Base / novel accuracy and harmonic mean on hand examples."""
import math

import pytest
import torch
from mmpretrain.structures import DataSample

from mmssl.evaluation.metrics import (BaseNovelAccuracy, base_novel_accuracy,
                                      harmonic_mean)


def test_harmonic_mean_of_cocoop_paper():
    # CoCoOp, 11-dataset average: B 80.47, N 71.69 -> H 75.83
    assert round(harmonic_mean(80.47, 71.69), 2) == 75.83
    assert harmonic_mean(0, 0) == 0
    assert harmonic_mean(50, 50) == 50


def _hand_example():
    # 4 classes, base = {0, 1}, novel = {2, 3}
    scores = torch.tensor([
        [0.1, 0.2, 0.6, 0.1],  # label 1: base cols -> 1, right (even
        #                        though novel class 2 has the top score)
        [0.5, 0.4, 0.0, 0.1],  # label 0: right
        [0.3, 0.6, 0.0, 0.1],  # label 0: wrong
        [0.9, 0.0, 0.05, 0.05],  # label 3: novel cols tie -> 2, wrong
        [0.0, 0.1, 0.2, 0.7],  # label 3: right
        [0.0, 0.0, 0.6, 0.4],  # label 2: right
        [0.0, 0.0, 0.4, 0.6],  # label 2: wrong
        [0.8, 0.1, 0.0, 0.1],  # label 3: novel cols -> 3, right (a base
        #                        class has the top score)
    ])
    labels = torch.tensor([1, 0, 0, 3, 3, 2, 2, 3])
    return scores, labels


def test_base_novel_accuracy_by_hand():
    scores, labels = _hand_example()
    out = base_novel_accuracy(scores, labels, num_base=2)
    b, n = 200 / 3, 60.0
    assert out['base'] == pytest.approx(b)
    assert out['novel'] == pytest.approx(n)
    assert out['hm'] == pytest.approx(2 * b * n / (b + n))  # 63.157895
    assert out['hm'] == pytest.approx(63.157895, abs=1e-5)
    assert (out['num_base_images'], out['num_novel_images']) == (3, 5)


def test_metric_default_split_is_ceil_half():
    scores, labels = _hand_example()
    metric = BaseNovelAccuracy()
    samples = []
    for s, y in zip(scores, labels):
        ds = DataSample().set_pred_score(s).set_gt_label(int(y))
        samples.append(ds.to_dict())
    metric.process({}, samples)
    res = metric.evaluate(len(samples))
    assert res['base_novel/base'] == pytest.approx(200 / 3)
    assert res['base_novel/novel'] == pytest.approx(60.0)
    assert res['base_novel/hm'] == pytest.approx(63.157895, abs=1e-5)
    # no novel images: novel and hm are nan
    out = base_novel_accuracy(scores[:3], labels[:3], 2)
    assert math.isnan(out['novel']) and math.isnan(out['hm'])


def test_metric_default_split_of_an_odd_class_count():
    """K = 5: base = the first ceil(5 / 2) = 3 classes."""
    scores = torch.tensor([
        [0.0, 0.1, 0.5, 0.4, 0.0],  # label 2: base (cols 0..2) -> 2, right
        [0.0, 0.0, 0.6, 0.3, 0.1],  # label 3: novel (cols 3, 4) -> 3, right
        [0.0, 0.0, 0.0, 0.4, 0.6],  # label 4: right
    ])
    metric = BaseNovelAccuracy()
    metric.process({}, [
        DataSample().set_pred_score(s).set_gt_label(y).to_dict()
        for s, y in zip(scores, (2, 3, 4))
    ])
    res = metric.evaluate(3)
    assert res['base_novel/base'] == pytest.approx(100.0)
    assert res['base_novel/novel'] == pytest.approx(100.0)
    # num_base given explicitly wins
    metric = BaseNovelAccuracy(num_base=2)
    metric.process(
        {}, [DataSample().set_pred_score(scores[0]).set_gt_label(2).to_dict()])
    assert math.isnan(metric.evaluate(1)['base_novel/base'])


def test_metric_keeps_no_autograd_graph():
    scores, labels = _hand_example()
    metric = BaseNovelAccuracy(num_base=2)
    leaf = scores.clone().requires_grad_()
    metric.process({}, [
        DataSample().set_pred_score(s).set_gt_label(int(y)).to_dict()
        for s, y in zip(leaf * 2, labels)
    ])
    assert not any(r['score'].requires_grad for r in metric.results)
    assert metric.evaluate(len(labels))['base_novel/base'] == pytest.approx(
        200 / 3)


def test_metric_refuses_a_multi_label_gt_label():
    metric = BaseNovelAccuracy(num_base=2)
    with pytest.raises(ValueError, match=r'one class index .*shape \(2,\)'):
        metric.process(
            {},
            [dict(pred_score=torch.rand(4), gt_label=torch.tensor([0, 3]))])
    # a 0-d label is one index too
    metric.process({},
                   [dict(pred_score=torch.rand(4), gt_label=torch.tensor(1))])
    assert metric.results[-1]['label'] == 1
