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
* :func:`run_tool` / :func:`tool_main`: print a user error (a
  :class:`ToolError`, a missing file or folder, an unsafe or broken
  checkpoint) as ``error: <message>`` on stderr and exit with code 2; any
  other exception keeps its traceback (see :mod:`mmssl.engine.tool_errors`).
* :func:`enable_mmssl_config_prefix`: ``_base_ = 'mmssl::mae/...py'`` names
  a config of mmssl's ``configs/`` folder from a config saved anywhere.

All user-facing errors derive from :class:`ToolError`. The checkpoint check
lives in :mod:`mmssl.engine.checkpoint_report`, the machine adaptation in
:mod:`mmssl.engine.machine_cfg` and the error classes in
:mod:`mmssl.engine.tool_errors`; every name is importable from here.
"""
import argparse
import contextlib
import difflib
import importlib
import inspect
import os
import os.path as osp
import re
import sys
from typing import Any, Dict, Iterator, List, Optional, Tuple

from mmengine.config import Config, DictAction
from mmengine.logging import print_log

from .checkpoint_report import (StateDictReport, check_checkpoint,
                                classifier_shape_mismatches,
                                compare_state_dict, num_classes_mismatch_lines)
from .machine_cfg import (build_runner, configure_amp, configure_distributed,
                          configure_test_amp, set_default_dataloader_cfg)
from .tool_errors import (CfgOptionsError, CheckpointMismatchError,
                          ConfigFileError, ToolError, UnknownTypeError, _close,
                          _quiet, print_user_error, run_tool, tool_main,
                          user_error_message)

__all__ = [
    'ToolError', 'ConfigFileError', 'CfgOptionsError', 'UnknownTypeError',
    'CheckpointMismatchError', 'CfgOptionsAction', 'load_config',
    'merge_cfg_options', 'friendly_errors', 'unknown_type_error',
    'configure_amp', 'configure_test_amp', 'configure_distributed',
    'set_default_dataloader_cfg', 'build_runner', 'compare_state_dict',
    'StateDictReport', 'check_checkpoint', 'run_tool', 'tool_main',
    'print_user_error', 'user_error_message', 'classifier_shape_mismatches',
    'num_classes_mismatch_lines', 'CFG_OPTIONS_HELP', 'mmssl_configs_root',
    'resolve_mmssl_config', 'enable_mmssl_config_prefix'
]


# --------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------
class CfgOptionsAction(DictAction):
    """``mmengine.config.DictAction`` that reports a malformed item cleanly.

    An item without ``=`` makes argparse print the usage and
    ``error: argument --cfg-options: expected KEY=VALUE, got 'x'`` and exit
    with code 2, instead of a ``ValueError`` traceback. A key may start with
    ``+`` to add a new key on purpose (see :func:`merge_cfg_options`).
    """

    def __call__(self, parser, namespace, values, option_string=None):
        for item in values or []:
            key = item.split('=', 1)[0]
            if key.startswith('+'):
                key = key[1:]
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


#: ``_base_`` / CONFIG prefix naming a config of mmssl's ``configs/`` folder
MMSSL_PREFIX = 'mmssl::'


def mmssl_configs_root() -> Optional[str]:
    """The folder of mmssl's configs, ``None`` when it is not installed.

    ``mmssl/.mim/configs`` of a package that ships its configs (OpenMMLab's
    layout), else ``configs/`` beside the ``mmssl`` package, as in a
    checkout (also when it is installed with ``pip install -e``).
    """
    import mmssl
    package = osp.dirname(osp.abspath(mmssl.__file__))
    for candidate in (osp.join(package, '.mim', 'configs'),
                      osp.join(osp.dirname(package), 'configs')):
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
            f'{path!r} names {full!r}: ' + _missing_config_message(full) +
            f' ({MMSSL_PREFIX!r} paths are relative to {root!r})')
    return full


_PREFIX_ENABLED = False


def enable_mmssl_config_prefix() -> None:
    """Let ``_base_`` name mmssl's configs as ``'mmssl::<folder>/<file>'``.

    A config saved anywhere can then inherit one of mmssl's, e.g.
    ``_base_ = 'mmssl::mae/mae_vit-tiny-p8_1xb64-coslr-30e_embedded.py'``.
    The file is read as a plain ``_base_`` file (no ``_scope_`` is added to
    its parts, unlike mmengine's ``mmdet::`` bases, so the config keeps its
    own ``default_scope``). Idempotent; the tools call it on import.
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


def load_config(path: str) -> Config:
    """``Config.fromfile`` with a clear error for a missing/broken file.

    ``path`` may also be ``'mmssl::<folder>/<file>.py'`` (a config of
    mmssl's configs folder), as may the ``_base_`` files of the config.

    Raises:
        ConfigFileError: the file (or one of its ``_base_`` files) does not
            exist; the message lists similarly named config files.
    """
    enable_mmssl_config_prefix()
    if path.startswith(MMSSL_PREFIX):
        try:
            path = resolve_mmssl_config(path)
        except FileNotFoundError as err:
            raise ConfigFileError(str(err)) from err
    if not osp.isfile(path):
        raise ConfigFileError(_missing_config_message(path))
    try:
        return Config.fromfile(path)
    except FileNotFoundError as err:
        raise ConfigFileError(
            f'config {path!r} could not be loaded: {err} (check the paths in '
            'its _base_ list: they are relative to the config file, or start '
            f'with {MMSSL_PREFIX!r} for a config of mmssl\'s configs '
            'folder)') from err


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


#: ``--cfg-options`` help shared by the tools
CFG_OPTIONS_HELP = (
    'override settings of the config, KEY=VALUE (e.g. '
    'train_dataloader.batch_size=32, model.backbone.drop_path_rate=0.1, '
    'param_scheduler.0.end=10; lists as key="[a,b]" or key=a,b, without '
    'spaces). KEY must exist in the config, be an argument of the class its '
    'dict builds (the dict\'s type=, e.g. drop_path_rate of the backbone) '
    'or a Runner argument; write +KEY=VALUE to add any other key on purpose')

# what the Runner reads from env_cfg (with env_cfg.get(...))
_ENV_CFG_KEYS = {'cudnn_benchmark', 'mp_cfg', 'dist_cfg', 'resource_limit'}


def _accepted_args(obj: Any) -> Tuple[set, bool]:
    """(explicit argument names, whether more are passed on unchecked).

    Classes are read along their MRO while each ``__init__`` passes
    ``**kwargs`` on to its parents.
    """
    names: set = set()
    if inspect.isclass(obj):
        funcs = [
            klass.__dict__['__init__'] for klass in inspect.getmro(obj)
            if klass is not object and '__init__' in klass.__dict__
        ]
    else:
        funcs = [obj]
    for func in funcs:
        try:
            params = inspect.signature(func).parameters.values()
        except (TypeError, ValueError):
            return names, True
        names |= {
            p.name
            for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        }
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            return names - {'self'}, False
    return names - {'self'}, bool(funcs)


def _classes_of(node: dict, scope: str) -> List[Any]:
    """The registered classes that ``node['type']`` may name."""
    obj_type = node.get('type')
    if callable(obj_type):
        return [obj_type]
    if not isinstance(obj_type, str):
        return []
    from mmengine.registry import Registry, root
    with _quiet(), contextlib.suppress(Exception):
        importlib.import_module(f'{scope}.registry')
    found = []
    for value in vars(root).values():
        if not isinstance(value, Registry) or value.parent is not None:
            continue
        registry = value._children.get(scope, value)
        with _quiet(), contextlib.suppress(Exception):
            cls = registry.get(obj_type)
            if cls is not None and cls not in found:
                found.append(cls)
    return found


def _implicit_args(path: List[str]) -> Optional[set]:
    """Keys accepted by a type-less dict the Runner builds, else None.

    The data loaders, ``randomness``, ``env_cfg``, and the ``optim_wrapper``
    / ``train_cfg`` / ``val_cfg`` / ``test_cfg`` / ``log_processor`` that
    leave ``type`` at the Runner's default (which may then be set).
    """
    if len(path) != 1:
        return None
    key = path[0]
    if key.endswith('_dataloader'):
        from torch.utils.data import DataLoader
        return _accepted_args(DataLoader)[0]
    if key == 'randomness':
        from mmengine.runner import Runner
        return _accepted_args(Runner.set_randomness)[0]
    if key == 'env_cfg':
        return set(_ENV_CFG_KEYS)
    from mmengine import optim, runner
    defaults = {
        'optim_wrapper':
        ([optim.OptimWrapper], {'constructor', 'paramwise_cfg'}),
        'train_cfg': ([runner.EpochBasedTrainLoop,
                       runner.IterBasedTrainLoop], {'by_epoch'}),
        'val_cfg': ([runner.ValLoop], set()),
        'test_cfg': ([runner.TestLoop], set()),
        'log_processor': ([runner.LogProcessor], set()),
    }
    if key not in defaults:
        return None
    classes, extra = defaults[key]
    names = {'type'} | extra
    for cls in classes:
        names |= _accepted_args(cls)[0]
    return names


def _new_key_ok(node: dict, path: List[str], key: str,
                scope: str) -> Tuple[bool, str, List[str]]:
    """Whether ``key`` may be added to ``node`` (at ``path``), why not, and
    the argument names it could have meant."""
    if 'type' in node:
        classes = _classes_of(node, scope)
        known: set = set()
        unchecked = False
        for cls in classes:
            names, more = _accepted_args(cls)
            if key in names:
                return True, '', []
            known |= names
            unchecked |= more
        if not classes:
            return False, (f'its type {node.get("type")!r} is not a '
                           'registered class, so its arguments are '
                           'unknown'), []
        name = getattr(classes[0], '__name__', str(classes[0]))
        return False, (f'{name} has no argument {key!r}' +
                       (' (it passes further keyword arguments on, which '
                        'cannot be checked)' if unchecked else '')), \
            sorted(known)
    implicit = _implicit_args(path)
    if implicit is not None:
        if key in implicit:
            return True, '', []
        return False, f'the Runner reads no {key!r} there', sorted(implicit)
    return False, '', []


def _split_new_keys(options: dict) -> Tuple[dict, set]:
    """Strip the ``+`` of keys added on purpose: (options, those keys)."""
    clean, forced = {}, set()
    for key, value in options.items():
        if key.startswith('+'):
            key = key[1:]
            forced.add(key)
        clean[key] = value
    return clean, forced


def merge_cfg_options(cfg: Config, options: Optional[dict],
                      config_path: str) -> Config:
    """Merge ``--cfg-options`` into ``cfg``, refusing unknown keys.

    Every part of a key must exist in the config, with three exceptions
    where a new key is added:

    * a top-level Runner argument the config leaves at its default
      (``randomness``, ``load_from``, ``find_unused_parameters`` ...);
    * an argument of the class a dict builds: a key under a dict with
      ``type=`` is checked against the registered class's ``__init__``
      (``model.backbone.drop_path_rate``, ``model.backbone.init_cfg``), and
      the data loaders, ``randomness`` and ``env_cfg`` against what the
      Runner reads there;
    * a key written ``+KEY=VALUE``: added as it is, on purpose.

    A list index must be in range, and a key cannot descend into a plain
    value. The message reads ``--cfg-options 'model.backbon.depth': the
    config 'cfg.py' has no key 'backbon' under model (did you mean
    'backbone'?). ...``.

    Raises:
        CfgOptionsError: naming the key, the config, the close matches and
            the fix.
    """
    if not options:
        return cfg
    options, forced = _split_new_keys(dict(options))
    top_known = _runner_keys()
    scope = cfg.get('default_scope') or 'mmengine'
    for full_key in options:
        parts = full_key.split('.')
        node: Any = cfg._cfg_dict
        for depth, part in enumerate(parts):
            where = '.'.join(parts[:depth]) or '<top level>'
            if isinstance(node, dict):
                if part in node:
                    node = node[part]
                    continue
                if full_key in forced:
                    print_log(
                        f'--cfg-options +{full_key}: {part!r} is added as a '
                        f'new key under {where}',
                        logger='current')
                    break
                if depth == 0 and part in top_known:
                    break  # a Runner argument the config leaves at default
                ok, why, args = _new_key_ok(node, parts[:depth], part, scope)
                if ok:
                    break
                existing = [k for k in node if isinstance(k, str)]
                close = _close(part, existing + args, n=3)
                hint = (f'did you mean {" or ".join(map(repr, close))}?'
                        if close else 'its keys there: ' +
                        (', '.join(map(repr,
                                       sorted(existing)[:12])) or 'none'))
                raise CfgOptionsError(
                    f'--cfg-options {full_key!r}: the config '
                    f'{config_path!r} has no key {part!r} under {where} '
                    f'({hint})' + (f'; {why}' if why else '') + '. Fix '
                    f'the key; to add it as a new key on purpose, write '
                    f'+{full_key}=...')
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


def unknown_type_error(
        err: BaseException,
        config_path: str,
        cfg: Optional[Config] = None) -> Optional[UnknownTypeError]:
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


enable_mmssl_config_prefix()
