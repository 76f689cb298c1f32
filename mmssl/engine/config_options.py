# Copyright (c) mmssl contributors. All rights reserved.
"""Config files and ``--cfg-options`` of the tools, with readable errors.

* :func:`load_config`: a missing config file (or ``_base_`` file) is
  reported with the closest existing names; ``mmssl::<folder>/<file>``
  names a config of mmssl's ``configs/`` folder.
* :func:`merge_cfg_options`: a mistyped ``--cfg-options`` key is refused
  with the closest existing names and the fix; ``+KEY=VALUE`` adds a key on
  purpose.
* :class:`CfgOptionsAction`: a malformed ``--cfg-options`` item is an
  argparse error (usage + exit code 2), not a traceback.
"""
import argparse
import contextlib
import importlib
import inspect
from typing import Any, List, Optional, Sequence, Tuple

from mmengine.config import Config, DictAction
from mmengine.logging import print_log

from mmssl.utils.config import close_matches, read_config
from .tool_errors import CfgOptionsError, ConfigFileError, _quiet

__all__ = [
    'CFG_OPTIONS_HELP', 'CfgOptionsAction', 'load_config', 'merge_cfg_options',
    'positive_int'
]


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


def positive_int(text: str) -> int:
    """argparse ``type=`` of a count: an integer >= 1, else argparse's
    ``error: argument --x: 'y' is not a positive integer``."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f'{text!r} is not a positive integer')
    return value


def check_one_per_config(parser: argparse.ArgumentParser,
                         args: argparse.Namespace,
                         options: Sequence[str] = ('names', 'arm_options'),
                         configs: str = 'configs') -> None:
    """Exit through ``parser.error`` when a per-config list option (e.g.
    ``--names``, ``--arm-options``) does not give one value per config."""
    count = len(getattr(args, configs))
    for opt in options:
        given = getattr(args, opt, None)
        if given is not None and len(given) != count:
            parser.error(f'--{opt.replace("_", "-")} gives {len(given)} '
                         f'values for {count} configs')


def parse_options_text(text: str, what: str) -> dict:
    """``'KEY=VALUE KEY=VALUE'`` (or ``'-'`` for none) -> options dict.

    The values are read as ``--cfg-options`` reads them (numbers, bools,
    lists, tuples); for one config's own settings in a tool that runs
    several (``benchmark_train.py --arm-options``).

    Raises:
        ValueError: an item without ``=``, naming ``what`` and the item.
    """
    options = {}
    for item in ([] if text.strip() in ('', '-') else text.split()):
        key = item.split('=', 1)[0]
        if '=' not in item or not key.lstrip('+'):
            raise ValueError(
                f'{what}: expected KEY=VALUE items separated by spaces (or '
                f"'-' for none), e.g. 'compile=True "
                f"model.neck.channels_last=True', got {item!r}")
        options[key] = DictAction._parse_iterable(item.split('=', 1)[1])
    return options


def load_config(path: str) -> Config:
    """``Config.fromfile`` with a clear error for a missing/broken file.

    ``path`` may also be ``'mmssl::<folder>/<file>.py'`` (a config of
    mmssl's configs folder), as may the ``_base_`` files of the config.

    Raises:
        ConfigFileError: the file (or one of its ``_base_`` files) does not
            exist; the message lists similarly named config files.
    """
    try:
        return read_config(path)
    except FileNotFoundError as err:
        raise ConfigFileError(str(err)) from err


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
                close = close_matches(part, existing + args, n=3)
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
