# Copyright (c) mmssl contributors. All rights reserved.
"""The DiffFashion pair config end to end: pack a checkpoint from separate
diffusion / ViT weights, then tools/test.py on two pairs with few steps."""
import importlib.util
import json
import os.path as osp

import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from mmssl.datasets import make_embedded_data
from mmssl.registry import MODELS
from mmssl.testing.checkpoints import save_as_backbone

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(ROOT, 'configs', 'difffashion',
                  'difffashion_ddpm-tiny_mae-vit-tiny_embedded-pairs32.py')


def _tool(relpath):
    path = osp.join(ROOT, 'tools', relpath)
    spec = importlib.util.spec_from_file_location(
        'mmssl_tool_' + relpath.replace('/', '_')[:-3], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_pair_config_pack_and_test(tmp_path):
    data = str(tmp_path / 'embedded')
    make_embedded_data(data, seed=0, img_size=64, num_train=9, num_val=6)
    # separately "trained" weights (random here) of the config's two models
    init_default_scope('mmssl')
    torch.manual_seed(0)
    editor = MODELS.build(Config.fromfile(CONFIG).model)
    torch.save(
        dict(state_dict=editor.diffusion.state_dict()), tmp_path / 'ddpm.pth')
    save_as_backbone(editor.vit, str(tmp_path / 'mae.pth'))
    ckpt = str(tmp_path / 'editor.pth')
    pack = _tool('model_converters/difffashion_editor.py')
    assert pack.main([
        CONFIG, '--diffusion',
        str(tmp_path / 'ddpm.pth'), '--vit',
        str(tmp_path / 'mae.pth'), '--out', ckpt
    ]) == 0
    assert pack.main([
        CONFIG, '--diffusion',
        str(tmp_path / 'none.pth'), '--vit',
        str(tmp_path / 'mae.pth'), '--out', ckpt
    ]) == 2

    out = str(tmp_path / 'metrics.json')
    test = _tool('test.py')
    test.main([
        CONFIG, ckpt, '--work-dir',
        str(tmp_path / 'work'), '--out', out, '--out-item', 'metrics',
        '--cfg-options', f'test_dataloader.dataset.data_root={data}',
        'test_dataloader.dataset.num_pairs=2', 'model.schedule.num_steps=5',
        'model.schedule.resample=1'
    ])
    metrics = json.load(open(out))
    assert metrics['fashion/num_pairs'] == 2
    assert 0 <= metrics['fashion/mask_iou'] <= 1
    assert 0 < metrics['fashion/mask_fraction'] <= 1
    assert metrics['fashion/background_l1'] >= 0
    for key in ('structure_selfsim', 'structure_selfsim_fg', 'appearance_cls'):
        assert metrics[f'fashion/{key}'] >= 0
