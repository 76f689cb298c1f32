# Copyright (c) mmssl contributors. All rights reserved.
"""The package's shape, checked on its source (see ``docs/design.md``).

The import graph of the ``mmssl`` modules is read with :mod:`ast` from every
``import`` statement, including the ones inside functions (a lazy import is
still a dependency, only a hidden one). Nothing is imported to build it, so
the check does not depend on the optional extras installed.

Six rules:

* ``mmssl.apis`` is the top floor: no module outside it imports it.
* ``mmssl.analysis`` is the floor below: only ``mmssl.apis`` imports it.
* ``mmssl.engine`` is below them: only they import it (and
  ``register_all_modules``, which imports every package).
* No import cycles among the ``mmssl`` modules.
* No cycle among what loading a module runs: its load-time imports and the
  package ``__init__`` files above each of them.
* No file in ``mmssl/`` over :data:`MAX_LINES` lines.
"""
import ast
import os.path as osp
from pathlib import Path
from typing import Dict, List, Set

import pytest

ROOT = Path(__file__).resolve().parents[1] / 'mmssl'
MAX_LINES = 600


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix('').parts)
    if parts[-1] == '__init__':
        parts = parts[:-1]
    return '.'.join(parts)


def _modules() -> Dict[str, Path]:
    return {_module_name(p): p for p in sorted(ROOT.rglob('*.py'))}


def _resolve(name: str, known: Dict[str, Path]) -> str:
    """The longest known module that ``name`` starts with ('' if none)."""
    while name and name not in known:
        name = name.rpartition('.')[0]
    return name


def _load_time_statements(body: List[ast.stmt]) -> List[ast.stmt]:
    """The statements run when a module is loaded: the module's own, and
    those of its top-level ``if`` / ``try`` blocks (not function or class
    bodies)."""
    out: List[ast.stmt] = []
    for node in body:
        out.append(node)
        if isinstance(node, (ast.If, ast.Try)):
            for block in (node.body, node.orelse,
                          getattr(node, 'finalbody', [])):
                out += _load_time_statements(block)
            for handler in getattr(node, 'handlers', []):
                out += _load_time_statements(handler.body)
    return out


def _imports(module: str,
             path: Path,
             known: Dict[str, Path],
             load_time: bool = False) -> Set[str]:
    """The mmssl modules that ``module`` (file ``path``) imports; with
    ``load_time`` only the imports run when it is loaded."""
    is_pkg = path.name == '__init__.py'
    package = module if is_pkg else module.rpartition('.')[0]
    out = set()
    tree = ast.parse(path.read_text(), str(path))
    nodes = _load_time_statements(tree.body) if load_time else ast.walk(tree)
    for node in nodes:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split('.')[0] == 'mmssl':
                    out.add(_resolve(alias.name, known))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split('.')
                base = base[:len(base) - node.level + 1]
                stem = '.'.join(base + ([node.module] if node.module else []))
            else:
                stem = node.module or ''
            if stem.split('.')[0] != 'mmssl':
                continue
            for alias in node.names:
                # ``from pkg import sub`` names the submodule when there is
                # one, else an attribute of ``pkg`` itself.
                sub = f'{stem}.{alias.name}'
                out.add(sub if sub in known else _resolve(stem, known))
    out.discard('')
    out.discard(module)
    return out


def import_graph() -> Dict[str, Set[str]]:
    known = _modules()
    return {m: _imports(m, p, known) for m, p in known.items()}


def load_time_graph() -> Dict[str, Set[str]]:
    """What loading each module runs: its load-time imports and, for each,
    the packages above it (Python runs ``a/b/__init__.py`` before
    ``a/b/c.py``; the root ``mmssl`` package, which imports nothing of its
    own, is left out)."""
    known = _modules()
    graph = {}
    for m, p in known.items():
        deps = _imports(m, p, known, load_time=True)
        for d in list(deps):
            parts = d.split('.')
            deps |= {
                '.'.join(parts[:i])
                for i in range(2, len(parts))
                if not _in(m, '.'.join(parts[:i]))
            }
        graph[m] = deps
    return graph


def _cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    found: List[List[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


#: package -> the packages that may import it (besides itself);
#: ``register_all_modules`` (``mmssl.utils.setup_env``) imports every package
TOP_FLOORS = {
    'mmssl.apis': (),
    'mmssl.analysis': ('mmssl.apis', ),
    'mmssl.engine': ('mmssl.apis', 'mmssl.analysis', 'mmssl.utils.setup_env'),
}


def _in(module: str, package: str) -> bool:
    return module == package or module.startswith(package + '.')


@pytest.mark.parametrize('package', list(TOP_FLOORS))
def test_nothing_below_a_top_floor_imports_it(package):
    allowed = (package, ) + TOP_FLOORS[package]
    graph = import_graph()
    bad = sorted(f'{m} imports {d}' for m, deps in graph.items()
                 if not any(_in(m, a) for a in allowed) for d in deps
                 if _in(d, package))
    assert not bad, (f'{package} may be imported only by '
                     f'{", ".join(allowed)}; move what these modules need '
                     'below it:\n  ' + '\n  '.join(bad))


def test_no_import_cycles():
    cycles = _cycles(import_graph())
    assert not cycles, ('import cycles among mmssl modules:\n  ' +
                        '\n  '.join(' <-> '.join(c) for c in cycles))


def test_no_file_over_max_lines():
    long = sorted(f'{osp.relpath(p, ROOT.parent)}: {n} lines'
                  for p in ROOT.rglob('*.py')
                  for n in [len(p.read_text().splitlines())] if n > MAX_LINES)
    assert not long, (f'files over {MAX_LINES} lines; split them by '
                      'concern:\n  ' + '\n  '.join(long))


def test_graph_sees_relative_and_lazy_imports(tmp_path):
    """The reader itself: relative, ``from . import``, function-level."""
    pkg = tmp_path / 'mmssl'
    (pkg / 'a').mkdir(parents=True)
    (pkg / '__init__.py').write_text('')
    (pkg / 'a' / '__init__.py').write_text('from . import b\n')
    (pkg / 'a' / 'b.py').write_text('def f():\n    from ..c import x\n')
    (pkg / 'c.py').write_text('import mmssl.a.b\nx = 1\n')
    known = {_module_name_in(p, pkg): p for p in sorted(pkg.rglob('*.py'))}
    graph = {m: _imports(m, p, known) for m, p in known.items()}
    assert graph['mmssl.a'] == {'mmssl.a.b'}
    assert graph['mmssl.a.b'] == {'mmssl.c'}
    assert graph['mmssl.c'] == {'mmssl.a.b'}
    assert _cycles(graph) == [['mmssl.a.b', 'mmssl.c']]


def _module_name_in(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix('').parts)
    if parts[-1] == '__init__':
        parts = parts[:-1]
    return '.'.join(parts)


def test_no_load_time_import_cycles():
    """A cycle through a package's ``__init__`` breaks the import of a
    module that starts it (``cannot import name ... from partially
    initialized module``), even when importing the whole package in
    another order works; e.g. an evaluation protocol importing
    ``mmssl.engine.tool_errors`` runs ``mmssl/engine/__init__.py``, whose
    hooks import the evaluation protocols."""
    cycles = _cycles(load_time_graph())
    assert not cycles, (
        'import cycles when loading mmssl modules (package __init__ files '
        'included); make one of these imports lazy or move the name:\n  ' +
        '\n  '.join(' <-> '.join(c) for c in cycles))
