# Copyright (c) mmssl contributors. All rights reserved.
"""Exact resume with 2 processes (gloo on CPU, DDP), each with a random
stream of its own (``randomness.diff_rank_seed=True``, as in the shipped
configs): every run is a fresh launch, as with ``tools/dist_train.sh``."""
import glob
import os.path as osp

import torch

from mmssl.testing import (assert_resume_equals_straight, tiny_mae_cfg,
                           tiny_pretrain_runner_cfg, train_state,
                           write_random_images)


def _cfg(work_dir, data_root, max_epochs, resume_from=None):
    cfg = tiny_pretrain_runner_cfg(
        tiny_mae_cfg(),
        work_dir,
        data_root,
        max_epochs,
        resume_from=resume_from)
    cfg['randomness'] = dict(seed=7, diff_rank_seed=True)
    return cfg


def _images(tmp_path):
    data = tmp_path / 'imgs'
    data.mkdir()
    write_random_images(str(data))
    return str(data)


def test_two_process_resume_equals_straight(tmp_path):
    """2 processes, 2 epochs + resume to 4 == 4 straight, bit-exact: each
    rank restores its own generators (MAE's masks differ per rank)."""
    data = _images(tmp_path)
    _, _, raw = assert_resume_equals_straight(
        lambda work_dir, epochs, ckpt: _cfg(work_dir, data, epochs, ckpt),
        str(tmp_path),
        atol=0,
        world_size=2)
    saved = raw['random_state']
    assert saved['world_size'] == 2
    # one entry per rank, and the ranks' streams do differ
    assert not torch.equal(saved['ranks'][0]['torch'],
                           saved['ranks'][1]['torch'])


def test_resume_with_fewer_processes_warns(tmp_path):
    """A 2-process checkpoint resumed by 1 process: the log says the resume
    is not bit-exact and what is restored; training goes on."""
    data = _images(tmp_path)
    train_state(_cfg(str(tmp_path / 'a'), data, 1), world_size=2)
    ckpt = osp.join(str(tmp_path), 'a', 'epoch_1.pth')
    train_state(_cfg(str(tmp_path / 'b'), data, 2, resume_from=ckpt))
    assert osp.isfile(osp.join(str(tmp_path), 'b', 'epoch_2.pth'))
    logs = glob.glob(osp.join(str(tmp_path), 'b', '*', '*.log'))
    text = ''.join(open(path).read() for path in logs)
    assert 'the checkpoint was saved by 2 process(es), this run has 1: ' \
        'the resume is not bit-exact' in text, text
    assert 'Ranks below 1 restore the random state saved by the same ' \
        'rank' in text
