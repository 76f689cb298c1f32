# Copyright (c) mmssl contributors. All rights reserved.
"""Every config in configs/ parses and builds its model and optimizer."""
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import MODELS, init_default_scope

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = sorted(
    p for p in glob.glob(
        osp.join(ROOT, 'configs', '**', '*.py'), recursive=True)
    if '_base_' not in p)


def test_there_are_configs():
    assert len(CONFIGS) >= 3


@pytest.mark.parametrize(
    'path', CONFIGS, ids=[osp.relpath(p, ROOT) for p in CONFIGS])
def test_config_builds(path):
    cfg = Config.fromfile(path)
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    assert 'model' in cfg, f'{path} has no model'
    model = MODELS.build(cfg.model)
    assert sum(p.numel() for p in model.parameters()) > 0
    if 'optim_wrapper' in cfg:
        optim_cfg = cfg.optim_wrapper.copy()
        if not torch.cuda.is_available() and optim_cfg.get(
                'type') == 'AmpOptimWrapper':
            optim_cfg['type'] = 'OptimWrapper'
            optim_cfg.pop('loss_scale', None)
            optim_cfg.pop('dtype', None)
        build_optim_wrapper(model, optim_cfg)
    if 'train_cfg' in cfg:
        assert cfg.train_cfg.get('type') or cfg.train_cfg.get('by_epoch') \
            is not None or 'max_iters' in cfg.train_cfg
