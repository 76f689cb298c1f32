# Copyright (c) mmssl contributors. All rights reserved.
"""The tiny UniDet config end to end on a small embedded data set: a few
iterations through tools/train.py, tools/test.py printing the per-source
table, then mmdet's inference API and visualiser unchanged."""
import os.path as osp
import subprocess
import sys

import numpy as np

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(ROOT, 'configs', 'unidet',
                  'unidet_cascade-rcnn_r18-fpn_1xb8-hier-400it_embedded.py')
UNIFIED = ('circle', 'cross', 'ellipse', 'hexagon', 'pentagon', 'polygon',
           'semicircle', 'square', 'star', 'triangle')
LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


def _run(args, cwd):
    proc = subprocess.run(
        [sys.executable] + args,
        cwd=cwd,
        timeout=300,
        capture_output=True,
        text=True,
        env=dict(__import__('os').environ, OMP_NUM_THREADS='1'))
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    return log


def test_tiny_unidet_train_test_and_inference(tmp_path, monkeypatch):
    from mmssl.datasets import make_embedded_data

    # the config's relative paths (data/embedded/...) resolve in tmp_path
    make_embedded_data(
        str(tmp_path / 'data' / 'embedded'), num_train=32, num_val=16)
    work = str(tmp_path / 'work')
    opts = [
        'train_cfg.max_iters=2', 'train_cfg.val_interval=2',
        'default_hooks.checkpoint.interval=2', 'train_dataloader.batch_size=4',
        'default_hooks.logger.interval=1'
    ] + [f'{k}.num_workers=0' for k in LOADERS
         ] + [f'{k}.persistent_workers=False' for k in LOADERS]
    log = _run([
        osp.join(ROOT, 'tools', 'train.py'), CONFIG, '--work-dir', work,
        '--cfg-options'
    ] + opts, tmp_path)
    assert 'Iter(train) [2/2]' in log
    assert 'source_a/bbox_mAP' in log and 'source_b/bbox_mAP' in log
    ckpt = osp.join(work, 'iter_2.pth')
    assert osp.isfile(ckpt)

    log = _run([
        osp.join(ROOT, 'tools', 'test.py'), CONFIG, ckpt, '--work-dir',
        str(tmp_path / 'test'), '--cfg-options'
    ] + opts[5:], tmp_path)
    assert 'Per-source COCO box mAP' in log
    table = log[log.index('Per-source COCO box mAP'):]
    assert 'source_a ' in table and 'source_b ' in table and 'dropped' in table

    # mmdet's inference API, unchanged, on an embedded image
    monkeypatch.chdir(tmp_path)
    from mmdet.apis import DetInferencer, inference_detector, init_detector
    model = init_detector(CONFIG, ckpt, device='cpu')
    assert tuple(model.dataset_meta['classes']) == UNIFIED
    assert len(model.dataset_meta['palette']) == len(UNIFIED)
    img = str(tmp_path / 'data' / 'embedded' / 'unidet' / 'source_b' /
              'images' / 'val' / '000000.png')
    result = inference_detector(model, img)
    pred = result.pred_instances
    assert pred.bboxes.shape[1] == 4 and len(pred) == len(pred.scores)
    assert (pred.scores <= 1).all() and (pred.labels < len(UNIFIED)).all()

    inferencer = DetInferencer(
        model=CONFIG, weights=ckpt, device='cpu', show_progress=False)
    out = inferencer(img, no_save_vis=True, return_datasamples=True)
    assert len(out['predictions']) == 1

    # boxes with unified class names, drawn by mmdet's visualiser
    import mmcv
    from mmdet.visualization import DetLocalVisualizer
    vis = DetLocalVisualizer(name='unidet_e2e')
    vis.dataset_meta = model.dataset_meta
    result.pred_instances = pred[pred.scores.argsort(descending=True)[:3]]
    out_file = str(tmp_path / 'vis.png')
    vis.add_datasample(
        'pred',
        mmcv.imread(img, channel_order='rgb'),
        result,
        draw_gt=False,
        pred_score_thr=0.0,
        out_file=out_file)
    picture = mmcv.imread(out_file)
    assert picture.shape[:2] == (64, 64) and np.ptp(picture) > 0
