# Copyright (c) mmssl contributors. All rights reserved.
"""Unknown ``type=`` names, reported where they are written.

mmengine's ``KeyError('X is not in the scope::name registry ...')`` becomes
an :class:`~mmssl.engine.tool_errors.UnknownTypeError` naming the config
file, where the type is written, the registry and scope searched and the
closest registered names (:func:`unknown_type_error`,
:func:`friendly_errors`).
"""
import contextlib
import difflib
import re
import sys
from typing import Any, Iterator, List, Optional, Tuple

from mmengine.config import Config

from .tool_errors import ToolError, UnknownTypeError, _quiet

__all__ = ['unknown_type_error', 'friendly_errors']

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
    custom = ('or, for a module of your own, add custom_imports=dict('
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
