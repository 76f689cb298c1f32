# Copyright (c) mmssl contributors. All rights reserved.
"""Read the weights of a TorchScript archive without running its code.

``torch.jit.load`` runs the archive's code (and ``torch.load`` refuses
TorchScript weights-only). OpenAI's CLIP releases are TorchScript archives,
so mmssl reads their ``data.pkl`` with torch's weights-only unpickler:
``__torch__.*`` classes become inert placeholders that only keep their
state, tensors are rebuilt only by torch's allowed rebuild functions, and
the ``__parameters__`` / ``__buffers__`` lists are read from ``code/`` as
text, never executed. See :func:`load_torchscript_state_dict`.
"""
import io
import os.path as osp
import pickle
import pickletools
import re
import struct
import sys
import zipfile
import zlib
from collections import OrderedDict
from typing import Any, Dict, List, Tuple

import torch

from .checkpoint import (CheckpointFileError, _archive_prefix, _sniff,
                         _truncated, _unpickling_error)

__all__ = ['load_torchscript_state_dict']


class _ScriptObject:
    """An inert stand-in for an object (a module) of a TorchScript archive.

    It runs none of the archive's code: the unpickler creates it for a
    ``__torch__.*`` class name and hands it the pickled attribute dict,
    which it only keeps.
    """
    type_name = '__torch__'
    state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state


_SCRIPT_CLASS_RE = re.compile(r'^class (\w+)\(([\w.]+)\):[ \t]*$', re.M)
_NAME_LIST_RE = r'^[ \t]+{}[ \t]*=[ \t]*\[([^\]\n]*)\]'


def _script_layouts(zf: zipfile.ZipFile,
                    prefix: str) -> Dict[str, Tuple[List[str], List[str]]]:
    """``{class name: (parameters, buffers)}`` from the archive's code.

    Each class of ``code/`` declares ``__parameters__ = ["weight", ...]``
    and ``__buffers__ = [...]``; only those two lists are read (as text,
    never executed), so that the state dict holds what
    ``torch.jit.load(path).state_dict()`` would and not, e.g., plain tensor
    attributes.
    """
    layouts: Dict[str, Tuple[List[str], List[str]]] = {}
    code = prefix + 'code/'
    for name in zf.namelist():
        if not (name.startswith(code) and name.endswith('.py')):
            continue
        module = name[len(code):-len('.py')].replace('/', '.')
        text = zf.read(name).decode('utf-8', 'replace')
        matches = list(_SCRIPT_CLASS_RE.finditer(text))
        for i, match in enumerate(matches):
            end = matches[i + 1].start() if i + 1 < len(matches) else None
            body = text[match.end():end]
            lists = []
            for attr in ('__parameters__', '__buffers__'):
                found = re.search(_NAME_LIST_RE.format(attr), body, re.M)
                lists.append(
                    re.findall(r'"([^"]*)"', found.group(1)) if found else [])
            layouts[f'{module}.{match.group(1)}'] = (lists[0], lists[1])
    return layouts


def _script_globals(data: bytes, label: str) -> List[str]:
    """Names of the globals a pickle refers to, read without unpickling."""
    names = []
    try:
        for opcode, arg, _ in pickletools.genops(data):
            if opcode.name == 'GLOBAL':
                module, _, name = str(arg).partition(' ')
                names.append(f'{module}.{name}')
    except ValueError as err:
        raise _truncated(label, f'its data.pkl is damaged ({err})') from err
    return names


def _unpickle_script_data(zf: zipfile.ZipFile, prefix: str, label: str):
    """Run torch's weights-only unpickler on ``<archive>/data.pkl``.

    ``__torch__.*`` classes resolve to inert :class:`_ScriptObject` types,
    TorchScript's list builders to torch's own (identity) functions;
    tensors are rebuilt by torch's allowed rebuild functions from the
    storages in ``<archive>/data/<key>``. Any other global is refused as
    by :func:`safe_torch_load`.
    """
    from torch import _weights_only_unpickler as wou
    from torch.jit import _pickle as jit_pickle

    data = zf.read(prefix + 'data.pkl')
    extra: list = [
        jit_pickle.build_intlist, jit_pickle.build_tensorlist,
        jit_pickle.build_doublelist, jit_pickle.build_boollist,
        jit_pickle.restore_type_tag
    ]
    for full_name in sorted(set(_script_globals(data, label))):
        if full_name.startswith('__torch__.'):
            cls = type(
                full_name.rsplit('.', 1)[-1], (_ScriptObject, ),
                dict(type_name=full_name, __module__=__name__))
            extra.append((cls, full_name))

    storages: Dict[str, Any] = {}

    def persistent_load(saved_id):
        if not (isinstance(saved_id, tuple) and len(saved_id) == 5):
            raise pickle.UnpicklingError(
                f'unsupported persistent id {saved_id!r}')
        _, storage_type, key, _location, numel = saved_id
        if storage_type is torch.UntypedStorage:
            dtype = torch.uint8
        else:
            dtype = getattr(storage_type, 'dtype', None)
        if not isinstance(dtype, torch.dtype) or type(numel) is not int \
                or numel < 0:
            raise pickle.UnpicklingError(f'unsupported storage {saved_id!r}')
        key = str(key)
        if key not in storages:
            nbytes = numel * torch._utils._element_size(dtype)
            try:
                raw = zf.read(f'{prefix}data/{key}')
            except KeyError as err:
                raise _truncated(label,
                                 f'its storage data/{key} is missing') from err
            if len(raw) < nbytes:
                raise _truncated(label, f'its storage data/{key} is short')
            if nbytes:
                untyped = torch.UntypedStorage.from_buffer(
                    raw[:nbytes], dtype=torch.uint8)
            else:
                untyped = torch.UntypedStorage(0)
            storages[key] = torch.storage.TypedStorage(
                wrap_storage=untyped, dtype=dtype, _internal=True)
        return storages[key]

    unpickler = wou.Unpickler(io.BytesIO(data), encoding='utf-8')
    unpickler.persistent_load = persistent_load
    try:
        with torch.serialization.safe_globals(extra):
            root = unpickler.load()
        validate = getattr(torch._utils, '_validate_loaded_sparse_tensors',
                           None)
        if validate is not None:
            validate()
    except CheckpointFileError:
        raise
    except pickle.UnpicklingError as err:
        raise _unpickling_error(label, err) from err
    except (EOFError, struct.error, TypeError, ValueError, IndexError,
            RuntimeError) as err:  # e.g. a tensor larger than its storage
        raise _truncated(label, f'its data.pkl is damaged ({err!r})') from err
    return root


def _collect_weights(obj: _ScriptObject, prefix: str, out: Dict[str, Any],
                     layouts: Dict[str, Tuple[List[str], List[str]]],
                     path: frozenset) -> None:
    state = obj.state
    if not isinstance(state, dict) or id(obj) in path:
        return
    path = path | {id(obj)}
    layout = layouts.get(obj.type_name)
    if layout is None:  # no declaration found: every tensor attribute
        names = [k for k, v in state.items() if isinstance(v, torch.Tensor)]
    else:  # as nn.Module.state_dict: parameters, then buffers
        params, buffers = layout
        names = [k for k in state if k in params]
        names += [k for k in state if k in buffers and k not in params]
    for key in names:
        value = state[key]
        if isinstance(value, torch.Tensor):
            out[f'{prefix}{key}'] = value.detach()
    for key, value in state.items():
        if isinstance(value, _ScriptObject):
            _collect_weights(value, f'{prefix}{key}.', out, layouts, path)


def load_torchscript_state_dict(
        filename: str) -> 'OrderedDict[str, torch.Tensor]':
    """The weights of a TorchScript archive, without running its code.

    ``torch.jit.load`` compiles and runs the archive's code, so it is no
    safer than unpickling an untrusted checkpoint. This reads only the
    pickled module tree (``<archive>/data.pkl``, with torch's weights-only
    unpickler; the archive's classes become inert records) and the tensor
    storages, and returns what ``torch.jit.load(path).state_dict()`` would:
    the declared parameters and buffers of every module, keyed by their
    dotted path, on the CPU.

    Args:
        filename (str): path of the archive (e.g. OpenAI's CLIP ``.pt``).

    Returns:
        OrderedDict[str, torch.Tensor]: the state dict.

    Raises:
        FileNotFoundError: the file does not exist.
        CheckpointFileError: not a TorchScript archive, a truncated one, or
            one without module weights.
        UnsafeCheckpointError: ``data.pkl`` names a global outside the
            allow-list.
    """
    filename = osp.expanduser(str(filename))
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint file {filename!r} does not exist')
    label = repr(filename)
    if _sniff(filename, label) != 'torchscript':
        raise CheckpointFileError(
            f'{label} is not a TorchScript archive (no constants.pkl); load '
            'it with mmssl.utils.safe_torch_load')
    try:
        with zipfile.ZipFile(filename) as zf:
            prefix = _archive_prefix(zf.namelist())
            order = prefix + 'byteorder'
            written = zf.read(order).decode('ascii', 'replace') \
                if order in zf.namelist() else sys.byteorder
            if written != sys.byteorder:
                raise CheckpointFileError(
                    f'{label} was written on a machine of the other byte '
                    'order; convert it there to a state dict with '
                    'torch.save')
            root = _unpickle_script_data(zf, prefix, label)
            layouts = _script_layouts(zf, prefix)
    except (zipfile.BadZipFile, zlib.error, EOFError) as err:
        raise _truncated(label, f'a record cannot be read ({err})') from err
    weights: 'OrderedDict[str, torch.Tensor]' = OrderedDict()
    if isinstance(root, _ScriptObject):
        _collect_weights(root, '', weights, layouts, frozenset())
    if not weights:
        raise CheckpointFileError(
            f'{label} is a TorchScript archive without module weights')
    return weights
