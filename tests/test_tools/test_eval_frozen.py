# Copyright (c) mmssl contributors. All rights reserved.
import importlib.util
import json
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmpretrain.registry import MODELS

from mmssl.engine.tool_errors import ToolError
from mmssl.testing import tiny_mae_cfg, write_image_folder

TOOL = osp.join(
    osp.dirname(__file__), '..', '..', 'tools', 'analysis_tools',
    'eval_frozen.py')

MAE_CFG = tiny_mae_cfg(scope='mmpretrain')


def load_tool():
    spec = importlib.util.spec_from_file_location('eval_frozen', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_split(root, per_class, seed, classes=(('a', 40), ('b', 200))):
    """ImageNet-style folders: dark images are class a, bright ones b."""
    return write_image_folder(root, per_class, seed, classes)


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
    with pytest.raises(ToolError, match='frozen_eval'):
        tool.main([str(bare), ckpt])
    with pytest.raises(ToolError, match='does not exist'):
        tool.main([cfg, str(tmp_path / 'missing.pth')])
    # the data can come from a separate config
    res = tool.main(
        [str(bare), ckpt, '--data-cfg', cfg, '--protocols', 'knn', '--k', '3'])
    assert set(res['pretrained']) >= {'knn_top1', 'std_mean'}


THREE = (('dark', 30), ('mid', 120), ('light', 220))
KNN = ['--protocols', 'knn', '--k', '3']


@pytest.fixture
def logged(monkeypatch):
    """The messages eval_frozen logs (``print_log`` of the tool module)."""

    def attach(tool):
        messages = []
        monkeypatch.setattr(tool, 'print_log',
                            lambda msg, **kwargs: messages.append(str(msg)))
        return messages

    return attach


def test_data_cfg_wins_over_the_config(setup, logged):
    tmp_path, cfg, ckpt = setup
    tool = load_tool()
    messages = logged(tool)
    root = tmp_path / 'three'
    train = write_split(root / 'train', 3, seed=2, classes=THREE)
    val = write_split(root / 'val', 2, seed=3, classes=THREE)
    data_cfg = tmp_path / 'three_classes.py'
    Config(
        dict(
            frozen_eval=dict(
                train_dataloader=loader_cfg(train),
                val_dataloader=loader_cfg(val)))).dump(str(data_cfg))
    out = tmp_path / 'r.json'
    res = tool.main(
        [cfg, '--random', '--data-cfg',
         str(data_cfg), '--out',
         str(out)] + KNN)
    # CONFIG's own frozen_eval has two classes and 18 images
    assert res['random']['num_classes'] == 3
    data = json.loads(out.read_text())['data']
    assert f"--data-cfg '{data_cfg}'" in data['source']
    assert f"replaces the one of '{cfg}'" in data['source']
    assert data['train']['num_images'] == 9 and data['val']['num_images'] == 6
    assert data['train']['classes'] == ['dark', 'light', 'mid']
    assert data['val']['folder'] == val
    text = '\n'.join(messages)
    assert f"evaluation data: the frozen_eval of --data-cfg '{data_cfg}'" \
        in text
    assert f"val: CustomDataset '{val}', 6 images, 3 classes (dark, light, " \
        'mid)' in text
    # without --data-cfg the config's own data are used and named
    messages.clear()
    res = tool.main([cfg, '--random'] + KNN)
    assert res['random']['num_classes'] == 2
    assert f"evaluation data: the frozen_eval of '{cfg}'" in messages[0]


def test_data_root_with_train_and_val(setup, logged, capsys):
    tmp_path, cfg, ckpt = setup
    tool = load_tool()
    messages = logged(tool)
    root = tmp_path / 'mine'
    write_split(root / 'train', 3, seed=4, classes=THREE)
    write_split(root / 'val', 2, seed=5, classes=THREE)
    out = tmp_path / 'r.json'
    res = tool.main([
        cfg, ckpt, '--data-root',
        str(root), '--num-workers', '0', '--batch-size', '4', '--out',
        str(out)
    ] + KNN)
    assert res['pretrained']['num_classes'] == 3
    assert f"data: --data-root '{root}' (train/ and val/), images resized " \
        'and centre-cropped to 32 px; train 9 / val 6 images, 3 classes' \
        in capsys.readouterr().out
    data = json.loads(out.read_text())['data']
    assert data['source'] == (f"--data-root '{root}' (train/ and val/), "
                              'images resized and centre-cropped to 32 px')
    assert data['train']['folder'] == str(root / 'train')
    assert (data['train']['num_images'], data['val']['num_images']) == (9, 6)
    assert any(f"train: CustomDataset '{root / 'train'}', 9 images" in m
               for m in messages)


def test_data_root_split_per_class(setup):
    tmp_path, cfg, ckpt = setup
    tool = load_tool()
    root = tmp_path / 'flat'
    write_split(root, 5, seed=6, classes=THREE)
    res = tool.main([
        cfg, '--random', '--data-root',
        str(root), '--num-workers', '0', '--img-size', '16'
    ] + KNN)
    assert res['random']['num_classes'] == 3


def test_data_root_errors(setup, capsys):
    tmp_path, cfg, ckpt = setup
    tool = load_tool()
    half = tmp_path / 'half'
    write_split(half / 'train', 2, seed=0)
    write_split(half / 'val', 2, seed=0, classes=(('a', 40), ('c', 90)))
    # the command line: one error line, exit code 2
    with pytest.raises(SystemExit) as exc:
        tool.run_tool(tool.main, [cfg, '--random', '--data-root', str(half)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --data-root '{half}': train/ and val/")
    with pytest.raises(SystemExit):  # one source of data at a time
        tool.parse_args([cfg, '--data-root', 'x', '--data-cfg', 'y'])
