# Copyright (c) mmssl contributors. All rights reserved.
"""The DenseCL configs: the tiny one end to end (tools/train.py for 2
epochs on a small embedded data set, then the frozen-feature evaluation
tool), a batch that does not divide the queue stopped before training, and
the ImageNet one against the paper's recipe."""
import json
import os
import os.path as osp
import subprocess
import sys

from mmengine.config import Config

from mmssl.utils import safe_torch_load

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TINY = osp.join(ROOT, 'configs', 'densecl',
                'densecl_resnet18-tiny_1xb64-coslr-30e_embedded.py')
IN1K = osp.join(ROOT, 'configs', 'densecl',
                'densecl_resnet50_8xb32-coslr-200e_in1k.py')


def _data_opts(data):
    opts = []
    for k in ('train_dataloader.dataset',
              'frozen_eval.train_dataloader.dataset',
              'frozen_eval.val_dataloader.dataset'):
        opts += [
            f'{k}.data_root={data}', f'{k}.embedded_cfg.num_train=48',
            f'{k}.embedded_cfg.num_val=24'
        ]
    return opts


def _run(args, timeout=300):
    env = dict(os.environ, OMP_NUM_THREADS='1')
    proc = subprocess.run(
        [sys.executable] + args,
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        cwd=ROOT)
    return proc.returncode, proc.stdout + proc.stderr


def test_tiny_densecl_config_trains_and_evaluates(tmp_path):
    data = str(tmp_path / 'embedded')
    work = str(tmp_path / 'work')
    opts = [
        'train_cfg.max_epochs=2', 'train_dataloader.batch_size=8',
        'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False',
        'default_hooks.logger.interval=1', 'custom_hooks.0.start_iters=3'
    ] + _data_opts(data)
    code, log = _run([
        osp.join(ROOT, 'tools', 'train.py'), TINY, '--work-dir', work,
        '--cfg-options'
    ] + opts)
    assert code == 0, log[-4000:]
    # 48 images / batch 8 = 6 iterations per epoch
    assert 'Epoch(train) [2][6/6]' in log
    ckpt = osp.join(work, 'epoch_2.pth')
    state = safe_torch_load(ckpt)
    assert state['meta']['epoch'] == 2
    weights = state['state_dict']
    # 12 steps of 8 keys: the pointer of the 256-entry queues is at 96
    assert int(weights['queue_ptr']) == int(weights['queue2_ptr']) == 96
    assert int(weights['encoder_k.steps']) == 12

    out = str(tmp_path / 'eval.json')
    code, log = _run([
        osp.join(ROOT, 'tools', 'analysis_tools', 'eval_frozen.py'), TINY,
        ckpt, '--protocols', 'knn', '--out', out, '--cfg-options'
    ] + [o for o in opts if o.startswith('frozen_eval')])
    assert code == 0, log[-4000:]
    assert 'pretrained' in json.dumps(json.load(open(out)))


def test_batch_not_dividing_the_queue_stops_before_training(tmp_path):
    code, log = _run([
        osp.join(ROOT, 'tools', 'train.py'), TINY, '--work-dir',
        str(tmp_path / 'work'), '--cfg-options',
        'train_dataloader.batch_size=12', 'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False'
    ] + _data_opts(str(tmp_path / 'embedded')))
    assert code != 0
    assert 'model.queue_len (K=256) must be divisible' in log, log[-4000:]
    assert 'Epoch(train)' not in log


def test_imagenet_config_is_the_paper_recipe():
    cfg = Config.fromfile(IN1K)
    model = cfg.model
    assert model.type == 'mmssl.DenseCL'
    assert (model.queue_len, model.feat_dim, model.momentum,
            model.loss_lambda) == (65536, 128, 0.001, 0.5)
    assert model.head == dict(type='mmssl.DenseCLLoss', temperature=0.2)
    assert model.backbone.depth == 50
    assert model.backbone.zero_init_residual is False
    assert (model.neck.in_channels, model.neck.hid_channels,
            model.neck.out_channels, model.neck.num_grid) == (2048, 2048, 128,
                                                              None)
    loader = cfg.train_dataloader
    assert loader.batch_size == 32 and loader.drop_last
    assert loader.dataset.data_root.rstrip('/') == 'data/imagenet'
    assert cfg.auto_scale_lr.base_batch_size == 256
    assert cfg.optim_wrapper.optimizer == dict(
        type='SGD', lr=0.03, weight_decay=1e-4, momentum=0.9)
    assert cfg.param_scheduler[0].type == 'CosineAnnealingLR'
    assert cfg.train_cfg.max_epochs == 200
    multiview = loader.dataset.pipeline[1]
    assert multiview.num_views == 2
    views = {t.type: t for t in multiview.transforms[0]}
    assert views['RandomResizedCrop'].scale == 224
    assert tuple(views['RandomResizedCrop'].crop_ratio_range) == (0.2, 1.)
    jitter = views['RandomApply']
    assert jitter.prob == 0.8
    assert {
        k: v
        for k, v in jitter.transforms[0].items() if k != 'type'
    } == dict(
        brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1)
    assert views['RandomGrayscale'].prob == 0.2
    assert tuple(views['GaussianBlur'].magnitude_range) == (0.1, 2.)
    assert views['GaussianBlur'].prob == 0.5
    assert views['RandomFlip'].prob == 0.5
    assert cfg.custom_hooks == [
        dict(type='mmssl.DenseCLWarmupHook', start_iters=10000)
    ]
