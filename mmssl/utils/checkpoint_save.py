# Copyright (c) mmssl contributors. All rights reserved.
"""Atomic checkpoint writing for mmengine 0.10.x.

mmengine writes checkpoints in place, so a crash while saving leaves a
truncated file. :func:`atomic_save_checkpoint` writes to a temporary file in
the same folder, fsyncs it and renames it over the target, so the previous
checkpoint stays usable until the new one is complete.
:func:`install_atomic_save` makes mmengine's runner use it.
"""
import io
import os
import os.path as osp
import tempfile
from typing import Callable, Optional

import torch

__all__ = ['atomic_save_checkpoint', 'install_atomic_save']


def _is_local(filename: str) -> bool:
    return '://' not in str(filename)


def atomic_save_checkpoint(checkpoint: dict,
                           filename: str,
                           *args,
                           _fallback: Optional[Callable] = None,
                           **kwargs) -> None:
    """Save ``checkpoint`` to ``filename`` so a crash never truncates it.

    Local paths are written to a temporary file in the target's folder,
    flushed to disk and renamed over the target (``os.replace`` is atomic on
    POSIX and Windows). Remote URIs fall back to mmengine's own saver.
    """
    if not _is_local(filename):
        if _fallback is None:
            from mmengine.runner import checkpoint as ckpt_mod
            _fallback = ckpt_mod._mmssl_orig_save_checkpoint
        return _fallback(checkpoint, filename, *args, **kwargs)
    folder = osp.dirname(osp.abspath(filename))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix='.' + osp.basename(filename) + '.', suffix='.tmp', dir=folder)
    try:
        with os.fdopen(fd, 'wb') as f:
            buf = io.BytesIO()
            torch.save(checkpoint, buf)
            f.write(buf.getvalue())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, filename)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise


def install_atomic_save() -> None:
    """Make mmengine's ``save_checkpoint`` (and the runner's) atomic."""
    from mmengine.runner import checkpoint as ckpt_mod
    from mmengine.runner import runner as runner_mod

    if not hasattr(ckpt_mod, '_mmssl_orig_save_checkpoint'):
        ckpt_mod._mmssl_orig_save_checkpoint = ckpt_mod.save_checkpoint
    orig = ckpt_mod._mmssl_orig_save_checkpoint

    def save_checkpoint(checkpoint, filename, *args, **kwargs):
        return atomic_save_checkpoint(
            checkpoint, filename, *args, _fallback=orig, **kwargs)

    save_checkpoint.__doc__ = atomic_save_checkpoint.__doc__
    ckpt_mod.save_checkpoint = save_checkpoint
    runner_mod.save_checkpoint = save_checkpoint
