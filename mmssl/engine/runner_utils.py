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

All user-facing errors derive from :class:`ToolError`.
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
import warnings
from typing import (Any, Callable, Dict, Iterator, List, Optional, Sequence,
                    Tuple)

import torch
from mmengine.config import Config, ConfigDict, DictAction
from mmengine.logging import print_log

__all__ = [
    'ToolError', 'ConfigFileError', 'CfgOptionsError', 'UnknownTypeError',
    'CheckpointMismatchError', 'CfgOptionsAction', 'load_config',
    'merge_cfg_options', 'friendly_errors', 'unknown_type_error',
    'configure_amp', 'configure_test_amp', 'configure_distributed',
    'set_default_dataloader_cfg', 'build_runner', 'compare_state_dict',
    'StateDictReport', 'check_checkpoint', 'run_tool',
    'classifier_shape_mismatches', 'num_classes_mismatch_lines'
]

EXTRACT_BACKBONE = 'tools/model_converters/extract_backbone.py'


class ToolError(Exception):
    """A mistake in the user's input (config, arguments, checkpoint).

    The tools print it as ``error: <message>`` and exit with code 2.
    """


class ConfigFileError(ToolError):
    """The config file is missing or cannot be read."""


class CfgOptionsError(ToolError):
    """A ``--cfg-options`` item is malformed or names a non-existent key."""


class UnknownTypeError(ToolError):
    """A ``type=`` in the config is not registered in the searched registry.

    Attributes:
        type_name (str): the unknown type as written (``'MAEVit'``).
        registry (str): the registry name (``'model'``).
        scope (str): the scope searched (``'mmpretrain'``).
        suggestions (list[str]): closest registered names, best first.
    """

    def __init__(self, message: str, type_name: str, registry: str, scope: str,
                 suggestions: List[str]):
        super().__init__(message)
        self.type_name = type_name
        self.registry = registry
        self.scope = scope
        self.suggestions = suggestions


class CheckpointMismatchError(ToolError):
    """The checkpoint's weights do not fit the model built from the config.

    Attributes:
        report (StateDictReport): the key-by-key comparison.
    """

    def __init__(self, message: str, report: 'StateDictReport'):
        super().__init__(message)
        self.report = report


def _quote_list(names: Sequence[str], limit: int = 5) -> str:
    shown = ', '.join(repr(n) for n in list(names)[:limit])
    if len(names) > limit:
        shown += f', ... ({len(names) - limit} more)'
    return shown


def _close(word: str,
           candidates: Sequence[str],
           n: int = 3,
           cutoff: float = 0.6) -> List[str]:
    """Closest candidates to ``word``, compared case-insensitively."""
    lower = {}
    for cand in candidates:
        lower.setdefault(str(cand).lower(), str(cand))
    hits = difflib.get_close_matches(
        str(word).lower(), list(lower), n=n, cutoff=cutoff)
    return [lower[h] for h in hits]


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


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            yield
    finally:
        logging.disable(previous)


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
# machine adaptation: AMP, distributed backend, dataloaders
# --------------------------------------------------------------------------
_AMP_WRAPPERS = ('AmpOptimWrapper', 'mmengine.AmpOptimWrapper')


def configure_amp(cfg: Config, enable: bool) -> Config:
    """Apply ``--amp`` the way mmpretrain does, but only where it works.

    With CUDA, ``--amp`` switches ``optim_wrapper`` to ``AmpOptimWrapper``
    (``loss_scale='dynamic'`` unless set). Without CUDA, mmengine's
    ``AmpOptimWrapper`` refuses to build and CPU autocast is very slow, so
    ``--amp`` only logs a warning and training stays in fp32; a config that
    itself names ``AmpOptimWrapper`` is switched to ``OptimWrapper`` (its
    ``loss_scale``/``dtype`` dropped), also with a warning.
    """
    wrapper = cfg.get('optim_wrapper')
    cuda = torch.cuda.is_available()
    if enable:
        if wrapper is None:
            raise ToolError('--amp needs an optim_wrapper in the config')
        if cuda:
            if wrapper.get('type', 'OptimWrapper') not in _AMP_WRAPPERS:
                wrapper['type'] = 'AmpOptimWrapper'
            wrapper.setdefault('loss_scale', 'dynamic')
            return cfg
        print_log(
            '--amp is ignored: CUDA is not available, so training stays in '
            'fp32 (AmpOptimWrapper needs a GPU; autocast on CPU is slow)',
            logger='current',
            level=logging.WARNING)
    if not cuda and wrapper is not None and wrapper.get(
            'type') in _AMP_WRAPPERS:
        wrapper['type'] = 'OptimWrapper'
        for key in ('loss_scale', 'dtype', 'use_fsdp'):
            wrapper.pop(key, None)
        print_log(
            'The config uses AmpOptimWrapper but CUDA is not available: '
            'using OptimWrapper (fp32) instead',
            logger='current',
            level=logging.WARNING)
    return cfg


def configure_test_amp(cfg: Config, enable: bool) -> Config:
    """``--amp`` for testing: ``test_cfg.fp16=True`` with CUDA, else fp32."""
    if not enable:
        return cfg
    if torch.cuda.is_available():
        cfg.setdefault('test_cfg', ConfigDict())
        if cfg.test_cfg is None:
            cfg.test_cfg = ConfigDict()
        cfg.test_cfg.fp16 = True
    else:
        print_log(
            '--amp is ignored: CUDA is not available, testing stays in fp32',
            logger='current',
            level=logging.WARNING)
    return cfg


@contextlib.contextmanager
def _no_cuda_set_device() -> Iterator[None]:
    original = torch.cuda.set_device
    torch.cuda.set_device = lambda *args, **kwargs: None
    try:
        yield
    finally:
        torch.cuda.set_device = original


def configure_distributed(cfg: Config, launcher: str) -> Config:
    """Make a distributed launch work on a machine without CUDA.

    mmengine takes the backend from ``env_cfg.dist_cfg.backend`` (default
    ``'nccl'``), calls ``torch.cuda.set_device`` while initialising, and
    wraps the model in DDP with ``device_ids=[LOCAL_RANK]``; all three fail
    without CUDA. When ``launcher != 'none'`` and CUDA is not available this
    function switches the backend to ``'gloo'`` (logging it), initialises
    the process group itself through mmengine's ``init_dist`` (so the
    Runner's own call is skipped), and sets
    ``model_wrapper_cfg.device_ids=None`` so DDP runs on CPU. With CUDA the
    config is left as it is.

    Raises:
        ToolError: ``--launcher pytorch`` outside torchrun (no ``RANK``).
    """
    if launcher == 'none':
        return cfg
    if launcher == 'pytorch' and 'RANK' not in os.environ:
        raise ToolError(
            '--launcher pytorch needs the environment variables that '
            'torchrun sets (RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR); '
            'start the job with tools/dist_train.sh or tools/dist_test.sh')
    if torch.cuda.is_available():
        return cfg
    env_cfg = cfg.get('env_cfg')
    if env_cfg is None:
        cfg.env_cfg = ConfigDict(dist_cfg=dict(backend='nccl'))
        env_cfg = cfg.env_cfg
    dist_cfg = env_cfg.get('dist_cfg')
    if dist_cfg is None:
        env_cfg.dist_cfg = ConfigDict(backend='nccl')
        dist_cfg = env_cfg.dist_cfg
    backend = dist_cfg.get('backend', 'nccl')
    if backend == 'nccl':
        dist_cfg.backend = 'gloo'
        print_log(
            "CUDA is not available: using the 'gloo' distributed backend "
            "instead of 'nccl' from env_cfg.dist_cfg",
            logger='current',
            level=logging.WARNING)

    wrapper_cfg = cfg.get('model_wrapper_cfg')
    if wrapper_cfg is None:
        cfg.model_wrapper_cfg = ConfigDict(
            type='MMDistributedDataParallel',
            broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False),
            device_ids=None)
    else:
        wrapper_cfg.setdefault('device_ids', None)

    from mmengine.dist import init_dist, is_distributed
    if not is_distributed():
        with _no_cuda_set_device():
            init_dist(launcher, **dict(dist_cfg))
    return cfg


def set_default_dataloader_cfg(cfg: Config,
                               fields: Sequence[str],
                               pin_memory: Optional[bool] = None,
                               persistent_workers: Optional[bool] = None
                               ) -> Config:
    """mmpretrain's dataloader defaults, adjusted to the machine.

    ``pin_memory`` defaults to whether CUDA is available (pinning needs an
    accelerator), ``persistent_workers`` to ``num_workers > 0``;
    ``collate_fn`` to ``default_collate``. Values written in the config win;
    ``False`` passed here (from ``--no-pin-memory``/
    ``--no-persistent-workers``) wins over the config, and
    ``persistent_workers`` is dropped whenever ``num_workers`` is 0 (torch
    refuses the combination). Call it after ``--cfg-options`` are merged.
    """
    for field in fields:
        loader = cfg.get(field)
        if loader is None:
            continue
        merged = ConfigDict(
            pin_memory=torch.cuda.is_available(),
            collate_fn=dict(type='default_collate'))
        if persistent_workers is not False and loader.get('num_workers',
                                                          0) > 0:
            merged.persistent_workers = True
        merged.update(loader)
        if pin_memory is False:
            merged.pin_memory = False
        if persistent_workers is False or merged.get('num_workers', 0) == 0:
            merged.pop('persistent_workers', None)
        cfg[field] = merged
    return cfg


def build_runner(cfg: Config):
    """``Runner.from_cfg``; ``RUNNERS.build`` when ``runner_type`` is set."""
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    if 'runner_type' not in cfg:
        return Runner.from_cfg(cfg)
    return RUNNERS.build(cfg)


# --------------------------------------------------------------------------
# checkpoint vs model
# --------------------------------------------------------------------------
class StateDictReport:
    """Key-by-key comparison of a checkpoint with a model.

    Attributes:
        matched (list[str]): keys present in both with the same shape.
        missing (list[str]): model keys absent from the checkpoint.
        unexpected (list[str]): checkpoint keys the model does not have.
        mismatched (list[tuple]): ``(key, ckpt_shape, model_shape)``.
        num_model_keys (int): number of keys in the model's state_dict.
        backbone_like (str | None): the child module name (``'backbone'``)
            when the checkpoint's keys are that child's keys without its
            prefix, i.e. a backbone-only checkpoint.
    """

    def __init__(self,
                 matched,
                 missing,
                 unexpected,
                 mismatched,
                 num_model_keys,
                 backbone_like=None):
        self.matched = matched
        self.missing = missing
        self.unexpected = unexpected
        self.mismatched = mismatched
        self.num_model_keys = num_model_keys
        self.backbone_like = backbone_like

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def summary(self, limit: int = 5) -> str:
        parts = [
            f'{len(self.matched)} of {self.num_model_keys} model keys matched'
        ]
        if self.missing:
            parts.append(f'{len(self.missing)} missing from the checkpoint '
                         f'(e.g. {_quote_list(self.missing, limit)})')
        if self.unexpected:
            parts.append(
                f'{len(self.unexpected)} unexpected in the checkpoint '
                f'(e.g. {_quote_list(self.unexpected, limit)})')
        if self.mismatched:
            shown = ', '.join(
                f'{k!r}: checkpoint {tuple(a)} vs model {tuple(b)}'
                for k, a, b in self.mismatched[:limit])
            if len(self.mismatched) > limit:
                shown += f', ... ({len(self.mismatched) - limit} more)'
            parts.append(f'{len(self.mismatched)} with a different shape '
                         f'({shown})')
        return '; '.join(parts)


def _unwrap(model):
    from mmengine.model import is_model_wrapper
    return model.module if is_model_wrapper(model) else model


def compare_state_dict(model: torch.nn.Module,
                       state_dict: Dict[str, Any]) -> StateDictReport:
    """Compare ``state_dict`` with ``model.state_dict()`` without loading.

    A leading ``module.`` is stripped from checkpoint keys (as mmengine's
    ``load_checkpoint`` does), and the model's load-state-dict pre-hooks
    are run on a copy first, so conversions a model applies when loading
    (e.g. mmpretrain's ViT resizing ``pos_embed``) are taken into account.
    """
    model = _unwrap(model)
    ckpt = {re.sub(r'^module\.', '', k): v for k, v in state_dict.items()}
    scratch_missing: List[str] = []
    scratch_unexpected: List[str] = []
    scratch_errors: List[str] = []
    with _quiet():
        for name, module in model.named_modules():
            prefix = name + '.' if name else ''
            for hook in list(
                    getattr(module, '_load_state_dict_pre_hooks',
                            {}).values()):
                try:
                    hook(ckpt, prefix, {}, True, scratch_missing,
                         scratch_unexpected, scratch_errors)
                except Exception:
                    pass
    own = model.state_dict()
    matched, missing, mismatched = [], [], []
    for key, value in own.items():
        if key not in ckpt:
            missing.append(key)
            continue
        theirs = ckpt[key]
        shape = tuple(getattr(theirs, 'shape', ()))
        if shape != tuple(value.shape):
            mismatched.append((key, shape, tuple(value.shape)))
        else:
            matched.append(key)
    unexpected = [k for k in ckpt if k not in own]

    backbone_like = None
    if not matched and ckpt:
        for child, _ in model.named_children():
            hits = sum(f'{child}.{k}' in own for k in ckpt)
            if hits >= 0.9 * len(ckpt):
                backbone_like = child
                break
    return StateDictReport(matched, missing, unexpected, mismatched, len(own),
                           backbone_like)


# names of the modules that hold a class-dependent output layer
_HEAD_PREFIXES = ('head.', 'decode_head.', 'auxiliary_head.', 'bbox_head.',
                  'roi_head.', 'cls_head.', 'mask_head.')
_CLASSIFIER_LAYER = re.compile(
    r'(^|\.)(fc|fc_cls|cls|cls_score|classifier|conv_seg|conv_cls|'
    r'head)\.(weight|bias)$')


def classifier_shape_mismatches(
        report: StateDictReport) -> List[Tuple[str, tuple, tuple]]:
    """Mismatched weights that look like a classifier of another size.

    A weight qualifies when it lies in a head (``head.``, ``decode_head.``,
    ...) or is an output layer (``fc``, ``fc_cls``, ``conv_seg``, ...), and
    its shapes differ in the first (class) dimension only.

    Args:
        report (StateDictReport): From :func:`compare_state_dict`.

    Returns:
        list[tuple]: ``(key, checkpoint_shape, model_shape)``.
    """
    found = []
    for key, ckpt_shape, model_shape in report.mismatched:
        ckpt_shape, model_shape = tuple(ckpt_shape), tuple(model_shape)
        if not ckpt_shape or len(ckpt_shape) != len(model_shape):
            continue
        if ckpt_shape[1:] != model_shape[1:]:
            continue
        if key.startswith(_HEAD_PREFIXES) or _CLASSIFIER_LAYER.search(key):
            found.append((key, ckpt_shape, model_shape))
    return found


def num_classes_mismatch_lines(report: StateDictReport,
                               filename: str) -> List[str]:
    """Message lines naming a mismatched number of classes, if any.

    Example: ``number of classes differs: 'head.fc.weight' has 9 classes
    in the checkpoint (shape (9, 32)) but 2 in the model (shape (2,
    32))``, followed by the two ways out (set ``num_classes`` or load only
    the backbone).

    Args:
        report (StateDictReport): From :func:`compare_state_dict`.
        filename (str): The checkpoint, for the message.

    Returns:
        list[str]: Empty when no classifier weight differs in size.
    """
    found = classifier_shape_mismatches(report)
    if not found:
        return []
    lines = [
        f'number of classes differs: {key!r} has {a[0]} classes in the '
        f'checkpoint (shape {a}) but {b[0]} in the model (shape {b})'
        for key, a, b in found
    ]
    heads = sorted({key.split('.', 1)[0] for key, _, _ in found})
    num = found[0][1][0]
    lines.append(
        f'Set num_classes={num} in model.{heads[0]} (and in the data '
        'preprocessor / data set) to use this head, or load only the '
        "backbone with model.backbone.init_cfg=dict(type='Pretrained', "
        f"prefix='backbone.', checkpoint={filename!r}) and train a new "
        'head.')
    return lines


def _mismatch_message(filename: str, config_path: str, report: StateDictReport,
                      purpose: str) -> str:
    lines = [
        f'checkpoint {filename!r} does not match the model built from '
        f'config {config_path!r}: {report.summary()}.'
    ]
    lines += num_classes_mismatch_lines(report, filename)
    if report.backbone_like:
        child = report.backbone_like
        lines.append(
            f"Its keys are the model's {child!r} weights without the "
            f"'{child}.' prefix, i.e. a {child}-only checkpoint: load it "
            f"through model.{child}.init_cfg=dict(type='Pretrained', "
            f"checkpoint={filename!r}) instead of {purpose}.")
    else:
        lines.append(
            f'Use the config that trained this checkpoint; or, to reuse a '
            f'pretraining checkpoint in another model, extract its backbone '
            f'with `python {EXTRACT_BACKBONE} {filename} backbone.pth` and '
            "load it through model.backbone.init_cfg=dict(type='Pretrained', "
            "prefix='backbone.', checkpoint='backbone.pth').")
    return '\n'.join(lines)


def check_checkpoint(model: torch.nn.Module,
                     filename: str,
                     config_path: str,
                     strict: bool = True,
                     purpose: str = 'testing it') -> StateDictReport:
    """Check that ``filename`` fits ``model`` before it is loaded.

    The checkpoint goes through ``mmengine.runner.checkpoint._load_checkpoint``
    (mmssl's weights-only loader for local files).

    Args:
        model: the built model (a DDP wrapper is unwrapped).
        filename: checkpoint path or URL.
        config_path: the config file, for the message.
        strict: if True any missing, unexpected or differently shaped key
            is an error (testing, resuming). If False (``load_from`` for
            fine-tuning, where a new head is normal) it is an error only when
            fewer than half of the model's keys match; otherwise the report
            is logged as a warning.
        purpose: how the checkpoint was going to be used, for the message.

    Raises:
        ToolError: the checkpoint file does not exist.
        CheckpointMismatchError: see ``strict``.
    """
    from mmengine.runner.checkpoint import _load_checkpoint
    if '://' not in filename and not osp.isfile(osp.expanduser(filename)):
        raise ToolError(f'checkpoint file {filename!r} does not exist')
    with _quiet():
        checkpoint = _load_checkpoint(filename, map_location='cpu')
    if not isinstance(checkpoint, dict):
        raise ToolError(f'checkpoint {filename!r} holds a '
                        f'{type(checkpoint).__name__}, not a dict of weights')
    state_dict = checkpoint.get('state_dict', checkpoint)
    report = compare_state_dict(model, state_dict)
    if report.ok:
        return report
    severe = 2 * len(report.matched) < report.num_model_keys
    message = _mismatch_message(filename, config_path, report, purpose)
    if strict or severe:
        raise CheckpointMismatchError(message, report)
    print_log(
        message.replace('does not match', 'only partly matches', 1) +
        ' Loading the matching weights.',
        logger='current',
        level=logging.WARNING)
    return report


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
