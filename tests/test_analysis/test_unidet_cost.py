# Copyright (c) mmssl contributors. All rights reserved.
"""What the UniDet hierarchy costs: interleaved timing, the flat twin."""
import importlib.util
import json
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from mmssl.analysis import unidet_cost
from mmssl.analysis.unidet_cost import (hier_and_flat_detectors,
                                        hierarchy_cost, interleaved_median_ms,
                                        loss_cost)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TINY = osp.join(ROOT, 'configs', 'unidet',
                'unidet_cascade-rcnn_r18-fpn_1xb8-hier-400it_embedded.py')


@pytest.fixture(scope='module')
def tiny_cfg(tmp_path_factory):
    """The tiny UniDet config on a label space made in a temporary folder."""
    from mmssl.datasets import make_embedded_data, prepare_embedded_unidet
    root = tmp_path_factory.mktemp('embedded')
    make_embedded_data(str(root), num_train=8, num_val=4)
    space = prepare_embedded_unidet(str(root))
    cfg = Config.fromfile(TINY)
    for head in cfg.model.roi_head.bbox_head:
        head.loss_cls.label_space = space
    path = str(root / 'unidet_tiny.py')
    cfg.dump(path)
    return path, space


def test_interleaved_median_ms_by_hand(monkeypatch):
    clock = [0.0]
    calls = []

    def fn(name, seconds):

        def call():
            calls.append(name)
            clock[0] += seconds.pop(0) if isinstance(seconds,
                                                     list) else seconds

        return call

    monkeypatch.setattr(unidet_cost.time, 'perf_counter', lambda: clock[0])
    # a: one warm-up call (not timed), then windows of 2 calls taking
    # 1+3, 2+2, 9+9 ms; b: always 5 ms a call
    a = fn('a', [7e-3, 1e-3, 3e-3, 2e-3, 2e-3, 9e-3, 9e-3])
    b = fn('b', 5e-3)
    ms = interleaved_median_ms([a, b], steps=2, repeat=3)  # one warm-up
    # per-call means of the windows: a 2, 2, 9 -> median 2; b 5
    assert ms == pytest.approx([2.0, 5.0])
    # warm-up of each first, then the windows in turn
    assert calls == ['a', 'b'] + ['a', 'a', 'b', 'b'] * 3


def test_loss_cost_counts_classes_and_times_both(tiny_cfg):
    _, space = tiny_cfg
    with open(space) as f:
        num = len(json.load(f)['classes'])
    classes, ms = loss_cost(space, rois=16, steps=1, repeat=1)
    assert classes == num == 10
    assert len(ms) == 2 and all(t > 0 for t in ms)


def test_flat_twin_same_weights_same_predictions_other_loss(tiny_cfg):
    from mmdet.testing import demo_mm_inputs
    path, _ = tiny_cfg
    hier, flat, num_classes = hier_and_flat_detectors(path)
    assert num_classes == 10
    for h, f in zip(hier.roi_head.bbox_head, flat.roi_head.bbox_head):
        assert (h.loss_cls.set_pos_parents, h.loss_cls.ignore_children) == \
            (True, True)
        assert (f.loss_cls.set_pos_parents, f.loss_cls.ignore_children) == \
            (False, False)
    flat_state = flat.state_dict()
    assert all(
        torch.equal(v, flat_state[k]) for k, v in hier.state_dict().items())
    data = demo_mm_inputs(
        2, [[3, 128, 128]] * 2,
        num_items=[3] * 2,
        num_classes=num_classes,
        with_mask=False)
    hier.eval()
    flat.eval()
    with torch.no_grad():
        out_h = hier.test_step(data)
        out_f = flat.test_step(data)
    for a, b in zip(out_h, out_f):
        assert torch.equal(a.pred_instances.scores, b.pred_instances.scores)
        assert torch.equal(a.pred_instances.labels, b.pred_instances.labels)
    # the hierarchy changes only the training loss
    hier.train()
    flat.train()
    torch.manual_seed(0)
    loss_h = hier.loss(*_inputs(hier, data))
    torch.manual_seed(0)
    loss_f = flat.loss(*_inputs(flat, data))
    assert not torch.equal(loss_h['s0.loss_cls'], loss_f['s0.loss_cls'])
    assert torch.equal(loss_h['loss_rpn_cls'][0], loss_f['loss_rpn_cls'][0])


def _inputs(model, data):
    out = model.data_preprocessor(data, True)
    return out['inputs'], out['data_samples']


def test_missing_embedded_label_space_is_made(tmp_path, monkeypatch):
    """The embedded config names a label space under the embedded data
    folder: it is made when missing; no other file is made."""
    import mmssl.datasets
    made = []
    ensure = mmssl.datasets.ensure_embedded_data
    monkeypatch.setattr(mmssl.datasets, 'ensure_embedded_data',
                        lambda root: made.append(root) or ensure(root))
    cfg = Config.fromfile(TINY)
    space = str(tmp_path / 'embedded' / 'unidet' / 'unified' /
                'label_space.json')
    for head in cfg.model.roi_head.bbox_head:
        head.loss_cls.label_space = space
    path = str(tmp_path / 'tiny.py')
    cfg.dump(path)
    _, _, num_classes = hier_and_flat_detectors(path)
    assert osp.isfile(space) and num_classes == 10
    assert made == [str(tmp_path / 'embedded') + '/']
    hier_and_flat_detectors(path)  # there now: not made again
    for head in cfg.model.roi_head.bbox_head:
        head.loss_cls.label_space = str(tmp_path / 'rvc' / 'space.json')
    cfg.dump(path)
    hier_and_flat_detectors(path)  # the loss reads its file when used
    assert len(made) == 1 and not osp.exists(tmp_path / 'rvc')


def test_detector_cost_batch(tiny_cfg, monkeypatch):
    """``batch`` 128 px images with three boxes each, no masks."""
    import mmdet.testing
    seen = {}
    demo = mmdet.testing.demo_mm_inputs

    def record(*args, **kwargs):
        seen.update(args=args, kwargs=kwargs)
        return demo(*args, **kwargs)

    monkeypatch.setattr(mmdet.testing, 'demo_mm_inputs', record)
    calls = []
    monkeypatch.setattr(
        unidet_cost, 'interleaved_median_ms',
        lambda fns, steps, repeat: calls.append(
            (len(fns), steps, repeat)) or [1.0, 1.0])
    path, _ = tiny_cfg
    classes, train_ms, infer_ms = unidet_cost.detector_cost(path, 2, 3, 4)
    assert (classes, train_ms, infer_ms) == (10, [1.0, 1.0], [1.0, 1.0])
    assert calls == [(2, 3, 4), (2, 3, 4)]
    assert seen['args'] == (2, [[3, 128, 128]] * 2)
    assert seen['kwargs'] == dict(
        num_items=[3, 3], num_classes=10, with_mask=False)


def test_hierarchy_cost_rows(tiny_cfg, monkeypatch):
    path, space = tiny_cfg
    # the timings themselves are not the point here: one call each
    monkeypatch.setattr(unidet_cost, 'detector_cost', lambda *args:
                        (10, [4.0, 2.0], [3.0, 3.0]))
    seen = []
    monkeypatch.setattr(
        unidet_cost, 'loss_cost',
        lambda space, rois, steps, repeat: seen.append(
            (space, rois, steps, repeat)) or (10, [1.0, 0.5]))
    rows = hierarchy_cost(
        path, label_space='rvc.json', rois=64, batch=2, steps=3, repeat=5)
    # the loss is timed over at least 10 calls a window
    assert seen == [(space, 64, 10, 5), ('rvc.json', 64, 10, 5)]
    assert rows == [
        dict(
            what='loss fwd+bwd, 64 RoIs, C=10',
            hier_ms=1.0,
            flat_ms=0.5,
            ratio=2.0),
        dict(
            what='loss fwd+bwd, 64 RoIs, C=10',
            hier_ms=1.0,
            flat_ms=0.5,
            ratio=2.0),
        dict(
            what='train_step, batch 2, C=10',
            hier_ms=4.0,
            flat_ms=2.0,
            ratio=2.0),
        dict(
            what='inference, batch 2, C=10',
            hier_ms=3.0,
            flat_ms=3.0,
            ratio=1.0)
    ]
    # the defaults: the README's 1024 RoIs, batch 8, 3 steps, 5 windows
    seen_detector = []
    monkeypatch.setattr(
        unidet_cost, 'detector_cost',
        lambda *args: seen_detector.append(args) or
        (10, [4.0, 2.0], [3.0, 3.0]))
    hierarchy_cost(path)
    assert seen_detector == [(path, 8, 3, 5)]
    assert seen[-1] == (space, 1024, 10, 5)


def test_tool_prints_and_writes_the_rows(tiny_cfg, tmp_path, capsys):
    path, _ = tiny_cfg
    spec = importlib.util.spec_from_file_location(
        'unidet_cost_tool',
        osp.join(ROOT, 'tools', 'analysis_tools', 'unidet_cost.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    out = tmp_path / 'cost.json'
    assert tool.main([
        path, '--rois', '32', '--batch', '1', '--steps', '1', '--repeat', '1',
        '--out',
        str(out)
    ]) == 0
    text = capsys.readouterr().out
    assert 'hier/flat' in text and 'median of 1 interleaved windows' in text
    rows = json.loads(out.read_text())
    assert [r['what'] for r in rows] == [
        'loss fwd+bwd, 32 RoIs, C=10', 'train_step, batch 1, C=10',
        'inference, batch 1, C=10'
    ]
    for r in rows:
        assert r['hier_ms'] > 0 and r['flat_ms'] > 0
        assert r['ratio'] == pytest.approx(r['hier_ms'] / r['flat_ms'])
