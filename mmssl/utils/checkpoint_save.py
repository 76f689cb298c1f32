# Copyright (c) mmssl contributors. All rights reserved.
"""Crash-safe checkpoint writing for mmengine 0.10.x.

mmengine writes checkpoints in place, so a crash while saving leaves a
truncated file; and with ``max_keep_ckpts`` its ``CheckpointHook`` deletes
the oldest checkpoint *before* it writes the new one, so with
``max_keep_ckpts=1`` a crash while saving leaves no usable checkpoint at
all. This module fixes both:

- :func:`atomic_save_checkpoint` writes to a temporary file in the target's
  folder (``.<name>.<8 hex digits>.tmp``), fsyncs it and renames it over the
  target, so the previous version stays usable until the new one is
  complete. The file gets the permissions ``torch.save`` would give it
  (``0o666`` less the umask). A failed write removes its temporary file.
- :func:`install_atomic_save` makes mmengine's ``save_checkpoint`` (and the
  runner's) use it, and patches :class:`mmengine.hooks.CheckpointHook` so
  that it deletes an outdated checkpoint only after the new checkpoint and
  the ``last_checkpoint`` file are in place, writes ``last_checkpoint``
  atomically, and removes the temporary files of a killed writer
  (:func:`remove_stale_temp_files`) before training. The patch is made on
  the class, so every config that uses ``CheckpointHook`` (in any scope)
  gets it.

The patched hook also calls the custom hook method
``before_save_checkpoint_all_ranks(runner)`` on *every* rank just before it
saves (``Runner.save_checkpoint`` and its ``before_save_checkpoint`` hooks
run on rank 0 only), so that a hook can gather per-rank state into the
checkpoint (see :class:`mmssl.engine.hooks.RandomStateHook`).
"""
import contextlib
import os
import os.path as osp
import re
import secrets
from typing import IO, Callable, List, Optional

import torch

__all__ = [
    'atomic_save_checkpoint', 'atomic_write', 'remove_stale_temp_files',
    'install_atomic_save'
]

#: names of the temporary files written by :func:`atomic_write`
TEMP_FILE_PATTERN = re.compile(r'^\.(?P<target>.+)\.[0-9a-z_]{8}\.tmp$')


def _is_local(filename: str,
              file_client_args: Optional[dict] = None,
              backend_args: Optional[dict] = None) -> bool:
    """Whether ``filename`` is written to the local file system."""
    if '://' in str(filename):
        return False
    args = backend_args or file_client_args or {}
    return args.get('backend', 'local') in ('local', 'disk')


def _fsync_dir(folder: str) -> None:
    """Make a rename in ``folder`` durable (POSIX; a no-op elsewhere)."""
    if os.name != 'posix':
        return
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(filename: str, write: Callable[[IO[bytes]], None]) -> None:
    """Write the local file ``filename`` through a temporary file.

    ``write(f)`` writes the content to the binary file object ``f`` of a
    new temporary file ``.<name>.<8 hex digits>.tmp`` in the target's
    folder; the file is then flushed, fsynced and renamed over ``filename``
    (``os.replace`` is atomic on POSIX and Windows). The temporary file is
    created with mode ``0o666`` so that the umask applies, as with
    ``open()``. If anything fails (or the process is interrupted) the
    temporary file is removed and ``filename`` is left as it was.

    Args:
        filename (str): the target path.
        write (Callable): writes the content to a binary file object.
    """
    filename = osp.abspath(filename)
    folder, name = osp.split(filename)
    os.makedirs(folder, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, 'O_BINARY', 0)
    while True:
        tmp = osp.join(folder, f'.{name}.{secrets.token_hex(4)}.tmp')
        try:
            fd = os.open(tmp, flags, 0o666)
        except FileExistsError:
            continue
        break
    try:
        with os.fdopen(fd, 'wb') as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, filename)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    _fsync_dir(folder)


def atomic_save_checkpoint(checkpoint: dict,
                           filename: str,
                           file_client_args: Optional[dict] = None,
                           backend_args: Optional[dict] = None,
                           _fallback: Optional[Callable] = None) -> None:
    """Save ``checkpoint`` to ``filename`` so a crash never truncates it.

    Local paths are written with :func:`atomic_write` (a temporary file in
    the target's folder, renamed over the target once complete; the umask
    applies to its permissions as with ``torch.save``). Remote URIs and
    non-local ``backend_args`` fall back to mmengine's own saver.

    Args:
        checkpoint (dict): the checkpoint.
        filename (str): where to save it.
        file_client_args (dict, optional): as mmengine's ``save_checkpoint``.
        backend_args (dict, optional): as mmengine's ``save_checkpoint``.
    """
    if not _is_local(filename, file_client_args, backend_args):
        if _fallback is None:
            from mmengine.runner import checkpoint as ckpt_mod
            _fallback = getattr(ckpt_mod, '_mmssl_orig_save_checkpoint',
                                ckpt_mod.save_checkpoint)
        return _fallback(
            checkpoint,
            filename,
            file_client_args=file_client_args,
            backend_args=backend_args)
    atomic_write(filename, lambda f: torch.save(checkpoint, f))


def remove_stale_temp_files(folder: str) -> List[str]:
    """Remove the temporary files that a killed :func:`atomic_write` left
    in ``folder`` (``.<name>.<8 hex digits>.tmp``).

    Only call it when no other process is writing into ``folder``.

    Returns:
        list[str]: the removed paths.
    """
    removed = []
    if not osp.isdir(folder):
        return removed
    for name in sorted(os.listdir(folder)):
        path = osp.join(folder, name)
        if TEMP_FILE_PATTERN.match(name) and osp.isfile(path):
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
                removed.append(path)
    return removed


def _save_checkpoint_with_step(self, runner, step, meta) -> None:
    """mmengine 0.10's ``CheckpointHook._save_checkpoint_with_step``, made
    crash safe.

    mmengine removes the outdated checkpoint (``max_keep_ckpts``) before it
    writes the new one. Here the outdated checkpoint is removed only after
    the new checkpoint and ``last_checkpoint`` are written, and
    ``last_checkpoint`` is written atomically, so that a crash at any point
    leaves a ``last_checkpoint`` that names a complete checkpoint. Hooks
    with a ``before_save_checkpoint_all_ranks(runner)`` method have it
    called on every rank first.
    """
    from mmengine.dist import is_main_process

    runner.call_hook('before_save_checkpoint_all_ranks')

    outdated = None
    if self.max_keep_ckpts > 0:
        # _save_checkpoint and _save_best_checkpoint may both save one step
        if not (len(self.keep_ckpt_ids) > 0
                and self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                outdated = self.keep_ckpt_ids.popleft()
            self.keep_ckpt_ids.append(step)
            # the new checkpoint records the ids it keeps (not the outdated)
            runner.message_hub.update_info('keep_ckpt_ids',
                                           list(self.keep_ckpt_ids))

    ckpt_filename = self.filename_tmpl.format(step)
    self.last_ckpt = self.file_backend.join_path(self.out_dir, ckpt_filename)
    runner.message_hub.update_info('last_ckpt', self.last_ckpt)

    runner.save_checkpoint(
        self.out_dir,
        ckpt_filename,
        self.file_client_args,
        save_optimizer=self.save_optimizer,
        save_param_scheduler=self.save_param_scheduler,
        meta=meta,
        by_epoch=self.by_epoch,
        backend_args=self.backend_args,
        **self.args)

    # Model parallel-like training should involve pulling sharded states
    # from all ranks, but skip the following procedure.
    if not is_main_process():
        return

    last_ckpt = str(self.last_ckpt)
    atomic_write(
        osp.join(runner.work_dir, 'last_checkpoint'),
        lambda f: f.write(last_ckpt.encode('utf-8')))

    if outdated is not None:
        path = self.file_backend.join_path(self.out_dir,
                                           self.filename_tmpl.format(outdated))
        if path != self.last_ckpt:
            if self.file_backend.isfile(path):
                self.file_backend.remove(path)
            elif self.file_backend.isdir(path):
                # checkpoints saved by deepspeed are directories
                self.file_backend.rmtree(path)


def _checkpoint_hook_before_train(self, runner) -> None:
    """``CheckpointHook.before_train``, then remove the temporary files that
    a killed checkpoint writer left in the checkpoint folder and the work
    dir (main process only)."""
    from mmengine.dist import is_main_process
    from mmengine.hooks import CheckpointHook
    from mmengine.logging import print_log

    CheckpointHook._mmssl_orig_before_train(self, runner)
    if not is_main_process():
        return
    folders = {osp.abspath(runner.work_dir)}
    if _is_local(str(self.out_dir)):
        folders.add(osp.abspath(str(self.out_dir)))
    for folder in sorted(folders):
        for path in remove_stale_temp_files(folder):
            print_log(
                f'Removed {path}, left by a checkpoint write that did not '
                'finish',
                logger='current')


def _patch_checkpoint_hook() -> None:
    """Patch :class:`mmengine.hooks.CheckpointHook` (idempotent)."""
    from mmengine.hooks import CheckpointHook

    if getattr(CheckpointHook, '_mmssl_patched', False):
        return
    if not hasattr(CheckpointHook, '_save_checkpoint_with_step'):
        return  # another mmengine layout: keep its own behaviour
    CheckpointHook._mmssl_orig_save_checkpoint_with_step = \
        CheckpointHook._save_checkpoint_with_step
    CheckpointHook._mmssl_orig_before_train = CheckpointHook.before_train
    CheckpointHook._save_checkpoint_with_step = _save_checkpoint_with_step
    CheckpointHook.before_train = _checkpoint_hook_before_train
    CheckpointHook._mmssl_patched = True


def install_atomic_save() -> None:
    """Make mmengine's checkpoint saving crash safe (idempotent).

    mmengine's ``save_checkpoint`` (and the runner's reference to it)
    becomes :func:`atomic_save_checkpoint`, and ``CheckpointHook`` removes
    outdated checkpoints only after the new one is written (see the module
    docstring).
    """
    from mmengine.runner import checkpoint as ckpt_mod
    from mmengine.runner import runner as runner_mod

    if not hasattr(ckpt_mod, '_mmssl_orig_save_checkpoint'):
        ckpt_mod._mmssl_orig_save_checkpoint = ckpt_mod.save_checkpoint
    orig = ckpt_mod._mmssl_orig_save_checkpoint

    def save_checkpoint(checkpoint,
                        filename,
                        file_client_args=None,
                        backend_args=None):
        return atomic_save_checkpoint(
            checkpoint,
            filename,
            file_client_args=file_client_args,
            backend_args=backend_args,
            _fallback=orig)

    save_checkpoint.__doc__ = atomic_save_checkpoint.__doc__
    ckpt_mod.save_checkpoint = save_checkpoint
    runner_mod.save_checkpoint = save_checkpoint
    _patch_checkpoint_hook()
