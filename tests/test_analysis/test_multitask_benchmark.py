# Copyright (c) mmssl contributors. All rights reserved.
"""The multi-task inference benchmark: rows, placements, the tool's files.

No test asserts a speed: timings on a shared machine are not reproducible.
"""
import importlib.util
import json
import os.path as osp

import pytest
from mmengine.config import Config

from mmssl.analysis import (benchmark_multitask, make_subtuning_tasks,
                            task_block_sets)
from mmssl.analysis.multitask_benchmark import (ARMS, format_markdown,
                                                input_size)

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
TINY = osp.join(
    ROOT, 'configs/subtuning/'
    'subtuning_resnet18-tiny-simclr_1xb64-coslr-10e_embedded.py')
TOOL = osp.join(ROOT, 'tools/analysis_tools/benchmark_multitask.py')
FAST = dict(batch_size=2, iters=1, warmup=1, repeat=2, threads=1)


def _tool():
    spec = importlib.util.spec_from_file_location('benchmark_multitask_tool',
                                                  TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_block_placements():
    cfg = Config.fromfile(TINY)
    assert input_size(cfg) == 64
    backbone = make_subtuning_tasks(cfg, [[]])[0].backbone
    assert task_block_sets(backbone, 'layer4.1', 3) == [['layer4.1']] * 3
    assert task_block_sets(backbone, 'layer2.0,layer4',
                           2) == [['layer2.0', 'layer4']] * 2
    drawn = task_block_sets(backbone, 'random:2', 4, seed=1)
    assert len(drawn) == 4 and all(len(s) == 2 for s in drawn)
    assert drawn == task_block_sets(backbone, 'random:2', 4, seed=1)
    assert len({tuple(s) for s in drawn}) > 1
    with pytest.raises(ValueError, match='layer5.0'):
        task_block_sets(backbone, 'layer5.0', 1)


def test_benchmark_rows():
    rows = benchmark_multitask(
        TINY, task_counts=(1, 2), blocks=('layer4.1', 'layer2.0'), **FAST)
    assert [(r['blocks'], r['tasks'], r['arm'])
            for r in rows] == [(b, t, a) for b in ('layer4.1', 'layer2.0')
                               for t in (1, 2) for a in ARMS]
    for row in rows:
        for key in ('latency_ms', 'param_mib', 'param_mib_held',
                    'peak_mem_mib', 'speedup'):
            assert row[key] > 0, key
        assert row['forward_mem_mib'] >= 0
        assert len(row['latency_ms_runs']) == 2
        assert row['max_abs_diff'] <= 1e-6
        assert row['img_size'] == 64 and row['threads'] == 1
        assert len(row['task_blocks']) == row['tasks']
    by = {(r['blocks'], r['tasks'], r['arm']): r for r in rows}
    assert by['layer4.1', 1, 'separate']['speedup'] == 1.
    assert by['layer4.1', 2, 'multitask']['branch_points'] == [8, 8]
    assert by['layer2.0', 2, 'multitask']['branch_points'] == [3, 3]
    # T full models hold more weights than the trunk once + 2 branches
    for blocks in ('layer4.1', 'layer2.0'):
        separate = by[blocks, 2, 'separate']['param_mib']
        assert by[blocks, 2, 'multitask']['param_mib'] < separate
        assert by[blocks, 1, 'multitask']['param_mib'] == pytest.approx(
            by[blocks, 1, 'separate']['param_mib'])
    table = format_markdown(rows)
    assert table.count('\n') == len(rows) + 1
    assert table.startswith('| blocks | T | arm | latency ms')


def test_tool_writes_json_and_png(tmp_path, capsys):
    out, plot = str(tmp_path / 'bench.json'), str(tmp_path / 'bench.png')
    rows = _tool().main([
        TINY, '--tasks', '1', '2', '--blocks', 'random', '--batch-size', '2',
        '--iters', '1', '--warmup', '1', '--repeat', '1', '--threads', '1',
        '--arms', 'separate', 'multitask_batched', '--out', out, '--plot', plot
    ])
    assert len(rows) == 4
    text = capsys.readouterr().out
    assert '| random | 2 | multitask_batched |' in text
    with open(out) as f:
        payload = json.load(f)
    assert set(payload) == {'machine', 'argv', 'args', 'results'}
    assert payload['machine']['torch_threads'] == 1
    assert [r['arm'] for r in payload['results']
            ] == ['separate', 'multitask_batched'] * 2
    with open(plot, 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'


def test_tool_refuses_a_plain_classifier(tmp_path, capsys):
    cfg = Config.fromfile(TINY)
    cfg.model.type = 'ImageClassifier'
    del cfg.model.trainable_blocks
    path = str(tmp_path / 'plain.py')
    cfg.dump(path)
    with pytest.raises(SystemExit) as info:
        from mmssl.engine.tool_errors import run_tool
        run_tool(_tool().main, [path, '--tasks', '1'])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "model.type='ImageClassifier' is no SubTuningClassifier" in err
