# Copyright (c) mmssl contributors. All rights reserved.
import math

import pytest
import torch
from mmengine.structures import BaseDataElement

from mmssl.evaluation.metrics import GLUEMetric, MLMSOPMetric
from mmssl.registry import METRICS


def _run(metric, samples):
    metric.process({}, samples)
    return metric.evaluate(len(samples))


def _cls(preds, labels):
    return [
        dict(pred_label=torch.tensor(p), gt_label=torch.tensor(g))
        for p, g in zip(preds, labels)
    ]


def test_accuracy_f1_matthews_by_hand():
    preds, labels = [1, 1, 0, 0, 1, 0], [1, 0, 0, 1, 1, 0]
    # tp=2 fp=1 fn=1 tn=2
    out = _run(
        METRICS.build(
            dict(type='mmssl.GLUEMetric', scores=('accuracy', 'f1'))),
        _cls(preds, labels))
    assert out['accuracy'] == pytest.approx(100 * 4 / 6)
    assert out['f1'] == pytest.approx(100 * 2 * 2 / (2 * 2 + 1 + 1))
    mcc = (2 * 2 - 1 * 1) / math.sqrt(3 * 3 * 3 * 3)
    out = _run(GLUEMetric(scores='matthews'), _cls(preds, labels))
    assert out == {'matthews': pytest.approx(100 * mcc)}


def test_multiclass_accuracy_and_data_elements():
    samples = []
    for p, g in [(0, 0), (2, 1), (1, 1), (2, 2)]:
        s = BaseDataElement()
        s.pred_label, s.gt_label = torch.tensor(p), torch.tensor(g)
        samples.append(s)
    assert _run(GLUEMetric(), samples) == {'accuracy': 75.}


def test_pearson_spearman_by_hand():
    preds, labels = [1., 2., 3., 5.], [1., 3., 2., 4.]
    samples = [
        dict(pred_value=torch.tensor(p), gt_label=torch.tensor(g))
        for p, g in zip(preds, labels)
    ]
    out = _run(GLUEMetric(scores=('pearson', 'spearman')), samples)
    mp, mg = sum(preds) / 4, sum(labels) / 4
    cov = sum((p - mp) * (g - mg) for p, g in zip(preds, labels))
    r = cov / math.sqrt(
        sum((p - mp)**2 for p in preds) * sum((g - mg)**2 for g in labels))
    assert out['pearson'] == pytest.approx(100 * r)
    # ranks 1 2 3 4 vs 1 3 2 4: rho = 1 - 6 * 2 / (4 * 15)
    assert out['spearman'] == pytest.approx(100 * (1 - 12 / 60))


def test_glue_metric_errors():
    with pytest.raises(ValueError, match='scores'):
        GLUEMetric(scores=('bleu', ))
    with pytest.raises(ValueError, match='mix regression'):
        GLUEMetric(scores=('accuracy', 'pearson'))
    metric = GLUEMetric()
    with pytest.raises(KeyError, match="'pred_label'"):
        metric.process({}, [dict(gt_label=torch.tensor(1))])


def test_mlm_sop_metric():
    samples = [
        dict(
            mlm_correct=3,
            mlm_total=4,
            sop_pred=torch.tensor(1),
            sop_label=torch.tensor(1)),
        dict(
            mlm_correct=1,
            mlm_total=6,
            sop_pred=torch.tensor(0),
            sop_label=torch.tensor(1)),
    ]
    out = _run(METRICS.build(dict(type='mmssl.MLMSOPMetric')), samples)
    assert out == {'mlm_accuracy': pytest.approx(40.), 'sop_accuracy': 50.}
    no_sop = [dict(mlm_correct=2, mlm_total=8)]
    assert _run(MLMSOPMetric(prefix='val'), no_sop) == {
        'val/mlm_accuracy': 25.
    }


def test_runner_builds_the_metric_from_a_config_dict():
    """A config's ``val_evaluator = dict(type='mmssl.GLUEMetric', ...)``
    becomes an Evaluator holding the metric (an argument named ``metrics``
    would make mmengine's Runner read the dict as an Evaluator config)."""
    from mmengine.registry import init_default_scope
    from mmengine.runner import Runner
    init_default_scope('mmpretrain')
    for cfg in (dict(type='mmssl.GLUEMetric', scores=('accuracy', 'f1')),
                dict(type='mmssl.MLMSOPMetric')):
        evaluator = Runner.build_evaluator(None, cfg)
        assert type(evaluator.metrics[0]).__name__ == cfg['type'][6:]


def test_f1_is_that_of_the_positive_class():
    # class 1: tp 1, fp 1, fn 0 -> F1 2 / 3; class 0 would be 4 / 5
    out = _run(GLUEMetric(scores='f1'), _cls([1, 1, 0, 0], [1, 0, 0, 0]))
    assert out == {'f1': pytest.approx(200 / 3)}


def test_predictions_that_require_grad_are_read():
    samples = [
        dict(
            pred_value=torch.tensor(p, requires_grad=True),
            gt_label=torch.tensor(g))
        for p, g in ((1., 1.), (2., 3.), (3., 4.))
    ]
    out = _run(GLUEMetric(scores='spearman'), samples)
    assert out == {'spearman': pytest.approx(100.)}


def test_mlm_without_masked_positions_and_sop_by_hand():
    samples = [
        dict(
            mlm_correct=0,
            mlm_total=0,
            sop_pred=torch.tensor(p),
            sop_label=torch.tensor(g)) for p, g in ((1, 1), (0, 0), (0, 1))
    ]
    # no masked position: 0 %, not a division by zero; SOP 2 of 3 right
    assert _run(MLMSOPMetric(), samples) == {
        'mlm_accuracy': 0.,
        'sop_accuracy': pytest.approx(200 / 3)
    }
