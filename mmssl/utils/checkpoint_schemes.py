# Copyright (c) mmssl contributors. All rights reserved.
"""Safe loaders for every scheme of mmengine's ``CheckpointLoader``.

mmengine 0.10.7 loads ``http(s)://``, ``torchvision://``, ``open-mmlab://``
and ``mmcls://`` checkpoints through ``torch.hub`` with
``weights_only=False``. The loaders here fetch and cache the bytes as
mmengine does (same cache folder, same ``open-mmlab://`` name map, same
``mmcls://`` key processing) and then load them with
:func:`mmssl.utils.checkpoint.safe_torch_load`. A scheme mmssl has no loader
for is refused. :func:`install_safe_loaders` registers them.
"""
import os
import os.path as osp
import sys
import tempfile
import zipfile
from typing import Any, Optional
from urllib.parse import urlparse

import torch

from .checkpoint import (CheckpointFileError, _label, _not_a_checkpoint,
                         safe_torch_load)

__all__ = [
    'load_url', 'load_from_local', 'load_from_http', 'load_from_pavi',
    'load_from_ceph', 'load_from_torchvision', 'load_from_openmmlab',
    'load_from_mmcls', 'install_safe_loaders'
]


def _extract_single_file_zip(cached_file: str, model_dir: str,
                             label: str) -> str:
    """The member of a zip holding one pre-1.6 checkpoint, extracted."""
    with zipfile.ZipFile(cached_file) as zf:
        member = zf.infolist()[0]
        name = member.filename
        if name in ('', '.', '..') or osp.basename(name) != name:
            raise _not_a_checkpoint(
                label, f'it is a zip archive whose only member {name!r} is '
                'not a plain file name')
        zf.extract(member, model_dir)
    return osp.join(model_dir, name)


def load_url(url: str,
             model_dir: Optional[str] = None,
             map_location: Any = None,
             progress: bool = True,
             check_hash: bool = False,
             file_name: Optional[str] = None,
             weights_only: bool = True) -> Any:
    """Download a checkpoint once (cached) and load it weights-only.

    Same cache as ``torch.hub.load_state_dict_from_url`` (which mmengine's
    ``load_url`` is): ``<torch hub dir>/checkpoints/<file name>`` unless
    ``model_dir`` is given, where the hub dir follows ``TORCH_HOME``. The
    file is loaded by :func:`safe_torch_load`.

    Args:
        url (str): ``http://`` or ``https://`` address.
        model_dir (str, optional): cache folder.
        map_location: as for :func:`torch.load`.
        progress (bool): show a download progress bar.
        check_hash (bool): check the ``<name>-<sha256 prefix>.<ext>`` hash.
        file_name (str, optional): cache file name (default: the URL's).
        weights_only (bool): accepted for signature compatibility; the file
            is always loaded weights-only.
    """
    if model_dir is None:
        model_dir = osp.join(torch.hub.get_dir(), 'checkpoints')
    os.makedirs(model_dir, exist_ok=True)
    filename = file_name or osp.basename(urlparse(url).path)
    cached_file = osp.join(model_dir, filename)
    if not osp.exists(cached_file):
        sys.stdout.write(f'Downloading: "{url}" to {cached_file}\n')
        hash_prefix = None
        if check_hash:
            match = torch.hub.HASH_REGEX.search(filename)
            hash_prefix = match.group(1) if match else None
        torch.hub.download_url_to_file(
            url, cached_file, hash_prefix, progress=progress)
    label = _label(cached_file, url)
    if zipfile.is_zipfile(cached_file):
        with zipfile.ZipFile(cached_file) as zf:
            members = zf.infolist()
        if len(members) == 1 and not members[0].is_dir():
            cached_file = _extract_single_file_zip(cached_file, model_dir,
                                                   label)
    return safe_torch_load(cached_file, map_location, source=url)


def load_from_local(filename, map_location=None):
    """Load a local checkpoint file (mmengine's ``''`` scheme), safely."""
    return safe_torch_load(filename, map_location)


def load_from_http(filename,
                   map_location=None,
                   model_dir=None,
                   progress=os.isatty(0)):
    """Load an ``http(s)://`` checkpoint; rank 0 downloads it first."""
    from mmengine.dist import get_dist_info
    rank, world_size = get_dist_info()
    if rank == 0:
        checkpoint = load_url(
            filename,
            model_dir=model_dir,
            map_location=map_location,
            progress=progress)
    if world_size > 1:
        torch.distributed.barrier()
        if rank > 0:
            checkpoint = load_url(
                filename,
                model_dir=model_dir,
                map_location=map_location,
                progress=progress)
    return checkpoint


def load_from_pavi(filename, map_location=None):
    """Load a ``pavi://`` checkpoint (downloaded to a temporary folder)."""
    assert filename.startswith('pavi://'), \
        f'Expected filename startswith `pavi://`, but get {filename}'
    try:
        from pavi import modelcloud
    except ImportError:
        raise ImportError(
            'Please install pavi to load checkpoint from modelcloud.')
    model = modelcloud.get(filename[7:])
    with tempfile.TemporaryDirectory() as tmp_dir:
        downloaded_file = osp.join(tmp_dir, model.name)
        model.download(downloaded_file)
        return safe_torch_load(downloaded_file, map_location, source=filename)


def load_from_ceph(filename, map_location=None, backend='petrel'):
    """Load an ``s3://`` / ``petrel://`` checkpoint through its backend."""
    from mmengine.fileio import get_file_backend
    file_backend = get_file_backend(
        filename, backend_args={'backend': backend})
    with tempfile.TemporaryDirectory() as tmp_dir:
        local = osp.join(tmp_dir, osp.basename(filename) or 'checkpoint')
        with open(local, 'wb') as f:
            f.write(file_backend.get(filename))
        return safe_torch_load(local, map_location, source=filename)


def load_from_torchvision(filename, map_location=None):
    """Load ``torchvision://NAME`` (or deprecated ``modelzoo://NAME``)."""
    import logging

    from mmengine.logging import print_log
    from mmengine.runner import checkpoint as ckpt_mod
    model_urls = ckpt_mod.get_torchvision_models()
    if filename.startswith('modelzoo://'):
        print_log(
            'The URL scheme of "modelzoo://" is deprecated, please '
            'use "torchvision://" instead',
            logger='current',
            level=logging.WARNING)
        model_name = filename[11:]
    else:
        model_name = filename[14:]
    return load_from_http(model_urls[model_name], map_location=map_location)


def load_from_openmmlab(filename, map_location=None):
    """Load ``open-mmlab://NAME`` through mmengine's name-to-URL map."""
    import logging

    from mmengine.logging import print_log
    from mmengine.runner import checkpoint as ckpt_mod
    model_urls = ckpt_mod.get_external_models()
    prefix_str = 'open-mmlab://'
    if filename.startswith(prefix_str):
        model_name = filename[13:]
    else:
        model_name = filename[12:]
        prefix_str = 'openmmlab://'
    deprecated_urls = ckpt_mod.get_deprecated_model_names()
    if model_name in deprecated_urls:
        print_log(
            f'{prefix_str}{model_name} is deprecated in favor '
            f'of {prefix_str}{deprecated_urls[model_name]}',
            logger='current',
            level=logging.WARNING)
        model_name = deprecated_urls[model_name]
    model_url = model_urls[model_name]
    if model_url.startswith(('http://', 'https://')):
        return load_from_http(model_url, map_location=map_location)
    local = osp.join(ckpt_mod._get_mmengine_home(), model_url)
    if not osp.isfile(local):
        raise FileNotFoundError(f'{local} can not be found.')
    return safe_torch_load(local, map_location, source=filename)


def load_from_mmcls(filename, map_location=None):
    """Load ``mmcls://NAME`` and rename its keys as mmengine does."""
    from mmengine.runner import checkpoint as ckpt_mod
    model_urls = ckpt_mod.get_mmcls_models()
    checkpoint = load_from_http(
        model_urls[filename[8:]], map_location=map_location)
    return ckpt_mod._process_mmcls_checkpoint(checkpoint)


def _unsupported_scheme(prefix: str):

    def load_from_unsupported(filename, map_location=None):
        raise CheckpointFileError(
            f'cannot load checkpoint {filename!r}: mmssl has no safe loader '
            f'for the {prefix!r} scheme; download the file and pass its '
            'local path')

    return load_from_unsupported


_SAFE_SCHEMES = (
    ('', load_from_local),
    (('http://', 'https://'), load_from_http),
    ('pavi://', load_from_pavi),
    ((r'(\S+\:)?s3://', r'(\S+\:)?petrel://'), load_from_ceph),
    (('modelzoo://', 'torchvision://'), load_from_torchvision),
    (('open-mmlab://', 'openmmlab://'), load_from_openmmlab),
    ('mmcls://', load_from_mmcls),
)


def install_safe_loaders() -> None:
    """Route every scheme of mmengine's ``CheckpointLoader`` to mmssl."""
    import mmengine.utils.dl_utils as dl_utils
    import mmengine.utils.dl_utils.hub as dl_hub
    from mmengine.runner import checkpoint as ckpt_mod

    loader = ckpt_mod.CheckpointLoader
    ours = set()
    for prefixes, fn in _SAFE_SCHEMES:
        loader.register_scheme(prefixes=prefixes, loader=fn, force=True)
        setattr(ckpt_mod, fn.__name__, fn)  # direct callers too
        ours.add(fn)
    # a scheme registered by someone else has no safe loader: refuse it
    for prefix, fn in list(loader._schemes.items()):
        if fn not in ours:
            loader.register_scheme(
                prefixes=prefix,
                loader=_unsupported_scheme(prefix),
                force=True)
    for module in (ckpt_mod, dl_utils, dl_hub):
        module.load_url = load_url
