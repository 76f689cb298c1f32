# Copyright (c) mmssl contributors. All rights reserved.
"""The package's shape, checked on its source (see ``docs/design.md``).

The import graph of the ``mmssl`` modules is read with :mod:`ast` from every
``import`` statement, including the ones inside functions (a lazy import is
still a dependency, only a hidden one). Nothing is imported to build it, so
the check does not depend on the optional extras installed.

Four rules:

* ``mmssl.apis`` is the top floor: no module outside it imports it.
* ``mmssl.analysis`` is the floor below: only ``mmssl.apis`` imports it.
* No import cycles among the ``mmssl`` modules.
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


def _imports(module: str, path: Path, known: Dict[str, Path]) -> Set[str]:
    """The mmssl modules that ``module`` (file ``path``) imports."""
    is_pkg = path.name == '__init__.py'
    package = module if is_pkg else module.rpartition('.')[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
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


#: package -> the packages that may import it (besides itself)
TOP_FLOORS = {
    'mmssl.apis': (),
    'mmssl.analysis': ('mmssl.apis', ),
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
