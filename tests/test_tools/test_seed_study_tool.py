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
    with pytest.raises(ToolError, match='share a name'):
        tool.main([
            str(tmp_path / 'x' / 'arm.py'),
            str(tmp_path / 'y' / 'arm.py'), '--work-dir',
            str(tmp_path)
        ])


def test_named_arms_get_their_own_options_per_seed(tmp_path, capsys,
                                                   load_tool_module):
    """One config as two arms: each run gets its arm's options with the
    seed and work dir filled in; the table can show every seed."""
    tool = load_tool_module('analysis_tools/seed_study.py')
    cfg = tmp_path / 'ft.py'
    cfg.write_text('')
    root = str(tmp_path / 'runs')
    calls = []

    def fake_train(config, work_dir, seed, threads, options):
        calls.append((work_dir, seed, options))
        _run(root, os.path.basename(os.path.dirname(work_dir)), seed,
             10. + seed)
        return 0.

    tool.train_one = fake_train
    tool.main([
        str(cfg),
        str(cfg), '--names', 'from-pre', 'scratch', '--seeds', '0', '1',
        '--work-dir', root, '--cfg-options', 'a=1', '--arm-options',
        'm.ckpt={work_dir}/pre/seed{seed}/iter_60.pth', '-', '--per-seed'
    ])
    by_run = {
        (os.path.basename(os.path.dirname(w)), s): o
        for w, s, o in calls
    }
    assert by_run[('from-pre',
                   1)] == ['a=1', f'm.ckpt={root}/pre/seed1/iter_60.pth']
    assert by_run[('scratch', 0)] == ['a=1']
    assert '| scratch | 10.50 ± 0.71 (2): 10.00, 11.00 |' in \
        capsys.readouterr().out
    with pytest.raises(SystemExit):  # one option string an arm
        tool.main([str(cfg), '--work-dir', root, '--arm-options', '-', '-'])
    with pytest.raises(SystemExit):  # not KEY=VALUE: refused before training
        tool.main([str(cfg), '--work-dir', root, '--arm-options', 'ckpt'])
