# Copyright (c) mmssl contributors. All rights reserved.
"""Safe checkpoint loading for mmengine 0.10.x on torch >= 2.6.

Every checkpoint mmssl reads, whatever its format or where it comes from,
is unpickled by torch's weights-only unpickler, and nothing else:

* **One loader for every scheme.** mmengine 0.10.7 calls ``torch.load``
  without ``weights_only`` (local files, ``pavi://``, ``s3://``) or through
  ``torch.hub`` with ``weights_only=False`` (``http(s)://``,
  ``torchvision://``, ``open-mmlab://``, ``mmcls://``). mmssl re-registers
  every scheme of mmengine's ``CheckpointLoader``: the bytes are fetched and
  cached as mmengine does (same cache folder, same ``open-mmlab://`` name
  map, same ``mmcls://`` key processing), then loaded by
  :func:`safe_torch_load`. A scheme mmssl does not know is refused.
* **Weights-only, for every pickle of the file.** :func:`safe_torch_load`
  calls ``torch.load(..., weights_only=True)`` (explicitly, so the
  ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` environment variable cannot turn it
  off). In the legacy (non-zip) format torch then reads the magic-number,
  protocol and sys-info pickles with the same restricted unpickler as the
  data, so there is no second, less strict attempt.
* **What mmengine checkpoints hold.** The message hub's ``HistoryBuffer``
  and the numpy arrays, dtypes and scalars in it are allow-listed with
  :func:`torch.serialization.add_safe_globals`. Plain mmengine pickles a
  buffer's statistics methods as ``getattr(HistoryBuffer, 'min')``; mmssl
  makes ``HistoryBuffer`` pickle without them (they are class attributes
  anyway) and, while :func:`safe_torch_load` runs, lets torch's unpickler
  resolve ``builtins.getattr`` to a function that returns exactly those four
  methods and refuses anything else. A pickle naming any other global is
  refused with :class:`UnsafeCheckpointError`, naming the file and the
  global.
* **Clear errors before unpickling.** The file's first bytes tell its
  format: an empty, text or unknown file raises
  :class:`CheckpointFileError` ("... is not a checkpoint"), a zip whose
  directory is missing or whose records are damaged raises it as
  "truncated checkpoint ...", and a TorchScript archive (whose loading runs
  its code) is refused with the way to read its weights instead,
  :func:`load_torchscript_state_dict`.

Saving lives in :mod:`mmssl.utils.checkpoint_save` (atomic writes), the
loaders of URL schemes in :mod:`mmssl.utils.checkpoint_schemes`, the
TorchScript reader in :mod:`mmssl.utils.torchscript_weights`, and what
importing mmssl changes in mmengine in :mod:`mmssl.utils.mmengine_patches`.
"""
import os.path as osp
import pickle
import re
import struct
import tarfile
import zipfile
import zlib
from typing import Any, List, Optional

import numpy as np
import torch

__all__ = [
    'UnsafeCheckpointError', 'CheckpointFileError', 'safe_globals',
    'safe_torch_load', 'checkpoint_format'
]


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


# --------------------------------------------------------------- getattr
_HISTORY_METHODS = ('min', 'max', 'current', 'mean')


def _type_name(obj: Any) -> str:
    cls = obj if isinstance(obj, type) else type(obj)
    return f'{cls.__module__}.{cls.__qualname__}'


def _history_buffer_getattr(obj: Any, name: Any) -> Any:
    """``getattr`` as an mmengine checkpoint may use it, and no more.

    Plain mmengine pickles ``HistoryBuffer._statistics_methods`` as
    ``getattr(HistoryBuffer, 'min')`` (and ``max``, ``current``, ``mean``).
    Those four lookups are answered; any other is refused.
    """
    from mmengine.logging.history_buffer import HistoryBuffer
    if obj is HistoryBuffer and name in _HISTORY_METHODS:
        return getattr(obj, name)
    raise UnsafeCheckpointError(
        f'getattr({_type_name(obj)}, {name!r}) is not allowed in a '
        'checkpoint')


def _load_time_globals() -> list:
    """Globals allowed only while :func:`safe_torch_load` runs."""
    return [(_history_buffer_getattr, 'builtins.getattr')]


# ------------------------------------------------------------ messages
_OFFENDER_PATTERNS = (
    re.compile(r'(getattr\([^)\n]*\))'),
    re.compile(r'GLOBAL ([\w\.]+) was not an allowed global'),
    re.compile(r'unsupported GLOBAL ([\w\.]+) whose module'),
    re.compile(r'reduce for unrecognized function ([^\n]+?)'
               r'(?: which belongs|\n|$)'),
    re.compile(r'(?:Can only build|Can only create new object).*?'
               r"but got <class '([^']+)'>"),
)


def _offender(message: str) -> str:
    """The global (or object type) a weights-only refusal is about."""
    for pattern in _OFFENDER_PATTERNS:
        match = pattern.search(message)
        if match:
            what = match.group(1)
            # torch prints builtins without their module ('exec')
            if re.fullmatch(r'\w+', what):
                what = f'builtins.{what}'
            return what
    return 'an object type outside the allow-list'


def _refusal(label: str, err: BaseException) -> UnsafeCheckpointError:
    what = _offender(str(err))
    return UnsafeCheckpointError(
        f'Refusing to load checkpoint {label}: its pickle refers to '
        f'{what!r}, which is not on mmssl\'s allow-list of safe types '
        '(tensors, plain Python values, numpy arrays and mmengine log '
        'buffers). Unpickling it could run arbitrary code. If you trust '
        'where this file comes from, load it once with '
        'torch.load(path, weights_only=False), keep only its '
        '"state_dict" and save that; or allow the type with '
        'torch.serialization.add_safe_globals([...]).')


def _unpickling_error(label: str, err: BaseException) -> Exception:
    """A weights-only unpickling failure as mmssl reports it."""
    opcode = re.search(r'Unsupported operand (\d+)', str(err))
    if opcode:  # not a refusal of a global: a pickle torch does not write
        return _not_a_checkpoint(
            label, 'its pickle uses the opcode '
            f'{bytes([int(opcode.group(1)) % 256])!r}, which torch.save '
            'does not write')
    return _refusal(label, err)


def _not_a_checkpoint(label: str, why: str) -> CheckpointFileError:
    return CheckpointFileError(
        f'{label} is not a checkpoint: {why}. mmssl reads files written by '
        'torch.save (a zip archive, or the older pickle format); check the '
        'path.')


def _truncated(label: str, why: str) -> CheckpointFileError:
    return CheckpointFileError(
        f'truncated checkpoint {label}: {why}. The file is incomplete or '
        'damaged (e.g. an interrupted download or save); fetch or save it '
        'again.')


def _label(filename: str, source: Optional[str]) -> str:
    if source and source != filename:
        return f'{source!r} (cached as {filename!r})'
    return repr(filename)


# ------------------------------------------------------------ formats
_ZIP_MAGIC = b'PK\x03\x04'
_PICKLE_PROTO = 0x80
_TEXT_BYTES = frozenset(range(32, 127)) | frozenset(b'\t\n\r')


def _describe_unknown(head: bytes) -> str:
    if not head:
        return 'the file is empty'
    if all(b in _TEXT_BYTES for b in head):
        text = head.decode('ascii')
        return f'it is a text file (it starts with {text[:24]!r})'
    return (f'it starts with the bytes {head[:8]!r}, which no torch '
            'checkpoint format does')


def _archive_prefix(names: List[str]) -> Optional[str]:
    """``'<archive>/'`` of a torch zip, the folder holding ``data.pkl``."""
    for name in names:
        parts = name.split('/')
        if len(parts) == 2 and parts[1] == 'data.pkl' and parts[0]:
            return parts[0] + '/'
    return None


def _sniff(filename: str, label: str) -> str:
    if filename.endswith('.safetensors'):
        return 'safetensors'  # torch.load reads it with safetensors
    with open(filename, 'rb') as f:
        head = f.read(64)
    if head.startswith(_ZIP_MAGIC):
        try:
            with zipfile.ZipFile(filename) as zf:
                names = zf.namelist()
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError,
                ValueError) as err:
            raise _truncated(
                label, f'its zip directory cannot be read ({err})') from err
        prefix = _archive_prefix(names)
        if prefix is None:
            raise _not_a_checkpoint(
                label, 'it is a zip archive without the data.pkl record of '
                'torch.save')
        if prefix + 'constants.pkl' in names:
            return 'torchscript'
        return 'zip'
    if head[:1] == bytes([_PICKLE_PROTO]):
        return 'legacy'
    if head and tarfile.is_tarfile(filename):
        return 'tar'  # torch < 0.4; torch reads it weights-only too
    raise _not_a_checkpoint(label, _describe_unknown(head))


def checkpoint_format(filename: str) -> str:
    """The format of a checkpoint file, told from its bytes, not unpickled.

    Args:
        filename (str): path of the file.

    Returns:
        str: ``'zip'`` (``torch.save`` since torch 1.6), ``'legacy'`` (the
        pickle stream of ``_use_new_zipfile_serialization=False``),
        ``'tar'`` (torch < 0.4), ``'torchscript'`` (``torch.jit.save``) or
        ``'safetensors'`` (by the file extension).

    Raises:
        FileNotFoundError: the file does not exist.
        CheckpointFileError: the file is empty, text or of no torch format
            ("not a checkpoint"), or a zip without its directory
            ("truncated checkpoint").
    """
    filename = osp.expanduser(str(filename))
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint file {filename!r} does not exist')
    return _sniff(filename, repr(filename))


_TRUNCATION_HINTS = ('PytorchStreamReader', 'EOF', 'truncated',
                     'unexpected end', 'file read failed', 'corrupted')


def safe_torch_load(filename: str,
                    map_location: Any = None,
                    *,
                    source: Optional[str] = None) -> Any:
    """``torch.load`` with ``weights_only=True`` and clear errors.

    Every pickle in the file, whatever its format, is read by torch's
    weights-only unpickler with mmssl's allow-list (see the module
    docstring); there is no fallback to full unpickling.

    Args:
        filename (str): path of the checkpoint file.
        map_location: as for :func:`torch.load`.
        source (str, optional): where the file came from (e.g. the URL of a
            cached download), named in error messages.

    Raises:
        FileNotFoundError: the file does not exist.
        CheckpointFileError: the file is not a checkpoint ("... is not a
            checkpoint", also for TorchScript archives) or is truncated or
            damaged ("truncated checkpoint ...").
        UnsafeCheckpointError: the pickle names a global outside the
            allow-list (unpickling it could run code).
    """
    filename = osp.expanduser(str(filename))
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint file {filename!r} does not exist')
    label = _label(filename, source)
    kind = _sniff(filename, label)
    if kind == 'torchscript':
        raise CheckpointFileError(
            f'{label} is a TorchScript archive (torch.jit.save), not a '
            'checkpoint, and loading it would run its code. Read its '
            'weights with mmssl.utils.load_torchscript_state_dict'
            '(path) and save them with torch.save(dict(state_dict=...), '
            'new_path) to use them as a checkpoint.')
    try:
        with torch.serialization.safe_globals(_load_time_globals()):
            return torch.load(
                filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        raise _unpickling_error(label, err) from err
    except (EOFError, struct.error, zipfile.BadZipFile, zlib.error) as err:
        raise _truncated(label, f'its data ends early ({err!r})') from err
    except RuntimeError as err:
        message = str(err)
        if 'Invalid magic number' in message:
            raise _not_a_checkpoint(
                label,
                'it is a pickle, but not one written by torch.save') from err
        if any(hint in message for hint in _TRUNCATION_HINTS):
            detail = message.strip().splitlines()[0].rstrip('.')
            raise _truncated(label, detail) from err
        raise
