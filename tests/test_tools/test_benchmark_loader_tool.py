# Copyright (c) mmssl contributors. All rights reserved.
"""tools/analysis_tools/benchmark_loader.py: tables, JSON, step, errors.

No test asserts a time or a speed.
"""
import json
import subprocess
import sys

import numpy as np
import pytest

from mmssl.engine.runner_utils import (CfgOptionsError, ToolError,
                                       UnknownTypeError)

TOOL = 'analysis_tools/benchmark_loader.py'


@pytest.fixture(scope='module')
def tool(load_tool_module):
    return load_tool_module(TOOL)


@pytest.fixture
def jpeg_mae_config(tiny_mae_config, tmp_path):
    """The tiny MAE config over a folder of 8 JPEGs instead of PNGs."""
    from PIL import Image
    folder = tmp_path / 'jpegs'
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(8):
        pixels = rng.integers(0, 256, (36, 44, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f'img_{i}.jpg', format='JPEG')
    text = open(tiny_mae_config).read()
    path = tmp_path / 'tiny_mae_jpeg.py'
    path.write_text(text.replace(str(tmp_path / 'images'), str(folder)))
    assert repr(str(folder)) in path.read_text()
    return str(path)


def test_tables_step_and_json(tool, jpeg_mae_config, tmp_path, capsys):
    out = tmp_path / 'loader.json'
    result = tool.main([
        jpeg_mae_config, '--workers', '0', '1', '--batches', '2', '--warmup',
        '1', '--repeat', '1', '--with-step', '--step-iters', '1', '--threads',
        '1', '--matmul-size', '64', '--transform-samples', '2', '--out',
        str(out)
    ])
    text = capsys.readouterr().out
    for words in ('workers', 'img/s', 'first batch s', 'x step',
                  'RandomResizedCrop', 'costliest transform', 'training step:',
                  ' limits'):
        assert words in text, words
    payload = json.loads(out.read_text())
    runs = payload['results']['runs']
    assert [r['num_workers'] for r in runs] == [0, 1]
    assert all(r['images'] == 2 * 2 for r in runs)  # batches x batch size
    assert all(r['vs_step'] > 0 for r in runs)
    assert payload['step']['batch_size'] == 2
    assert [s['type'] for s in payload['results']['transforms']['steps']] \
        == ['LoadImageFromFile', 'RandomResizedCrop', 'PackInputs']
    assert payload['args']['iters'] == 2  # --batches sets --iters
    assert result['step']['img_per_s'] > 0


def test_default_workers_include_the_config(tool, jpeg_mae_config):
    from mmssl.engine.runner_utils import load_config
    cfg = load_config(jpeg_mae_config)
    cfg.train_dataloader.num_workers = 4
    assert tool.worker_counts(tool.parse_args(['c.py']), cfg) == [0, 1, 2, 4]
    args = tool.parse_args(['c.py', '--workers', '2', '0', '2'])
    assert tool.worker_counts(args, cfg) == [2, 0]


def test_folder_through_cfg_options(tool, jpeg_mae_config, tmp_path, capsys):
    """Another image folder, given on the command line."""
    from PIL import Image
    other = tmp_path / 'other'
    (other / 'a').mkdir(parents=True)
    for i in range(6):
        Image.new('RGB', (40, 40), (i, 2 * i, 3 * i)).save(
            other / 'a' / f'{i}.JPEG', format='JPEG')
    result = tool.main([
        jpeg_mae_config, '--workers', '0', '--batches', '3', '--warmup', '0',
        '--repeat', '1', '--transform-samples', '0', '--cfg-options',
        f'train_dataloader.dataset.data_root={other}'
    ])
    assert result['num_samples'] == 6
    assert result['runs'][0]['images'] == 3 * 2
    assert 'x step' in capsys.readouterr().out


@pytest.mark.parametrize('argv, words', [
    (['--workers', '0', '-1'], ["'-1' is not a worker count", '>= 0']),
    (['--workers', 'two'], ["'two' is not a worker count"]),
    (['--batches', '0'], ["'0' is not a positive integer"]),
    (['--warmup', '-1'], ['--warmup must be >= 0, got -1']),
])
def test_bad_arguments_are_usage_errors(tool, argv, words, capsys):
    with pytest.raises(SystemExit) as exc:
        tool.parse_args(['cfg.py'] + argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    for word in words:
        assert word in err, err


def test_unknown_config_key(tool, jpeg_mae_config):
    with pytest.raises(CfgOptionsError) as exc:
        tool.main([
            jpeg_mae_config, '--cfg-options',
            'train_dataloader.datset.data_root=/x'
        ])
    msg = str(exc.value)
    assert "'datset'" in msg and "'dataset'" in msg and 'Fix the key' in msg


def test_unknown_type_names_the_key(tool, jpeg_mae_config, tmp_path):
    text = open(jpeg_mae_config).read()
    bad = tmp_path / 'typo.py'
    bad.write_text(text.replace("'RandomResizedCrop'", "'RandomResizedCorp'"))
    with pytest.raises(UnknownTypeError) as exc:
        tool.main([str(bad), '--workers', '0'])
    msg = str(exc.value)
    assert "'RandomResizedCorp'" in msg and 'RandomResizedCrop' in msg


def test_config_without_loader(tool, tmp_path):
    path = tmp_path / 'no_loader.py'
    path.write_text("model = dict(type='x')\n")
    with pytest.raises(ToolError, match='no train_dataloader'):
        tool.main([str(path)])


def test_command_line_error_is_one_line(jpeg_mae_config, tools_dir):
    proc = subprocess.run([
        sys.executable, f'{tools_dir}/{TOOL}', jpeg_mae_config,
        '--cfg-options', 'train_dataloader.num_worker=2'
    ],
                          capture_output=True,
                          text=True)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('error: '), proc.stderr
    assert "'num_worker'" in lines[0] and "'num_workers'" in lines[0]
