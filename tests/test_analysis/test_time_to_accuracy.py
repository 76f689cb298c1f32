# Copyright (c) mmssl contributors. All rights reserved.
import json
import os.path as osp
import subprocess
import sys

import pytest
from mmengine.config import Config

from mmssl.analysis import iters_per_epoch, rescale_schedule, time_to_reach

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
MAE = osp.join(ROOT, 'configs/mae/mae_vit-tiny-p8_1xb64-coslr-30e_embedded.py')
D2V2 = osp.join(
    ROOT, 'configs/data2vec2/'
    'data2vec2_vit-tiny-p8_1xb64-coslr-30e_embedded.py')


def test_rescale_schedule_keeps_fractions():
    cfg = Config.fromfile(D2V2)  # 30 epochs, 3 warm-up, EMA 250 updates
    assert iters_per_epoch(cfg) == 32  # 2000 images, batch 64
    out = rescale_schedule(cfg, iters=300, iters_per_epoch=32)
    warm, cos = out.param_scheduler
    assert (warm.begin, warm.end) == (0, 30)
    assert (cos.begin, cos.end, cos.T_max) == (30, 300, 270)
    assert not warm.by_epoch and 'convert_to_iter_based' not in warm
    assert out.train_cfg == dict(type='IterBasedTrainLoop', max_iters=300)
    # 250 of 960 updates -> 250 * 300 / 960
    assert out.model.ema.anneal_iters == round(250 * 300 / 960)
    assert cfg.param_scheduler[0].by_epoch  # the input is untouched


def test_time_to_reach_interpolates():
    recs = [
        dict(train_s=0, acc=10.),
        dict(train_s=10, acc=20.),
        dict(train_s=20, acc=40.)
    ]
    assert time_to_reach(recs, 'acc', 30.) == pytest.approx(15.)
    assert time_to_reach(recs, 'acc', 20.) == pytest.approx(10.)
    assert time_to_reach(recs, 'acc', 5.) == 0
    assert time_to_reach(recs, 'acc', 50.) is None


def test_tool_runs_two_methods_on_tiny_budget(tmp_path):
    data = str(tmp_path / 'embedded')
    cfgs = []
    for src in (MAE, D2V2):
        cfg = Config.fromfile(src)
        cfg.train_dataloader.batch_size = 8
        cfg.train_dataloader.num_workers = 0
        cfg.train_dataloader.persistent_workers = False
        for loader in (cfg.train_dataloader, cfg.frozen_eval.train_dataloader,
                       cfg.frozen_eval.val_dataloader):
            loader.dataset.data_root = data
            loader.dataset.embedded_cfg = dict(num_train=32, num_val=16)
        for step in cfg.train_dataloader.dataset.pipeline:
            if 'MaskGenerator' in step['type']:
                step['num_masks'] = 2
        path = str(tmp_path / osp.basename(src))
        cfg.dump(path)
        cfgs.append(path)
    out, plot = str(tmp_path / 'tta.json'), str(tmp_path / 'tta.png')
    proc = subprocess.run(
        [
            sys.executable,
            osp.join(ROOT, 'tools/analysis_tools/'
                     'time_to_accuracy.py')
        ] + cfgs + [
            '--names', 'mae', 'd2v2', '--budget', '4', '--evals', '2',
            '--probe-iters', '1', '--work-dir',
            str(tmp_path / 'w'), '--out', out, '--plot', plot
        ],
        capture_output=True,
        text=True,
        timeout=400,
        cwd=ROOT)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    res = json.load(open(out))
    for name in ('mae', 'd2v2'):
        recs = res['runs'][name]['records']
        assert recs[0]['train_s'] == 0 and recs[0]['iter'] == 0
        assert len(recs) >= 2 and recs[-1]['iter'] >= 1
        assert 0 <= recs[-1]['knn_top1'] <= 100
    # the reference reaches its own final accuracy at the latest at its end
    # (earlier when the curve is not monotone); a target already met by the
    # untrained model gives no speed-up (None)
    mae = res['summary']['mae']
    assert mae['time_to_target_s'] is not None
    assert mae['speedup'] is None or mae['speedup'] == pytest.approx(1.0)
    assert osp.getsize(plot) > 1000
