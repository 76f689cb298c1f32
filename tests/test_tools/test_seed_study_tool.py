# Copyright (c) mmssl contributors. All rights reserved.
"""tools/analysis_tools/seed_study.py: summary of existing runs, errors."""
import json
import os

import pytest

from mmssl.engine.runner_utils import ToolError


def _run(root, arm, seed, acc):
    d = os.path.join(root, arm, f'seed{seed}', '20260101_000000', 'vis_data')
    os.makedirs(d)
    with open(os.path.join(d, 'scalars.json'), 'w') as f:
        f.write(json.dumps({'step': 20, 'accuracy/top1': acc}) + '\n')


def test_summarize_only_writes_table_json_and_plot(tmp_path, capsys,
                                                   load_tool_module):
    tool = load_tool_module('analysis_tools/seed_study.py')
    cfgs = []
    for arm in ('a', 'b'):
        cfg = tmp_path / f'{arm}.py'
        cfg.write_text('')
        cfgs.append(str(cfg))
    root = str(tmp_path / 'runs')
    for seed, (x, y) in enumerate(((10., 12.), (14., 12.), (12., 15.))):
        _run(root, 'a', seed, x)
        _run(root, 'b', seed, y)
    out, plot = str(tmp_path / 's.json'), str(tmp_path / 's.png')
    tool.main(
        cfgs +
        ['--work-dir', root, '--summarize-only', '--out', out, '--plot', plot])
    assert '| a | 12.00 ± 2.00 (3) |' in capsys.readouterr().out
    summary = json.load(open(out))['summary']
    assert summary['b']['accuracy/top1']['mean'] == pytest.approx(13.0)
    assert os.path.getsize(plot) > 0


def test_missing_config_and_clashing_names(tmp_path, load_tool_module):
    tool = load_tool_module('analysis_tools/seed_study.py')
    with pytest.raises(ToolError, match='does not exist'):
        tool.main([str(tmp_path / 'none.py'), '--work-dir', str(tmp_path)])
    for d in ('x', 'y'):
        (tmp_path / d).mkdir()
        (tmp_path / d / 'arm.py').write_text('')
    with pytest.raises(ToolError, match='share a file name'):
        tool.main([
            str(tmp_path / 'x' / 'arm.py'),
            str(tmp_path / 'y' / 'arm.py'), '--work-dir',
            str(tmp_path)
        ])
