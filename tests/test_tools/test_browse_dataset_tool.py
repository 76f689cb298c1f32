# Copyright (c) mmssl contributors. All rights reserved.
"""tools/analysis_tools/browse_dataset.py: the picture and its errors."""
import os.path as osp

import pytest
from PIL import Image

from mmssl.engine.runner_utils import ToolError

TOOL = 'analysis_tools/browse_dataset.py'
REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@pytest.fixture(scope='module')
def tool(load_tool_module):
    return load_tool_module(TOOL)


def test_choose_indices(tool):
    assert tool.choose_indices(5, 8, None, 0) == [0, 1, 2, 3, 4]
    picked = tool.choose_indices(100, 4, None, 3)
    assert len(set(picked)) == 4 and picked == sorted(picked)
    assert picked == tool.choose_indices(100, 4, None, 3)
    assert picked != tool.choose_indices(100, 4, None, 4)
    assert tool.choose_indices(10, 4, [2, -1], 0) == [2, 9]
    with pytest.raises(
            ToolError,
            match=r'--indices \[10\] out of range.*'
            r'10 samples \(0..9\)'):
        tool.choose_indices(10, 4, [1, 10], 0)
    with pytest.raises(ToolError, match='data set is empty'):
        tool.choose_indices(0, 4, None, 0)


def test_unlabelled_training_set(tool, tiny_mae_config, tmp_path):
    out = str(tmp_path / 'b.png')
    assert tool.main([tiny_mae_config, '--num', '3', '--out', out]) == out
    grid = Image.open(out)
    # 3 rows of one 32 px crop enlarged 3x (to >= 96 px), 4 px gaps, a
    # 48 px name column
    assert grid.size == (48 + 96 + 4, 3 * (96 + 4))
    tool.main([tiny_mae_config, '--num', '1', '--scale', '1', '--out', out])
    assert Image.open(out).size == (48 + 32 + 4, 32 + 4)


def test_labelled_test_split_scaled(tool, tiny_cls_config, tmp_path):
    out = str(tmp_path / 'c.png')
    tool.main([
        tiny_cls_config, '--split', 'test', '--indices', '0', '3', '--scale',
        '2', '--out', out
    ])
    # 64 px images with a 14 px class caption under each
    assert Image.open(out).size == (48 + 64 + 4, 2 * (64 + 14 + 4))


def test_two_views_of_the_simclr_config(tool, tmp_path):
    from mmssl.datasets import make_embedded_data
    root = str(tmp_path / 'embedded')
    make_embedded_data(root, num_train=6, num_val=2)
    out = str(tmp_path / 's.png')
    tool.main([
        osp.join(
            REPO, 'configs/simclr/'
            'simclr_resnet18-tiny_1xb64-coslr-30e_embedded.py'), '--num', '2',
        '--out', out, '--cfg-options',
        f'train_dataloader.dataset.data_root={root}'
    ])
    # two 64 px views per row, enlarged 2x
    assert Image.open(out).size == (48 + 2 * (128 + 4), 2 * (128 + 4))


def test_errors_name_the_split_and_the_shape(tool, tiny_mae_config, tmp_path):
    with pytest.raises(ToolError, match='no `val_dataloader.dataset`'):
        tool.main([tiny_mae_config, '--split', 'val'])
    text_cfg = osp.join(
        REPO, 'configs/albert/albert_tiny_1xb32-lamb-20e_embedded-text.py')
    with pytest.raises(
            ToolError,
            match='albert_tiny.*\\(train\\).*shape '
            'dict is not a \\(C, H, W\\) image'):
        tool.main([text_cfg, '--num', '1', '--out', str(tmp_path / 't.png')])


@pytest.mark.parametrize('flag', ['--num', '--scale'])
def test_counts_must_be_positive(tool, flag, capsys):
    with pytest.raises(SystemExit):
        tool.parse_args(['c.py', flag, '0'])
    assert f"argument {flag}: '0' is not a positive integer" in \
        capsys.readouterr().err
