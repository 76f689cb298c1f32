# Copyright (c) mmssl contributors. All rights reserved.
import importlib.util
import json
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmpretrain.registry import MODELS
from PIL import Image
from mmssl.testing import tiny_mae_cfg


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors: one thread is faster and immune to busy CPUs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


TOOL = osp.join(
    osp.dirname(__file__), '..', '..', 'tools', 'analysis_tools',
    'eval_frozen.py')

MAE_CFG = tiny_mae_cfg(scope='mmpretrain')


def load_tool():
    spec = importlib.util.spec_from_file_location('eval_frozen', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_split(root, per_class, seed):
    """ImageNet-style folders: dark images are class a, bright ones b."""
    rng = np.random.default_rng(seed)
    for cls, base in (('a', 40), ('b', 200)):
        folder = root / cls
        folder.mkdir(parents=True)
        for i in range(per_class):
            img = np.clip(base + rng.normal(0, 20, (32, 32, 3)), 0, 255)
            Image.fromarray(img.astype(np.uint8)).save(folder / f'{i}.png')
    return str(root)


def loader_cfg(root):
    return dict(
        batch_size=4,
        num_workers=0,
        dataset=dict(
            type='mmpretrain.CustomDataset',
            data_prefix=root,
            pipeline=[
                dict(type='mmpretrain.LoadImageFromFile'),
                dict(type='mmpretrain.PackInputs')
            ]))


@pytest.fixture
def setup(tmp_path):
    train = write_split(tmp_path / 'train', 6, seed=0)
    val = write_split(tmp_path / 'val', 3, seed=1)
    cfg = tmp_path / 'mae_tiny.py'
    Config(
        dict(
            default_scope='mmpretrain',
            model=MAE_CFG,
            frozen_eval=dict(
                train_dataloader=loader_cfg(train),
                val_dataloader=loader_cfg(val)))).dump(str(cfg))
    torch.manual_seed(7)
    pretrained = MODELS.build(MAE_CFG)
    ckpt = tmp_path / 'epoch_1.pth'
    torch.save(dict(meta=dict(), state_dict=pretrained.state_dict()), ckpt)
    return tmp_path, str(cfg), str(ckpt)


def test_both_rows_json_and_reproducible(setup, capsys):
    tmp_path, cfg, ckpt = setup
    tool = load_tool()
    out = tmp_path / 'results.json'
    common = ['--finetune-epochs', '1', '--linear-iters', '10', '--k', '3']
    results = tool.main([cfg, ckpt, '--random', '--out', str(out)] + common)
    table = capsys.readouterr().out
    assert 'pretrained' in table and 'random' in table
    assert 'kNN top-1' in table and 'finetune top-1' in table

    saved = json.loads(out.read_text())
    assert set(saved['results']) == {'pretrained', 'random'}
    for row in saved['results'].values():
        for key in ('knn_top1', 'linear_top1', 'finetune_top1', 'std_mean',
                    'effective_rank', 'rank_ratio'):
            assert key in row
        assert row['num_classes'] == 2
    assert saved['settings']['finetune_epochs'] == 1
    # the two rows have different weights
    assert results['pretrained']['std_mean'] != \
        results['random']['std_mean']

    # a rerun of one row gives the same numbers
    again = tool.main([cfg, '--random', '--protocols', 'knn', 'finetune'] +
                      common)
    for key in ('knn_top1', 'finetune_top1', 'effective_rank'):
        assert again['random'][key] == pytest.approx(results['random'][key])
    assert 'linear_top1' not in again['random']


def test_missing_eval_data_is_explained(setup):
    tmp_path, cfg, ckpt = setup
    tool = load_tool()
    bare = tmp_path / 'bare.py'
    Config(dict(default_scope='mmpretrain', model=MAE_CFG)).dump(str(bare))
    with pytest.raises(tool.ToolError, match='frozen_eval'):
        tool.main([str(bare), ckpt])
    with pytest.raises(tool.ToolError, match='does not exist'):
        tool.main([cfg, str(tmp_path / 'missing.pth')])
    # the data can come from a separate config
    res = tool.main(
        [str(bare), ckpt, '--data-cfg', cfg, '--protocols', 'knn', '--k', '3'])
    assert set(res['pretrained']) >= {'knn_top1', 'std_mean'}
