# Copyright (c) mmssl contributors. All rights reserved.
"""Per-source evaluation: unified predictions mapped back to each source."""
import json
import os.path as osp

import numpy as np
import pytest
import torch

from mmssl.datasets.unidet import build_label_space, read_mapping_csv
from mmssl.evaluation.metrics import UniDetPerSourceMetric
from mmssl.evaluation.metrics.unidet_metric import unified_to_source_lut

CSV = """key,alpha,beta
zebra,zebra,
ant,ant,formica
moth,,moth
cat,felis,cat
bee,bee,
"""


def test_lut_roundtrip_and_alphabetical_ids():
    cols, rows = read_mapping_csv(CSV)
    space = build_label_space(rows, dict(alpha=None, beta=None), None)
    # alphabetical keys give the unified ids (mmdet label = rank)
    assert space['classes'] == ['ant', 'bee', 'cat', 'moth', 'zebra']
    alpha = ['ant', 'bee', 'felis', 'zebra']
    lut = unified_to_source_lut(space['classes'],
                                space['sources']['alpha']['to_unified'], alpha)
    assert lut.tolist() == [0, 1, 2, -1, 3]  # moth: not in alpha, dropped
    beta = ['cat', 'formica', 'moth']
    lut = unified_to_source_lut(space['classes'],
                                space['sources']['beta']['to_unified'], beta)
    assert lut.tolist() == [1, -1, 0, 2, -1]
    # round trip: source label -> unified -> source label
    to_u = space['sources']['beta']['to_unified']
    for label, name in enumerate(beta):
        assert lut[space['classes'].index(to_u[name])] == label


@pytest.fixture(scope='module')
def embedded(tmp_path_factory):
    from mmssl.datasets import make_embedded_data, prepare_embedded_unidet
    root = str(tmp_path_factory.mktemp('embedded'))
    make_embedded_data(root, num_train=8, num_val=12)
    return root, prepare_embedded_unidet(root)


def _samples(root, space, source, relabel=None, extra=None):
    """Data samples whose predictions are the ground-truth boxes."""
    gt = json.load(
        open(
            osp.join(root, 'unidet', source, 'annotations',
                     'instances_val.json')))
    names = {c['id']: c['name'] for c in gt['categories']}
    to_u = space['sources'][source]['to_unified']
    out = []
    for img in gt['images']:
        anns = [a for a in gt['annotations'] if a['image_id'] == img['id']]
        boxes = [[x, y, x + w, y + h]
                 for x, y, w, h in (a['bbox'] for a in anns)]
        labels = [
            space['classes'].index(to_u[names[a['category_id']]]) for a in anns
        ]
        if relabel is not None:
            labels = [relabel.get(lab, lab) for lab in labels]
        if extra is not None and boxes:
            boxes.append(boxes[0])
            labels.append(extra)
        out.append(
            dict(
                img_id=img['id'],
                ori_shape=(img['height'], img['width']),
                source=source,
                pred_instances=dict(
                    bboxes=torch.tensor(boxes).reshape(-1, 4).float(),
                    scores=torch.ones(len(boxes)),
                    labels=torch.tensor(labels, dtype=torch.long))))
    return out


def _metric(root, path):
    metric = UniDetPerSourceMetric(
        label_space=path,
        sources={
            s: osp.join(root, 'unidet', s, 'annotations', 'instances_val.json')
            for s in ('source_a', 'source_b')
        })
    metric.dataset_meta = dict(classes=())
    return metric


def test_perfect_predictions_give_map_one_per_source(embedded):
    root, path = embedded
    space = json.load(open(path))
    metric = _metric(root, path)
    star = space['classes'].index('star')  # source_a has no star
    metric.process({}, _samples(root, space, 'source_a', extra=star))
    metric.process({}, _samples(root, space, 'source_b'))
    res = metric.evaluate(6)
    assert res['source_a/bbox_mAP'] == pytest.approx(1.0)
    assert res['source_b/bbox_mAP'] == pytest.approx(1.0)
    assert res['mean/bbox_mAP'] == pytest.approx(1.0)


def test_wrong_classes_lower_map_and_missing_source(embedded):
    root, path = embedded
    space = json.load(open(path))
    metric = _metric(root, path)
    c = space['classes']
    # source_b: circle predicted as polygon (both exist in source_b)
    swap = {
        c.index('circle'): c.index('polygon'),
        c.index('polygon'): c.index('circle')
    }
    metric.process({}, _samples(root, space, 'source_b', relabel=swap))
    res = metric.evaluate(3)
    assert res['source_b/bbox_mAP'] < 1.0
    assert 'source_a/bbox_mAP' not in res
    sample = _samples(root, space, 'source_a')[0]
    del sample['source']
    with pytest.raises(KeyError, match='meta_keys'):
        metric.process({}, [sample])
    bad = UniDetPerSourceMetric(label_space=path, sources=dict(coco='x'))
    with pytest.raises(ValueError, match="'coco' is not in the label space"):
        bad.process({}, [])
    assert np.isfinite(res['source_b/bbox_mAP'])


def test_setup_defaults_and_the_recorded_rows(embedded, monkeypatch):
    """mmdet's CocoMetric is built once per source (bbox, classwise off,
    proposal numbers 100 / 300 / 1000 by default); each image records its
    (width, height) from ``ori_shape = (H, W)`` and how many boxes of
    classes its source lacks were dropped."""
    import mmdet.evaluation
    root, path = embedded
    space = json.load(open(path))
    built = []
    coco_metric = mmdet.evaluation.CocoMetric

    def spy(**kwargs):
        built.append(kwargs)
        return coco_metric(**kwargs)

    monkeypatch.setattr(mmdet.evaluation, 'CocoMetric', spy)
    metric = _metric(root, path)
    star = space['classes'].index('star')  # source_a has no star
    samples = _samples(root, space, 'source_a', extra=star)
    sample = dict(samples[0], ori_shape=(30, 50))
    labels = sample['pred_instances']['labels']
    pred = dict(
        sample['pred_instances'],
        bboxes=torch.cat([sample['pred_instances']['bboxes']] * 2),
        scores=torch.ones(2 * len(labels)),
        labels=torch.cat([labels, labels]))
    metric.process({}, [dict(sample, pred_instances=pred)])
    metric.process({}, samples[1:])
    assert len(built) == 2  # once per source, not once per batch
    assert all(b['metric'] == 'bbox' and b['classwise'] is False
               and tuple(b['proposal_nums']) == (100, 300, 1000)
               for b in built)
    src, gt, result = metric.results[0]
    assert src == 'source_a'
    assert gt == dict(width=50, height=30, img_id=sample['img_id'])
    assert result['dropped'] == 2  # the star box, twice
    assert len(result['labels']) == 2 * (len(labels) - 1)


def test_a_fresh_metric_computes_the_collected_results(embedded):
    """In distributed evaluation the metric that computes may not be the
    one that processed every result: it reads the label space itself."""
    root, path = embedded
    space = json.load(open(path))
    worker = _metric(root, path)
    worker.process({}, _samples(root, space, 'source_b'))
    fresh = _metric(root, path)
    res = fresh.compute_metrics(worker.results)
    assert res['source_b/bbox_mAP'] == pytest.approx(1.0)
    assert res['mean/bbox_mAP'] == pytest.approx(1.0)
