# Copyright (c) mmssl contributors. All rights reserved.
"""mmssl.visualization sits on mmssl.utils and the hosts only."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / 'mmssl' / 'visualization'
ALLOWED = ('mmssl.utils', 'mmssl.registry', 'mmssl.visualization')


def test_visualization_imports_only_utils_and_hosts():
    files = sorted(PACKAGE.glob('*.py'))
    assert files
    bad = []
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or '']
            else:
                continue
            bad += [
                f'{path.name}: {name}' for name in names if
                name.split('.')[0] == 'mmssl' and not name.startswith(ALLOWED)
            ]
    assert bad == []
