# Copyright (c) mmssl contributors. All rights reserved.
"""Safe and atomic checkpoint I/O for mmengine 0.10.x on torch >= 2.6.

Two problems are fixed here, both inside mmssl and without switching any
safety check off:

* **Loading.** torch >= 2.6 unpickles checkpoints weights-only by default.
  mmengine 0.10.7 calls ``torch.load`` without the flag, and its checkpoints
  hold a few non-tensor objects (the message hub's ``HistoryBuffer`` and the
  numpy arrays inside it), so ``--resume`` fails with ``Unsupported global``.
  mmssl allow-lists exactly those classes with
  :func:`torch.serialization.add_safe_globals` and replaces mmengine's local
  loader by one that always loads with ``weights_only=True``. A file that
  would need any other global (e.g. one whose pickle calls ``os.system``) is
  refused with :class:`UnsafeCheckpointError`, naming the file and the global.
  One more wrinkle: a ``HistoryBuffer`` pickles its statistics methods as
  ``getattr(HistoryBuffer, 'min')``, and ``getattr`` cannot be allowed in
  general. mmssl makes ``HistoryBuffer`` pickle without them (they are class
  attributes anyway), and reads checkpoints written by plain mmengine with a
  restricted unpickler that accepts torch's weights-only globals plus a
  ``getattr`` limited to exactly those four ``HistoryBuffer`` methods.
* **Saving.** mmengine writes checkpoints in place, so a crash while saving
  leaves a truncated file. :func:`atomic_save_checkpoint` writes to a
  temporary file in the same folder, fsyncs it and renames it over the target,
  so the previous checkpoint stays usable until the new one is complete.
"""
import os.path as osp
import pickle
import re
from typing import Any, List

import numpy as np
import torch

from .checkpoint_save import atomic_save_checkpoint, install_atomic_save

__all__ = [
    'UnsafeCheckpointError', 'CheckpointFileError', 'safe_globals', 'safe_torch_load',
    'atomic_save_checkpoint', 'patch_mmengine_checkpoint_io'
]

_PATCHED = False


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint needs a pickled global outside mmssl's allow-list."""


class CheckpointFileError(ValueError):
    """The file is not a checkpoint at all, or a truncated / damaged one."""


def safe_globals() -> List[Any]:
    """Classes and functions an mmengine/mmssl checkpoint may hold.

    Tensors, containers and plain Python values are always allowed by torch's
    weights-only unpickler; this list adds only what mmengine's runner writes
    on top of them: the message hub's ``HistoryBuffer`` and the numpy arrays,
    dtypes and scalars stored in it.
    """
    from mmengine.logging.history_buffer import HistoryBuffer
    allowed: List[Any] = [HistoryBuffer, np.ndarray, np.dtype]
    # numpy's array reconstructor lives in numpy.core (numpy 1.x) or
    # numpy._core (numpy 2.x); pickles name the one they were written with.
    for mod_name in ('numpy.core.multiarray', 'numpy._core.multiarray'):
        try:
            mod = __import__(mod_name, fromlist=['_reconstruct'])
            allowed += [mod._reconstruct, mod.scalar]
        except (ImportError, AttributeError):
            pass
    # numpy >= 1.25 pickles dtypes as instances of numpy.dtypes.*DType.
    dtypes_mod = getattr(np, 'dtypes', None)
    if dtypes_mod is not None:
        for name in dir(dtypes_mod):
            obj = getattr(dtypes_mod, name)
            if isinstance(obj, type) and name.endswith('DType'):
                allowed.append(obj)
    for scalar in (np.float64, np.float32, np.float16, np.int64, np.int32,
                   np.int16, np.int8, np.uint8, np.bool_):
        allowed.append(scalar)
    return allowed


_GLOBAL_RE = re.compile(
    r'(?:Unsupported global: GLOBAL|unsupported GLOBAL) ([\w\.]+)')


_HISTORY_METHODS = ('min', 'max', 'current', 'mean')


def _restricted_pickle_module():
    """A pickle module whose Unpickler resolves only allow-listed globals."""
    import types

    from mmengine.logging.history_buffer import HistoryBuffer
    from torch import _weights_only_unpickler as wou

    allowed = dict(wou._get_allowed_globals())
    allowed.update(wou._get_user_allowed_globals())

    def limited_getattr(obj, name):
        if obj is HistoryBuffer and name in _HISTORY_METHODS:
            return getattr(obj, name)
        raise UnsafeCheckpointError(
            f'getattr({obj!r}, {name!r}) is not allowed in a checkpoint')

    class Unpickler(pickle.Unpickler):

        def find_class(self, module, name):
            key = f'{module}.{name}'
            if key in ('builtins.getattr', '__builtin__.getattr'):
                return limited_getattr
            if key in allowed:
                return allowed[key]
            raise pickle.UnpicklingError(
                f'Unsupported global: GLOBAL {key} was not an allowed global')

    mod = types.ModuleType('mmssl_restricted_pickle')
    mod.Unpickler = Unpickler
    mod.load = pickle.load
    mod.__name__ = 'mmssl_restricted_pickle'
    return mod


def safe_torch_load(filename: str, map_location: Any = None) -> Any:
    """``torch.load`` with ``weights_only=True`` and a clear refusal.

    Args:
        filename (str): path of the checkpoint file.
        map_location: as for :func:`torch.load`.

    Raises:
        FileNotFoundError: the file does not exist.
        UnsafeCheckpointError: the pickle names a global outside the
            allow-list (unpickling it could run code).
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint file {filename!r} does not exist')
    try:
        return torch.load(
            filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        match = _GLOBAL_RE.search(str(err))
        what = match.group(1) if match else 'an object type'
        if what in ('getattr', 'builtins.getattr', '__builtin__.getattr'):
            # a checkpoint written by plain mmengine (HistoryBuffer methods)
            try:
                return torch.load(
                    filename,
                    map_location=map_location,
                    weights_only=False,
                    pickle_module=_restricted_pickle_module())
            except (pickle.UnpicklingError, UnsafeCheckpointError) as err2:
                match = _GLOBAL_RE.search(str(err2))
                what = match.group(1) if match else str(err2)
        raise UnsafeCheckpointError(
            f'Refusing to load checkpoint {filename!r}: its pickle refers to '
            f'{what!r}, which is not on mmssl\'s allow-list of safe types '
            '(tensors, plain Python values, numpy arrays and mmengine log '
            'buffers). Unpickling it could run arbitrary code. If you trust '
            'where this file comes from, load it once with '
            'torch.load(path, weights_only=False), keep only its '
            '"state_dict" and save that; or allow the type with '
            'torch.serialization.add_safe_globals([...]).') from err


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
    host API (``Runner.resume``, ``load_from``, ``init_detector``...) that
    goes through mmengine's ``CheckpointLoader`` gets the safe loader.
    """
    global _PATCHED
    if _PATCHED:
        return
    from mmengine.runner import checkpoint as ckpt_mod
    torch.serialization.add_safe_globals(safe_globals())
    _make_history_buffer_picklable()

    def load_from_local(filename, map_location):
        return safe_torch_load(filename, map_location)

    ckpt_mod.CheckpointLoader.register_scheme(
        prefixes='', force=True)(load_from_local)

    install_atomic_save()
    _PATCHED = True
