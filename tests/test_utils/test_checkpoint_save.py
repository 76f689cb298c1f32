# Copyright (c) mmssl contributors. All rights reserved.
"""Crash-safe checkpoint saving: atomic writes with the umask's permissions,
and ``max_keep_ckpts`` rotation that never leaves no usable checkpoint."""
import glob
import multiprocessing
import os
import os.path as osp
import signal
import stat

import pytest
import torch
from mmengine.config import Config

from mmssl.testing import (tiny_mae_cfg, tiny_pretrain_runner_cfg, train_state,
                           write_random_images)
from mmssl.utils.checkpoint_save import (atomic_save_checkpoint,
                                         install_atomic_save,
                                         remove_stale_temp_files)


def _images(tmp_path):
    data = tmp_path / 'imgs'
    data.mkdir()
    write_random_images(str(data))
    return str(data)


def _cfg(work_dir, data_root, max_epochs, resume=False):
    """A tiny MAE run that keeps one checkpoint (``max_keep_ckpts=1``);
    ``resume=True`` resumes from the work dir's ``last_checkpoint``."""
    cfg = tiny_pretrain_runner_cfg(tiny_mae_cfg(), work_dir, data_root,
                                   max_epochs)
    cfg['default_hooks']['checkpoint']['max_keep_ckpts'] = 1
    cfg['resume'] = resume
    return Config(cfg)


def _last_checkpoint(work_dir):
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        return f.read()


def _temp_files(folder):
    return glob.glob(osp.join(folder, '.*.tmp'))


@pytest.mark.parametrize('umask', [0o022, 0o077])
def test_saved_checkpoint_honours_umask(tmp_path, umask):
    """Like ``torch.save``: 0644 under umask 022, 0600 under 077."""
    old = os.umask(umask)
    try:
        atomic_save_checkpoint({'w': torch.zeros(1)}, str(tmp_path / 'a.pth'))
        torch.save({'w': torch.zeros(1)}, str(tmp_path / 'b.pth'))
    finally:
        os.umask(old)
    mode = stat.S_IMODE(os.stat(tmp_path / 'a.pth').st_mode)
    assert mode == 0o666 & ~umask
    assert mode == stat.S_IMODE(os.stat(tmp_path / 'b.pth').st_mode)


def test_failed_rename_removes_temp_file(tmp_path, monkeypatch):
    path = str(tmp_path / 'epoch_1.pth')
    atomic_save_checkpoint({'w': torch.zeros(3)}, path)

    def fail(src, dst):
        raise OSError('disk full')

    monkeypatch.setattr(os, 'replace', fail)
    with pytest.raises(OSError, match='disk full'):
        atomic_save_checkpoint({'w': torch.ones(3)}, path)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ['epoch_1.pth']
    assert torch.equal(torch.load(path)['w'], torch.zeros(3))


def test_remove_stale_temp_files(tmp_path):
    stale = ['.epoch_3.pth.0a1b2c3d.tmp', '.last_checkpoint.k2_x9qzt.tmp']
    kept = ['epoch_2.pth', '.notes.tmp', 'x.0a1b2c3d.tmp']
    for name in stale + kept:
        (tmp_path / name).write_bytes(b'x')
    removed = remove_stale_temp_files(str(tmp_path))
    assert sorted(osp.basename(p) for p in removed) == sorted(stale)
    assert sorted(os.listdir(tmp_path)) == sorted(kept)


def test_install_is_idempotent():
    from mmengine.hooks import CheckpointHook
    install_atomic_save()
    save = CheckpointHook._save_checkpoint_with_step
    before_train = CheckpointHook.before_train
    install_atomic_save()
    assert CheckpointHook._save_checkpoint_with_step is save
    assert CheckpointHook.before_train is before_train
    orig = CheckpointHook._mmssl_orig_save_checkpoint_with_step
    assert orig.__module__ == 'mmengine.hooks.checkpoint_hook'


def test_max_keep_ckpts_1_keeps_one_and_removes_stale_temp(tmp_path):
    """A normal run keeps exactly the last checkpoint; temporary files a
    killed writer left are removed before training."""
    data = _images(tmp_path)
    work = str(tmp_path / 'work')
    os.makedirs(work)
    stale = osp.join(work, '.epoch_9.pth.0a1b2c3d.tmp')
    with open(stale, 'wb') as f:
        f.write(b'partial')
    train_state(_cfg(work, data, 3))
    assert sorted(glob.glob(osp.join(
        work, '*.pth'))) == [osp.join(work, 'epoch_3.pth')]
    assert _last_checkpoint(work) == osp.join(work, 'epoch_3.pth')
    assert _temp_files(work) == []


@pytest.mark.parametrize('crash_in', ['checkpoint', 'last_checkpoint'])
def test_crash_while_saving_keeps_previous_checkpoint(tmp_path, monkeypatch,
                                                      crash_in):
    """max_keep_ckpts=1, interrupted while writing epoch 2's checkpoint or
    its ``last_checkpoint``: epoch 1 is still there, ``last_checkpoint``
    names it, and no temporary file is left."""
    data = _images(tmp_path)
    work = str(tmp_path / 'work')
    if crash_in == 'checkpoint':
        real_save = torch.save

        def save(obj, f, *args, **kwargs):
            if isinstance(obj, dict) and obj.get('meta', {}).get('epoch') == 2:
                raise KeyboardInterrupt('killed while saving')
            return real_save(obj, f, *args, **kwargs)

        monkeypatch.setattr(torch, 'save', save)
    else:
        real_replace = os.replace
        calls = []

        def replace(src, dst):
            if osp.basename(dst) == 'last_checkpoint':
                calls.append(dst)
                if len(calls) == 2:
                    raise KeyboardInterrupt('killed while saving')
            return real_replace(src, dst)

        monkeypatch.setattr(os, 'replace', replace)
    with pytest.raises(KeyboardInterrupt):
        train_state(_cfg(work, data, 2))
    monkeypatch.undo()
    first = osp.join(work, 'epoch_1.pth')
    assert torch.load(first, weights_only=True)['meta']['epoch'] == 1
    assert _last_checkpoint(work) == first
    assert _temp_files(work) == []


def _train_killed_while_saving(cfg, epoch):
    """Train, and SIGKILL this process half-way through writing the
    checkpoint of ``epoch``."""
    real_save = torch.save

    def save(obj, f, *args, **kwargs):
        if isinstance(obj, dict) and obj.get('meta', {}).get('epoch') == epoch:
            f.write(b'half a checkpoint')
            f.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        return real_save(obj, f, *args, **kwargs)

    torch.save = save
    train_state(cfg)


def test_sigkill_while_saving_then_resume(tmp_path):
    """max_keep_ckpts=1 and the process is killed while writing epoch 2:
    epoch 1 and ``last_checkpoint`` survive, ``--resume`` goes on from
    them (removing the killed writer's temporary file) and ends where an
    uninterrupted run ends."""
    data = _images(tmp_path)
    work = str(tmp_path / 'work')
    proc = multiprocessing.get_context('fork').Process(
        target=_train_killed_while_saving, args=(_cfg(work, data, 2), 2))
    proc.start()
    proc.join(300)
    assert proc.exitcode == -signal.SIGKILL
    first = osp.join(work, 'epoch_1.pth')
    assert torch.load(first, weights_only=True)['meta']['epoch'] == 1
    assert _last_checkpoint(work) == first
    assert not osp.exists(osp.join(work, 'epoch_2.pth'))
    assert len(_temp_files(work)) == 1  # the killed write's

    resumed = train_state(_cfg(work, data, 2, resume=True))
    assert _temp_files(work) == []
    assert sorted(glob.glob(osp.join(
        work, '*.pth'))) == [osp.join(work, 'epoch_2.pth')]
    straight = train_state(_cfg(str(tmp_path / 'straight'), data, 2))
    for k in straight:
        torch.testing.assert_close(resumed[k], straight[k], atol=0, rtol=0)


# ------------------------------------------------- remote and local targets
@pytest.mark.parametrize('filename,kwargs,local', [
    ('work/epoch_1.pth', {}, True),
    ('s3://bucket/epoch_1.pth', {}, False),
    ('http://host/epoch_1.pth', {}, False),
    ('work/epoch_1.pth', dict(backend_args=dict(backend='petrel')), False),
    ('work/epoch_1.pth', dict(file_client_args=dict(backend='petrel')), False),
    ('work/epoch_1.pth', dict(backend_args=dict(backend='local')), True),
    ('work/epoch_1.pth', dict(file_client_args=dict(backend='disk')), True),
])
def test_remote_targets_use_mmengine_saver(tmp_path, monkeypatch, filename,
                                           kwargs, local):
    """URIs and non-local backends (in either argument) go to mmengine's
    own saver, with the arguments they came with; local paths are written
    atomically here."""
    from mmengine.runner import checkpoint as ckpt_mod
    monkeypatch.chdir(tmp_path)
    calls = []

    def mmengine_save(checkpoint,
                      filename,
                      file_client_args=None,
                      backend_args=None):
        calls.append((filename, file_client_args, backend_args))

    # without ``_fallback`` the saver mmengine had before mmssl patched it
    monkeypatch.setattr(
        ckpt_mod, '_mmssl_orig_save_checkpoint', mmengine_save, raising=False)
    atomic_save_checkpoint({'w': torch.ones(1)}, filename, **kwargs)
    if local:
        assert calls == []
        assert torch.equal(torch.load(filename)['w'], torch.ones(1))
    else:
        assert calls == [(filename, kwargs.get('file_client_args'),
                          kwargs.get('backend_args'))]
        assert not osp.exists('work')


def test_remote_target_uses_given_fallback(tmp_path, monkeypatch):
    from mmengine.runner import checkpoint as ckpt_mod
    monkeypatch.setattr(
        ckpt_mod,
        '_mmssl_orig_save_checkpoint',
        lambda *args, **kwargs: pytest.fail('the given saver is not used'),
        raising=False)
    calls = []
    atomic_save_checkpoint({'w': torch.ones(1)},
                           's3://bucket/a.pth',
                           _fallback=lambda *a, **k: calls.append(a[1]))
    assert calls == ['s3://bucket/a.pth']


def test_atomic_write_fsyncs_file_and_folder(tmp_path, monkeypatch):
    """The content is fsynced before the rename and the folder after it,
    so that the rename itself survives a power loss."""
    real_fsync = os.fsync
    synced = []

    def fsync(fd):
        synced.append(stat.S_ISDIR(os.fstat(fd).st_mode))
        real_fsync(fd)

    monkeypatch.setattr(os, 'fsync', fsync)
    atomic_save_checkpoint({'w': torch.ones(1)}, str(tmp_path / 'a.pth'))
    assert synced == [False, True]


# ------------------------------------------------------ max_keep_ckpts
def _hook_and_runner(work_dir, max_keep_ckpts):
    """A ``CheckpointHook`` after ``before_train`` and the parts of a runner
    its ``_save_checkpoint_with_step`` uses."""
    from types import SimpleNamespace

    from mmengine.hooks import CheckpointHook
    from mmengine.logging import MessageHub, MMLogger
    install_atomic_save()
    hub = MessageHub.get_instance(f'ckpt_rotation_{max_keep_ckpts}_'
                                  f'{osp.basename(work_dir)}')
    called = []

    def save_checkpoint(out_dir, filename, *args, **kwargs):
        atomic_save_checkpoint({'meta': {}}, osp.join(out_dir, filename))

    runner = SimpleNamespace(
        work_dir=work_dir,
        message_hub=hub,
        logger=MMLogger.get_current_instance(),
        call_hook=called.append,
        save_checkpoint=save_checkpoint)
    hook = CheckpointHook(interval=1, max_keep_ckpts=max_keep_ckpts)
    hook.before_train(runner)
    return hook, runner, called


def _pths(folder):
    return sorted(
        osp.basename(p) for p in glob.glob(osp.join(folder, '*.pth')))


@pytest.mark.parametrize('max_keep_ckpts,steps,kept', [
    (1, (1, 2, 2), [2]),
    (3, (1, 2, 2), [1, 2]),
    (2, (1, 1, 2), [1, 2]),
])
def test_step_saved_twice_is_kept_once(tmp_path, max_keep_ckpts, steps, kept):
    """``_save_checkpoint`` and ``_save_best_checkpoint`` may both save one
    step: the second save neither counts it again nor removes it."""
    work = str(tmp_path)
    hook, runner, called = _hook_and_runner(work, max_keep_ckpts)
    for step in steps:
        hook._save_checkpoint_with_step(runner, step, meta={})
    assert list(hook.keep_ckpt_ids) == kept
    assert _pths(work) == [f'epoch_{step}.pth' for step in kept]
    assert runner.message_hub.get_info('keep_ckpt_ids') == kept
    assert _last_checkpoint(work) == osp.join(work, f'epoch_{steps[-1]}.pth')
    assert called == ['before_save_checkpoint_all_ranks'] * 3


def test_max_keep_ckpts_0_keeps_every_checkpoint(tmp_path):
    """As in mmengine, ``max_keep_ckpts`` <= 0 keeps all (no rotation)."""
    work = str(tmp_path)
    hook, runner, _ = _hook_and_runner(work, 0)
    for step in (1, 2, 3):
        hook._save_checkpoint_with_step(runner, step, meta={})
    assert _pths(work) == ['epoch_1.pth', 'epoch_2.pth', 'epoch_3.pth']
    assert 'keep_ckpt_ids' not in runner.message_hub.runtime_info
