# Copyright (c) mmssl contributors. All rights reserved.
"""tools/dist_train.sh (torchrun, 2 gloo processes) and the Slurm scripts."""
import os
import os.path as osp
import socket
import subprocess
import sys

import pytest
import torch

from mmssl.utils import safe_torch_load


def _free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


@pytest.mark.skipif(
    torch.cuda.is_available(), reason='checks the CPU (gloo) fallback')
def test_dist_train_two_gloo_processes(tiny_mae_config, tools_dir, tmp_path):
    work_dir = tmp_path / 'work'
    env = dict(
        os.environ,
        PYTHON=sys.executable,
        PORT=str(_free_port()),
        OMP_NUM_THREADS='1')
    proc = subprocess.run([
        'bash', f'{tools_dir}/dist_train.sh', tiny_mae_config, '2',
        '--work-dir',
        str(work_dir)
    ],
                          capture_output=True,
                          text=True,
                          env=env,
                          timeout=240)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    # the config asks for nccl; both ranks switch to gloo and say so
    assert log.count("using the 'gloo' distributed backend") == 2
    assert 'Distributed training: True' in log
    # 8 images, 2 processes x batch 2: 2 iterations per epoch (4 if alone)
    assert 'Epoch(train) [1][2/2]' in log
    assert '[1][3/' not in log
    ckpt = safe_torch_load(str(work_dir / 'epoch_1.pth'))
    assert ckpt['meta']['epoch'] == 1
    assert any(k.startswith('backbone.layers.1.') for k in ckpt['state_dict'])


@pytest.mark.parametrize('script,args,expected', [
    ('slurm_train.sh', ['part', 'job', 'cfg.py', 'wdir', '--amp'],
     ['train.py cfg.py --work-dir=wdir --launcher=slurm --amp']),
    ('slurm_train.sh', ['part', 'job', 'cfg.py', '--amp'
                        ], ['train.py cfg.py --launcher=slurm --amp']),
    ('slurm_test.sh', ['part', 'job', 'cfg.py', 'c.pth', '--out', 'r.pkl'],
     ['test.py cfg.py c.pth --launcher=slurm --out r.pkl']),
])
def test_slurm_scripts_compose_srun(tools_dir, tmp_path, script, args,
                                    expected):
    fake = tmp_path / 'srun'
    fake.write_text('#!/usr/bin/env bash\necho "srun $*"\n')
    fake.chmod(0o755)
    env = dict(
        os.environ,
        PATH=f'{tmp_path}:{os.environ["PATH"]}',
        GPUS='4',
        GPUS_PER_NODE='0',
        PYTHON='mypython')
    proc = subprocess.run(
        ['bash', osp.join(tools_dir, script)] + args,
        capture_output=True,
        text=True,
        env=env,
        timeout=30)
    assert proc.returncode == 0, proc.stderr
    line = proc.stdout.strip()
    assert line.startswith('srun -p part --job-name=job --ntasks=4 '
                           '--ntasks-per-node=4 --cpus-per-task=5')
    assert '--gres' not in line  # CPU-only nodes
    assert 'mypython -u ' + tools_dir in line
    for part in expected:
        assert part in line


def test_launch_scripts_print_usage(tools_dir):
    for script in ('dist_train.sh', 'dist_test.sh', 'slurm_train.sh',
                   'slurm_test.sh'):
        proc = subprocess.run(['bash', osp.join(tools_dir, script)],
                              capture_output=True,
                              text=True,
                              timeout=30)
        assert proc.returncode == 2 and 'usage:' in proc.stderr, script
