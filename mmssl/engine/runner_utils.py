# Copyright (c) mmssl contributors. All rights reserved.
"""Helpers shared by ``tools/train.py`` and ``tools/test.py``.

They turn the usual user mistakes into one readable message instead of a
long traceback, and adapt a config to the machine it runs on:

* :func:`load_config` / :func:`merge_cfg_options`: a missing config file or a
  mistyped ``--cfg-options`` key is reported with the closest existing names.
* :func:`friendly_errors`: mmengine's ``KeyError('X is not in the
  scope::name registry ...')`` becomes an :class:`UnknownTypeError` naming the
  config file, where the type is written, the registry and scope searched and
  the closest registered names.
* :func:`check_checkpoint`: compares a checkpoint's ``state_dict`` with the
  model before testing / loading and raises :class:`CheckpointMismatchError`
  with counts, examples and the fix.
* :func:`configure_amp`, :func:`configure_test_amp`,
  :func:`configure_distributed`: ``--amp`` and NCCL configs keep working on a
  machine without CUDA (fp32, ``gloo``, DDP without ``device_ids``).
* :func:`run_tool`: prints a :class:`ToolError` as ``error: <message>`` on
  stderr and exits with code 2; any other exception keeps its traceback.

All user-facing errors derive from :class:`ToolError`. The checkpoint check
lives in :mod:`mmssl.engine.checkpoint_report`, the machine adaptation in
:mod:`mmssl.engine.machine_cfg` and the error classes in
:mod:`mmssl.engine.tool_errors`; every name is importable from here.
"""
import argparse
import contextlib
import difflib
import inspect
import logging
import os
import os.path as osp
import re
import sys
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

from mmengine.config import Config, DictAction
from mmengine.logging import print_log

from .checkpoint_report import (StateDictReport, check_checkpoint,
                                classifier_shape_mismatches,
                                compare_state_dict, num_classes_mismatch_lines)
from .machine_cfg import (build_runner, configure_amp, configure_distributed,
                          configure_test_amp, set_default_dataloader_cfg)
from .tool_errors import (CfgOptionsError, CheckpointMismatchError,
                          ConfigFileError, ToolError, UnknownTypeError, _close,
                          _quiet)

__all__ = [
    'ToolError', 'ConfigFileError', 'CfgOptionsError', 'UnknownTypeError',
    'CheckpointMismatchError', 'CfgOptionsAction', 'load_config',
    'merge_cfg_options', 'friendly_errors', 'unknown_type_error',
    'configure_amp', 'configure_test_amp', 'configure_distributed',
    'set_default_dataloader_cfg', 'build_runner', 'compare_state_dict',
    'StateDictReport', 'check_checkpoint', 'run_tool',
    'classifier_shape_mismatches', 'num_classes_mismatch_lines'
]



# --------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------
class CfgOptionsAction(DictAction):
    """``mmengine.config.DictAction`` that reports a malformed item cleanly.

    An item without ``=`` makes argparse print the usage and
    ``error: argument --cfg-options: expected KEY=VALUE, got 'x'`` and exit
    with code 2, instead of a ``ValueError`` traceback.
    """

    def __call__(self, parser, namespace, values, option_string=None):
        for item in values or []:
            key = item.split('=', 1)[0]
            if '=' not in item or not key or key.startswith('.') \
                    or key.endswith('.') or '..' in key:
                raise argparse.ArgumentError(
                    self, f'expected KEY=VALUE (e.g. '
                    f'optim_wrapper.optimizer.lr=0.01), got {item!r}')
        super().__call__(parser, namespace, values, option_string)


# --------------------------------------------------------------------------
# config loading
# --------------------------------------------------------------------------
def _missing_config_message(path: str) -> str:
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
            c for name in _close(osp.basename(path), list(by_name), n=3)
            for c in by_name[name]
        ]
        hits = sorted(
            hits,
            key=lambda c: -difflib.SequenceMatcher(None, wanted, c).ratio())
        if hits:
            msg += '; did you mean ' + ' or '.join(repr(h)
                                                   for h in hits[:3]) + '?'
    return msg


def load_config(path: str) -> Config:
    """``Config.fromfile`` with a clear error for a missing/broken file.

    Raises:
        ConfigFileError: the file (or one of its ``_base_`` files) does not
            exist; the message lists similarly named config files.
    """
    if not osp.isfile(path):
        raise ConfigFileError(_missing_config_message(path))
    try:
        return Config.fromfile(path)
    except FileNotFoundError as err:
        raise ConfigFileError(
            f'config {path!r} could not be loaded: {err} (check the paths in '
            'its _base_ list, which are relative to the config file)') from err


# keys the Runner (or the tools / mmengine hooks) read from the top level
_RUNNER_KEYS = set([
    'runner_type', 'custom_imports', 'default_scope', 'launcher',
    'find_unused_parameters', 'model_wrapper_cfg', 'sync_bn', 'auto_scale_lr',
    'tta_model', 'tta_pipeline', 'strategy', 'compile'
])


def _runner_keys() -> set:
    from mmengine.runner import Runner
    params = set(inspect.signature(Runner.__init__).parameters) - {'self'}
    return params | _RUNNER_KEYS


def merge_cfg_options(cfg: Config, options: Optional[dict],
                      config_path: str) -> Config:
    """Merge ``--cfg-options`` into ``cfg``, refusing likely typos.

    A key is refused when a part of its path does not exist in the config
    but a very similar key does (``model.backbon.arch``, ``max_epoch``), when
    a list index is out of range, or when it descends into a plain value. A
    new key with no similar neighbour is added, with a warning (a new
    top-level key that the Runner reads, such as ``randomness``, silently).
    The message reads ``--cfg-options 'model.backbon.depth': the config
    'cfg.py' has no key 'backbon' under model (did you mean 'backbone'?).
    ...``.

    Raises:
        CfgOptionsError: naming the key, the config and the close matches.
    """
    if not options:
        return cfg
    top_known = _runner_keys()
    for full_key in options:
        parts = full_key.split('.')
        node: Any = cfg._cfg_dict
        for depth, part in enumerate(parts):
            where = '.'.join(parts[:depth]) or '<top level>'
            if isinstance(node, dict):
                if part in node:
                    node = node[part]
                    continue
                existing = [k for k in node if isinstance(k, str)]
                if depth == 0 and part in top_known:
                    break  # a Runner argument the config leaves at default
                # 0.85 refuses 'backbon', 'max_epoch', 'optim_wraper' but
                # accepts e.g. a new 'drop_path_rate' next to 'drop_rate'
                close = _close(part, existing, n=3, cutoff=0.85)
                if close:
                    raise CfgOptionsError(
                        f'--cfg-options {full_key!r}: the config '
                        f'{config_path!r} has no key {part!r} under {where} '
                        f'(did you mean {" or ".join(map(repr, close))}?). '
                        'Fix the key; if you do mean a new key, set it in a '
                        'config that inherits this one (_base_ = [...])')
                print_log(
                    f'--cfg-options {full_key!r}: {part!r} is not in the '
                    f'config under {where}; it is added as a new key',
                    logger='current',
                    level=logging.WARNING)
                break
            if isinstance(node, (list, tuple)):
                if not part.isdigit() or int(part) >= len(node):
                    raise CfgOptionsError(
                        f'--cfg-options {full_key!r}: {where} is a list of '
                        f'{len(node)} items in the config {config_path!r}, '
                        f'so {part!r} is not a valid index (use 0 to '
                        f'{len(node) - 1})')
                node = node[int(part)]
                continue
            raise CfgOptionsError(
                f'--cfg-options {full_key!r}: {where} is the value '
                f'{node!r} in the config {config_path!r}, not a dict, so it '
                f'has no key {part!r}; set {where}=... instead')
    try:
        cfg.merge_from_dict(options)
    except Exception as err:  # mmengine raises Type/Key errors here
        raise CfgOptionsError(
            f'--cfg-options could not be merged into {config_path!r}: '
            f'{err}') from err
    return cfg


# --------------------------------------------------------------------------
# unknown registry types
# --------------------------------------------------------------------------
_REGISTRY_KEYERROR = re.compile(
    r'(?P<type>\S+) is not in the (?P<scope>[\w\-]+)::(?P<name>[\w \-]+?) '
    r'registry')


def _find_type_paths(node: Any, type_name: str, path: str = '') -> List[str]:
    found = []
    if isinstance(node, dict):
        if node.get('type') == type_name:
            found.append((path + '.' if path else '') + 'type')
        for key, value in node.items():
            sub = f'{path}.{key}' if path else str(key)
            found += _find_type_paths(value, type_name, sub)
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            found += _find_type_paths(value, type_name, f'{path}.{i}')
    return found


def _root_registry(name: str):
    from mmengine.registry import Registry, root
    for value in vars(root).values():
        if isinstance(value, Registry) and value.parent is None \
                and value.name == name:
            return value
    return None


def _registry_candidates(name: str, scope: str,
                         type_scope: Optional[str]) -> List[Tuple[str, str]]:
    """(display name, bare name) of every type reachable from ``scope``.

    Names resolvable without a prefix in ``scope`` (the scope's registry and
    its ancestors) are shown bare; names in sibling scopes as ``scope.Name``.
    Only likely scopes are imported: the current one, the one written as a
    prefix, ``mmssl``, ``mmpretrain`` and those already imported.
    """
    root = _root_registry(name)
    if root is None:
        return []
    current = root if scope == root.scope else root._children.get(scope, root)
    wanted = {scope, type_scope, 'mmssl', 'mmpretrain'}
    out: List[Tuple[str, str]] = []
    seen = set()
    reg = current
    while reg is not None:
        with _quiet(), contextlib.suppress(Exception):
            reg.import_from_location()
        for key in list(reg._module_dict):
            if key not in seen:
                seen.add(key)
                # keep the user's style: prefixed names get prefixed advice
                shown = f'{reg.scope}.{key}' if (type_scope
                                                 and reg is not root) else key
                out.append((shown, key))
        reg = reg.parent
    # importing a scope may add registries: import first, then list
    for child_scope, child in list(root._children.items()):
        if child is not current and (child_scope in wanted
                                     or child_scope in sys.modules):
            with _quiet(), contextlib.suppress(Exception):
                child.import_from_location()
    for child_scope, child in list(root._children.items()):
        if child is current:
            continue
        for key in list(child._module_dict):
            out.append((f'{child_scope}.{key}', key))
    return out


def unknown_type_error(err: BaseException,
                       config_path: str,
                       cfg: Optional[Config] = None
                       ) -> Optional[UnknownTypeError]:
    """Turn mmengine's unknown-type ``KeyError`` into an UnknownTypeError.

    ``err`` and its ``__cause__``/``__context__`` chain are searched for the
    message ``'X is not in the scope::name registry'``; ``None`` is returned
    when the error is something else.

    The message reads::

        unknown type 'MAEVit' in config 'cfg.py' (written at
        model.backbone.type): it is not registered in the 'model' registry
        of scope 'mmpretrain' (nor in its parent scopes).
        Closest registered names: 'MAEViT', 'mmpretrain.MAEViT', ...
        Fix the name; or add the scope prefix of the package that registers
        it (type='mmssl.MAEVit', type='mmpretrain.MAEVit'); or, for a module
        of your own, add custom_imports=dict(imports=['my_package.my_module'],
        allow_failed_imports=False) to the config.
    """
    match = None
    seen = set()
    exc: Optional[BaseException] = err
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        text = exc.args[0] if (isinstance(exc, KeyError)
                               and exc.args) else str(exc)
        match = _REGISTRY_KEYERROR.search(str(text))
        if match:
            break
        exc = exc.__cause__ or exc.__context__
    if match is None:
        return None
    type_name, scope, name = match['type'], match['scope'], match['name']
    from mmengine.registry import Registry
    type_scope, bare = Registry.split_scope_key(type_name)
    candidates = _registry_candidates(name, scope, type_scope)
    ranked = []
    for display, cand_bare in candidates:
        if display == type_name:
            continue
        ratio = difflib.SequenceMatcher(None, bare.lower(),
                                        cand_bare.lower()).ratio()
        if ratio >= 0.6:
            ranked.append((-ratio, '.' in display, display))
    suggestions = [d for _, _, d in sorted(ranked)[:5]]

    where = ''
    if cfg is not None:
        paths = _find_type_paths(cfg._cfg_dict.to_dict(), type_name)
        if paths:
            where = f' (written at {", ".join(paths[:3])})'
        else:
            where = (' (not written in the config itself: it is the default '
                     'of a class the config builds)')
    lines = [
        f'unknown type {type_name!r} in config {config_path!r}{where}: '
        f'it is not registered in the {name!r} registry of scope '
        f'{scope!r} (nor in its parent scopes).'
    ]
    if suggestions:
        lines.append('Closest registered names: ' +
                     ', '.join(repr(s) for s in suggestions) + '.')
    else:
        lines.append('No registered name is close to it.')
    custom = ("or, for a module of your own, add custom_imports=dict("
              "imports=['my_package.my_module'], allow_failed_imports=False) "
              'to the config.')
    if type_scope:
        lines.append(
            f"Fix the name or its scope prefix '{type_scope}.' (mmssl parts "
            f"are type='mmssl.{bare}', mmpretrain parts "
            f"type='mmpretrain.{bare}'); " + custom)
    else:
        lines.append(
            'Fix the name; or, if another package registers it, add its '
            f"scope prefix (type='mmssl.{bare}', type='mmpretrain.{bare}', "
            f"type='mmdet.{bare}'); " + custom)
    return UnknownTypeError(
        '\n'.join(lines),
        type_name=type_name,
        registry=name,
        scope=scope,
        suggestions=suggestions)


@contextlib.contextmanager
def friendly_errors(config_path: str,
                    cfg: Optional[Config] = None) -> Iterator[None]:
    """Re-raise unknown-type registry errors as :class:`UnknownTypeError`.

    Wrap runner construction and ``runner.train()`` / ``runner.test()`` in
    it: types are resolved both when the runner is built (model, hooks) and
    lazily when a loop starts (datasets, transforms, optimizers, metrics).
    """
    try:
        yield
    except ToolError:
        raise
    except Exception as err:
        friendly = unknown_type_error(err, config_path, cfg)
        if friendly is None:
            raise
        raise friendly from None


# --------------------------------------------------------------------------
# entry point wrapper
# --------------------------------------------------------------------------
def run_tool(main: Callable[..., Any], *args, **kwargs) -> Any:
    """Call ``main``; print user errors as ``error: ...`` and exit with 2.

    :class:`ToolError` and mmssl's ``UnsafeCheckpointError`` are user
    errors: their message is printed on stderr as one block, without a
    traceback. Anything else propagates with its traceback.
    """
    from mmssl.utils.checkpoint import UnsafeCheckpointError
    try:
        return main(*args, **kwargs)
    except (ToolError, UnsafeCheckpointError) as err:
        sys.stdout.flush()
        print(f'error: {err}', file=sys.stderr)
        sys.stderr.flush()
        raise SystemExit(2)
