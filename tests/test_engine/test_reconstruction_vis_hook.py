# Copyright (c) mmssl contributors. All rights reserved.
import os.path as osp

import numpy as np
import torch
from mmengine.config import Config
from mmengine.runner import Runner
from PIL import Image

from mmssl.testing import tiny_mae_cfg


def test_hook_writes_grid_and_keeps_random_stream(tmp_path):
    data = tmp_path / 'imgs'
    data.mkdir()
    rng = np.random.RandomState(0)
    for i in range(8):
        Image.fromarray(rng.randint(0, 255, (32, 32, 3),
                                    np.uint8)).save(str(data / f'{i}.png'))
    cfg = Config(
        dict(
            default_scope='mmpretrain',
            work_dir=str(tmp_path / 'work'),
            model=tiny_mae_cfg(),
            train_dataloader=dict(
                batch_size=4,
                num_workers=0,
                sampler=dict(type='DefaultSampler', shuffle=False),
                collate_fn=dict(type='default_collate'),
                dataset=dict(
                    type='CustomDataset',
                    data_root=str(data),
                    with_label=False,
                    pipeline=[
                        dict(type='LoadImageFromFile'),
                        dict(type='PackInputs')
                    ])),
            optim_wrapper=dict(optimizer=dict(type='AdamW', lr=1e-3)),
            train_cfg=dict(type='EpochBasedTrainLoop', max_epochs=2),
            custom_hooks=[
                dict(type='mmssl.ReconstructionVisHook', num_images=3)
            ],
            default_hooks=dict(checkpoint=None),
            log_level='WARNING'))
    runner = Runner.from_cfg(cfg)
    hook = [
        h for h in runner.hooks if type(h).__name__ == 'ReconstructionVisHook'
    ][0]
    # drawing must not consume the global random stream
    torch.manual_seed(0)
    before = torch.get_rng_state()
    hook._draw(runner, 'probe')
    assert torch.equal(torch.get_rng_state(), before)
    runner.train()
    files = [f for f in hook.saved_files if 'epoch' in f]
    assert [osp.basename(f) for f in files
            ] == ['reconstruction_epoch1.png', 'reconstruction_epoch2.png']
    grid = np.asarray(Image.open(files[-1]))
    # 3 rows of 32 px + padding, 4 columns of 32 px + padding
    assert grid.shape == (3 * 34 + 2, 4 * 34 + 2, 3)
    # column 0 is the original image (denormalised back to pixels)
    orig = np.asarray(Image.open(str(data / '0.png')))
    np.testing.assert_allclose(
        grid[2:34, 2:34].astype(int), orig.astype(int), atol=1)
    # the masked column has grey removed patches
    assert (grid[2:34, 36:68] == 127).all(-1).mean() > 0.5
