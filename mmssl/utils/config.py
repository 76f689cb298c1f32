# Copyright (c) mmssl contributors. All rights reserved.
"""Config files: the ``mmssl::`` prefix, missing-file messages, the scope.

``_base_ = 'mmssl::mae/mae_vit-tiny-p8_1xb64-coslr-30e_embedded.py'`` names
a config of mmssl's ``configs/`` folder from a config saved anywhere.
mmengine resolves ``pkg::`` bases only for the packages of its own table
(mmdet, mmseg, mmpretrain, ...), so :func:`enable_mmssl_config_prefix`
teaches ``Config`` the ``mmssl::`` prefix; importing :mod:`mmssl` calls it,
so a plain ``Config.fromfile`` understands such bases after ``import
mmssl``.
"""
import copy
import difflib
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence

from mmengine.config import Config
from mmengine.registry import DATASETS, DefaultScope

__all__ = [
    'MMSSL_PREFIX', 'SPLITS', 'close_matches', 'config_dataset',
    'default_scope_of', 'enable_mmssl_config_prefix', 'missing_config_message',
    'mmssl_configs_root', 'read_config', 'resolve_mmssl_config'
]

#: ``_base_`` / CONFIG prefix naming a config of mmssl's ``configs/`` folder
MMSSL_PREFIX = 'mmssl::'

#: the splits of a config's loaders: ``<split>_dataloader``
SPLITS = ('train', 'val', 'test')

_PACKAGE = osp.dirname(osp.dirname(osp.abspath(__file__)))


def close_matches(word: str,
                  candidates: Sequence[str],
                  n: int = 3,
                  cutoff: float = 0.6) -> List[str]:
    """Closest candidates to ``word``, compared case-insensitively."""
    lower: Dict[str, str] = {}
    for cand in candidates:
        lower.setdefault(str(cand).lower(), str(cand))
    hits = difflib.get_close_matches(
        str(word).lower(), list(lower), n=n, cutoff=cutoff)
    return [lower[h] for h in hits]


def missing_config_message(path: str) -> str:
    """``config file 'x.py' does not exist; did you mean 'y.py'?``.

    Similarly named ``.py`` files are searched from the nearest existing
    folder of ``path`` down (hidden folders, ``work_dirs``, virtual
    environments and the files of Python packages, folders with an
    ``__init__.py``, skipped; at most about 5000 files).
    """
    msg = f'config file {path!r} does not exist'
    folder = osp.dirname(osp.abspath(path))
    search_root = folder
    while not osp.isdir(search_root):
        search_root = osp.dirname(search_root)
    if search_root != folder:
        msg += (f' (folder {osp.relpath(folder)!r} does not exist either)')
    candidates: List[str] = []
    for root, dirs, files in os.walk(search_root):
        dirs[:] = [
            d for d in dirs
            if not d.startswith('.') and d not in ('__pycache__', 'work_dirs',
                                                   '.venv')
        ]
        if '__init__.py' in files:
            continue  # a Python package holds code, not configs
        candidates += [
            osp.relpath(osp.join(root, f)) for f in files if f.endswith('.py')
        ]
        if len(candidates) > 5000:
            break
    if candidates:
        wanted = osp.relpath(osp.abspath(path))
        by_name: Dict[str, List[str]] = {}
        for cand in candidates:
            by_name.setdefault(osp.basename(cand), []).append(cand)
        hits = [
            c for name in close_matches(osp.basename(path), list(by_name))
            for c in by_name[name]
        ]
        hits = sorted(
            hits,
            key=lambda c: -difflib.SequenceMatcher(None, wanted, c).ratio())
        if hits:
            msg += '; did you mean ' + ' or '.join(repr(h)
                                                   for h in hits[:3]) + '?'
    return msg


def mmssl_configs_root() -> Optional[str]:
    """The folder of mmssl's configs, ``None`` when it is not installed.

    ``mmssl/.mim/configs`` of a package that ships its configs (OpenMMLab's
    layout), else ``configs/`` beside the ``mmssl`` package, as in a
    checkout (also when it is installed with ``pip install -e``).
    """
    for candidate in (osp.join(_PACKAGE, '.mim', 'configs'),
                      osp.join(osp.dirname(_PACKAGE), 'configs')):
        if osp.isdir(candidate):
            return candidate
    return None


def resolve_mmssl_config(path: str) -> str:
    """The file of ``'mmssl::mae/mae_....py'`` in mmssl's configs folder.

    Raises:
        FileNotFoundError: no configs folder, or no such config in it (the
            message lists similarly named configs).
    """
    rel = path[len(MMSSL_PREFIX):].lstrip('/')
    root = mmssl_configs_root()
    if root is None:
        raise FileNotFoundError(
            f'{path!r}: mmssl\'s configs folder is not installed with the '
            'package (a checkout has it: install it with pip install -e '
            'CHECKOUT); or write the path of the config file instead')
    full = osp.join(root, rel)
    if not osp.isfile(full):
        raise FileNotFoundError(
            f'{path!r} names {full!r}: ' + missing_config_message(full) +
            f' ({MMSSL_PREFIX!r} paths are relative to {root!r})')
    return full


def read_config(path: str) -> Config:
    """``Config.fromfile`` with a clear message for a missing file.

    ``path`` may also be ``'mmssl::<folder>/<file>.py'`` (a config of
    mmssl's configs folder), as may the ``_base_`` files of the config.
    The tools read configs through :func:`mmssl.engine.load_config`, which
    reports the same messages as user errors.

    Raises:
        FileNotFoundError: the file (or one of its ``_base_`` files) does
            not exist; the message lists similarly named config files, or
            says where ``_base_`` paths are taken from.
    """
    enable_mmssl_config_prefix()
    if path.startswith(MMSSL_PREFIX):
        path = resolve_mmssl_config(path)
    if not osp.isfile(path):
        raise FileNotFoundError(missing_config_message(path))
    try:
        return Config.fromfile(path)
    except FileNotFoundError as err:
        raise FileNotFoundError(
            f'config {path!r} could not be loaded: {err} (check the paths in '
            'its _base_ list: they are relative to the config file, or start '
            f'with {MMSSL_PREFIX!r} for a config of mmssl\'s configs '
            'folder)') from err


_PREFIX_ENABLED = False


def enable_mmssl_config_prefix() -> None:
    """Let ``_base_`` name mmssl's configs as ``'mmssl::<folder>/<file>'``.

    The file is read as a plain ``_base_`` file (no ``_scope_`` is added to
    its parts, unlike mmengine's ``mmdet::`` bases, so the config keeps its
    own ``default_scope``). Idempotent; ``import mmssl`` calls it.
    """
    global _PREFIX_ENABLED
    if _PREFIX_ENABLED:
        return
    original = Config._get_cfg_path

    def _get_cfg_path(cfg_path: str, filename: str):
        if isinstance(cfg_path, str) and cfg_path.startswith(MMSSL_PREFIX):
            return resolve_mmssl_config(cfg_path), None
        return original(cfg_path, filename)

    Config._get_cfg_path = staticmethod(_get_cfg_path)
    _PREFIX_ENABLED = True


def default_scope_of(cfg: Config) -> str:
    """The registry scope a Runner built from ``cfg`` works in.

    ``cfg.default_scope`` when set, else ``'mmengine'``, the Runner's own
    default; the analysis helpers that build parts of a config outside a
    Runner (data sets, models) use the same rule.
    """
    return cfg.get('default_scope', None) or 'mmengine'


def config_dataset(cfg: Config, split: str = 'train'):
    """Build ``cfg.<split>_dataloader.dataset`` in the config's scope, as
    the Runner builds it, and ``full_init`` it.

    Args:
        cfg (Config): A config with that loader.
        split (str): ``'train'``, ``'val'`` or ``'test'``.

    Raises:
        ValueError: an unknown split, or a config without that loader.
    """
    if split not in SPLITS:
        raise ValueError(f'split must be one of {SPLITS}, got {split!r}')
    key = f'{split}_dataloader'
    loader = cfg.get(key)
    if not loader or not loader.get('dataset'):
        have = [s for s in SPLITS if (cfg.get(f'{s}_dataloader') or {})]
        raise ValueError(
            f'{cfg.filename or "the config"} has no `{key}.dataset`; its '
            f'loaders: {", ".join(have) or "none"} (choose one of those '
            'splits)')
    with DefaultScope.overwrite_default_scope(default_scope_of(cfg)):
        dataset = DATASETS.build(copy.deepcopy(loader['dataset']))
    if hasattr(dataset, 'full_init'):
        dataset.full_init()
    return dataset
