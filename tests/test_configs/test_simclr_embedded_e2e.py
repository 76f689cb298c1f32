# Copyright (c) mmssl contributors. All rights reserved.
"""The tiny SimCLR config end to end: tools/train.py for 1 epoch on a small
embedded data set, then the frozen-feature evaluation tool."""
import json
import os
import os.path as osp
import subprocess
import sys

from mmssl.utils import safe_torch_load

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(ROOT, 'configs', 'simclr',
                  'simclr_resnet18-tiny_1xb64-coslr-30e_embedded.py')


def test_tiny_simclr_config_trains_and_evaluates(tmp_path):
    data = str(tmp_path / 'embedded')
    work = str(tmp_path / 'work')
    opts = [
        'train_cfg.max_epochs=1', 'train_dataloader.batch_size=8',
        'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False',
        'default_hooks.logger.interval=1'
    ]
    for k in ('train_dataloader.dataset',
              'frozen_eval.train_dataloader.dataset',
              'frozen_eval.val_dataloader.dataset'):
        opts += [
            f'{k}.data_root={data}', f'{k}.embedded_cfg.num_train=48',
            f'{k}.embedded_cfg.num_val=24'
        ]
    env = dict(os.environ, OMP_NUM_THREADS='1')
    proc = subprocess.run(
        [
            sys.executable,
            osp.join(ROOT, 'tools', 'train.py'), CONFIG, '--work-dir', work,
            '--cfg-options'
        ] + opts,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=ROOT)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    # 48 images / batch 8 = 6 iterations
    assert 'Epoch(train) [1][6/6]' in log
    ckpt = osp.join(work, 'epoch_1.pth')
    state = safe_torch_load(ckpt)
    assert state['meta']['epoch'] == 1
    assert any(k.startswith('neck.') for k in state['state_dict'])

    out = str(tmp_path / 'eval.json')
    proc = subprocess.run(
        [
            sys.executable,
            osp.join(ROOT, 'tools', 'analysis_tools', 'eval_frozen.py'),
            CONFIG, ckpt, '--protocols', 'knn', '--out', out, '--cfg-options'
        ] + [o for o in opts if o.startswith('frozen_eval')],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=ROOT)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert 'pretrained' in json.dumps(json.load(open(out)))
