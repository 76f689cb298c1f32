# Copyright (c) mmssl contributors. All rights reserved.
"""The tiny positional-label configs end to end through tools/train.py on a
small embedded data set: both losses go down, checkpoints and the class
evaluation work."""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest

from mmssl.analysis.seed_study import read_scalars
from mmssl.utils import safe_torch_load

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CFG_DIR = osp.join(ROOT, 'configs', 'poslabel')

CASES = {
    # config: its task loss key
    'poslabel-apl_vit-tiny-p8_1xb64-coslr-20e_embedded.py': 'loss_cls',
    'poslabel-rpl_swin-tiny-w4_1xb64-coslr-20e_embedded.py': 'loss_cls',
    'mae-poslabel-apl_vit-tiny-p8_1xb64-coslr-30e_embedded.py': 'loss_rec',
}


def _mean(xs):
    return sum(xs) / len(xs)


@pytest.mark.parametrize('name', sorted(CASES))
def test_tiny_poslabel_config_lowers_both_losses(tmp_path, name):
    data = str(tmp_path / 'embedded')
    work = str(tmp_path / 'work')
    supervised = not name.startswith('mae')
    opts = [
        'train_cfg.max_epochs=4',
        'train_dataloader.batch_size=16',
        'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False',
        'default_hooks.logger.interval=1',
        'default_hooks.checkpoint.interval=4',
        # no warm-up: the short run trains at the peak learning rate
        'param_scheduler.0.start_factor=1.0',
        'train_dataloader.dataset.data_root=' + data,
        'train_dataloader.dataset.embedded_cfg.num_train=64',
        'train_dataloader.dataset.embedded_cfg.num_val=32',
    ]
    if supervised:
        opts += [
            'train_cfg.val_interval=4',
            'val_dataloader.dataset.data_root=' + data,
            'val_dataloader.dataset.embedded_cfg.num_train=64',
            'val_dataloader.dataset.embedded_cfg.num_val=32'
        ]
    else:
        opts += ['custom_hooks=[]']
        for k in ('frozen_eval.train_dataloader.dataset',
                  'frozen_eval.val_dataloader.dataset'):
            opts += [
                f'{k}.data_root={data}', f'{k}.embedded_cfg.num_train=64',
                f'{k}.embedded_cfg.num_val=32'
            ]
    proc = subprocess.run(
        [
            sys.executable,
            osp.join(ROOT, 'tools', 'train.py'),
            osp.join(CFG_DIR, name), '--work-dir', work, '--cfg-options'
        ] + opts,
        capture_output=True,
        text=True,
        env=dict(os.environ, OMP_NUM_THREADS='1'),
        timeout=300,
        cwd=ROOT)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    assert 'Epoch(train) [4][4/4]' in log  # 64 images / batch 16
    records = read_scalars(work)
    for key in (CASES[name], 'loss_pos'):
        values = [r[key] for r in records if key in r]
        assert len(values) == 16
        assert _mean(values[-4:]) < _mean(values[:4]), (key, values)
    state = safe_torch_load(osp.join(work, 'epoch_4.pth'))['state_dict']
    assert any(k.startswith('pos_head.') for k in state)
    if supervised:
        assert 'accuracy/top1' in log
        return
    # the MAE + APL encoder is evaluated like any MAE backbone
    out = str(tmp_path / 'eval.json')
    proc = subprocess.run(
        [
            sys.executable,
            osp.join(ROOT, 'tools', 'analysis_tools', 'eval_frozen.py'),
            osp.join(CFG_DIR, name),
            osp.join(work, 'epoch_4.pth'), '--protocols', 'knn', '--out', out,
            '--cfg-options'
        ] + [o for o in opts if o.startswith('frozen_eval')],
        capture_output=True,
        text=True,
        env=dict(os.environ, OMP_NUM_THREADS='1'),
        timeout=300,
        cwd=ROOT)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert 'knn_top1' in json.dumps(json.load(open(out)))


@pytest.mark.parametrize('name, base', [
    ('mae-poslabel-apl-nopos_vit-tiny-p8_1xb64-coslr-30e_embedded.py',
     'poslabel/mae-poslabel-apl_vit-tiny-p8_1xb64-coslr-30e_embedded.py'),
    ('mae-nopos_vit-tiny-p8_1xb64-coslr-30e_embedded.py',
     'mae/mae_vit-tiny-p8_1xb64-coslr-30e_embedded.py'),
])
def test_nopos_configs_are_their_base_without_the_embedding(name, base):
    """The no-position-embedding arms of the README's table (b): their
    base config with ``model.backbone.use_pos_embed=False`` and nothing
    else, the setting the seed study ran as an arm option."""
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(CFG_DIR, name)).to_dict()
    ref = Config.fromfile(osp.join(ROOT, 'configs', base))
    ref.merge_from_dict({'model.backbone.use_pos_embed': False})
    assert cfg == ref.to_dict()
    assert cfg['model']['backbone']['use_pos_embed'] is False
