# Copyright (c) mmssl contributors. All rights reserved.
"""The tools import the installed package; none edits ``sys.path``.

``tools/setup_env.sh`` installs mmssl (editable), so ``import mmssl`` works
from any folder; a script that put the checkout on ``sys.path`` itself
could import a different mmssl from the one installed.
"""
import glob
import os.path as osp
import re

PATH_EDIT = re.compile(r'sys\.path\.(insert|append|extend)\(|sys\.path\s*\+?=')


def test_no_tool_edits_sys_path(tools_dir):
    scripts = sorted(
        glob.glob(osp.join(tools_dir, '**', '*.py'), recursive=True))
    assert len(scripts) > 15
    offenders = [
        osp.relpath(path, tools_dir) for path in scripts
        if PATH_EDIT.search(open(path).read())
    ]
    assert offenders == [], ('scripts that edit sys.path instead of '
                             f'importing the installed mmssl: {offenders}')
