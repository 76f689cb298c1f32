# Copyright (c) mmssl contributors. All rights reserved.
"""The tiny MAE config end to end: dist_train.sh with 2 gloo processes on a
small embedded data set, reconstruction pictures, then the eval tool."""
import json
import os
import os.path as osp
import socket
import subprocess
import sys

from mmssl.utils import safe_torch_load

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(ROOT, 'configs', 'mae',
                  'mae_vit-tiny-p8_1xb64-coslr-30e_embedded.py')


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_tiny_mae_config_dist_train_and_eval(tmp_path):
    data = str(tmp_path / 'embedded')
    work = str(tmp_path / 'work')
    opts = [
        'train_cfg.max_epochs=2', 'train_dataloader.batch_size=8',
        'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False',
        'custom_hooks.0.interval=1', 'custom_hooks.0.num_images=4'
    ]
    for k in ('train_dataloader.dataset',
              'frozen_eval.train_dataloader.dataset',
              'frozen_eval.val_dataloader.dataset'):
        opts += [
            f'{k}.data_root={data}', f'{k}.embedded_cfg.num_train=48',
            f'{k}.embedded_cfg.num_val=24'
        ]
    env = dict(
        os.environ,
        PYTHON=sys.executable,
        PORT=str(_free_port()),
        OMP_NUM_THREADS='1')
    proc = subprocess.run(
        [
            'bash',
            osp.join(ROOT, 'tools', 'dist_train.sh'), CONFIG, '2',
            '--work-dir', work, '--cfg-options'
        ] + opts,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=ROOT)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    assert 'Distributed training: True' in log
    # 48 images / (2 processes x 8) = 3 iterations per epoch
    assert 'Epoch(train) [2][3/3]' in log
    assert osp.exists(osp.join(work, 'vis', 'reconstruction_epoch2.png'))
    ckpt = osp.join(work, 'epoch_2.pth')
    assert safe_torch_load(ckpt)['meta']['epoch'] == 2

    out = str(tmp_path / 'eval.json')
    proc = subprocess.run(
        [
            sys.executable,
            osp.join(ROOT, 'tools', 'analysis_tools',
                     'eval_frozen.py'), CONFIG, ckpt, '--random',
            '--protocols', 'knn', 'linear', '--out', out, '--cfg-options'
        ] + [o for o in opts if o.startswith('frozen_eval')],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    result = json.load(open(out))
    assert 'pretrained' in json.dumps(result) and 'random' in json.dumps(
        result)
