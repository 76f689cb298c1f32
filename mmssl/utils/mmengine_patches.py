# Copyright (c) mmssl contributors. All rights reserved.
"""What importing mmssl changes in mmengine's checkpoint I/O.

:func:`patch_mmengine_checkpoint_io` (called by ``import mmssl``) makes every
checkpoint mmengine reads go through :func:`mmssl.utils.safe_torch_load`
(weights-only, for every URL scheme) and every checkpoint it writes go
through :func:`mmssl.utils.atomic_save_checkpoint` with crash-safe rotation.
"""
import torch

from .checkpoint import safe_globals
from .checkpoint_save import install_atomic_save
from .checkpoint_schemes import install_safe_loaders

__all__ = ['patch_mmengine_checkpoint_io']

_PATCHED = False


def _make_history_buffer_picklable() -> None:
    """Pickle ``HistoryBuffer`` without its (class-level) method table."""
    from mmengine.logging.history_buffer import HistoryBuffer
    if getattr(HistoryBuffer, '_mmssl_state_patched', False):
        return

    def __getstate__(self):
        state = dict(self.__dict__)
        state.pop('_statistics_methods', None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._set_default_statistics()

    HistoryBuffer.__getstate__ = __getstate__
    HistoryBuffer.__setstate__ = __setstate__
    HistoryBuffer._mmssl_state_patched = True


def patch_mmengine_checkpoint_io() -> None:
    """Make mmengine load checkpoints weights-only and save them atomically.

    Idempotent. Called when ``mmssl`` is imported, so every tool, hook and
    host API (``Runner.resume``, ``load_from``, ``init_cfg=dict(type=
    'Pretrained')``, ``init_detector``...) that goes through mmengine's
    ``CheckpointLoader``, for any scheme, gets the safe loader.
    """
    global _PATCHED
    if _PATCHED:
        return
    torch.serialization.add_safe_globals(safe_globals())
    _make_history_buffer_picklable()
    install_safe_loaders()
    install_atomic_save()
    _PATCHED = True
