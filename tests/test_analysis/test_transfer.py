# Copyright (c) mmssl contributors. All rights reserved.
"""mmssl.analysis.transfer: the methods and configs of the transfer
pipeline (its stages run end to end in
``tests/test_tools/test_transfer_pipeline.py``)."""
import os.path as osp

import pytest
from mmengine.config import Config

from mmssl.analysis import iters_per_epoch, transfer

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def test_method_configs():
    assert transfer.method_configs('random', 'seg')['pretrain'] is None
    simclr = transfer.method_configs('simclr', 'det')
    assert simclr['pretrain'].startswith('configs/simclr/')
    assert simclr['finetune'].startswith('configs/transfer/det/')
    with pytest.raises(transfer.PipelineError, match='no det transfer'):
        transfer.method_configs('mae', 'det')
    with pytest.raises(transfer.PipelineError, match='unknown method'):
        transfer.method_configs('byol', 'seg')
    seg = transfer.available_methods('seg')
    assert seg[0] == 'random'
    assert {'simclr', 'mae', 'data2vec2', 'random-vit'} <= set(seg)
    assert set(
        transfer.available_methods('det')) <= {'random', 'simclr', 'densecl'}


def test_pretrain_config_stretches_the_ema_anneal(tmp_path):
    """--pretrain-epochs 100 of data2vec 2.0: the teacher's anneal keeps its
    share of the run (250 of 960 updates -> 833 of 3200)."""

    class Args:
        data_root = osp.join(ROOT, 'data', 'embedded')  # the default set
        pretrain_cfg_options = None
        pretrain_epochs = 100

    path = transfer.method_configs('data2vec2', 'seg')['pretrain']
    dst = str(tmp_path / 'pretrain_config.py')
    cfg = transfer.write_pretrain_config(path, dst, Args)
    ipe = iters_per_epoch(cfg)
    assert cfg.train_cfg.max_epochs == 100
    assert cfg.model.ema.anneal_iters == round(250 * 100 / 30)
    assert cfg.param_scheduler[-1].end == 100 * ipe
    written = Config.fromfile(dst)
    assert written.model.ema.anneal_iters == cfg.model.ema.anneal_iters
    assert not any('FrozenEval' in h.type for h in written.custom_hooks)

    Args.pretrain_epochs = 0
    with pytest.raises(transfer.PipelineError, match='>= 1'):
        transfer.write_pretrain_config(path, dst, Args)
