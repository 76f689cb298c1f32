# Copyright (c) mmssl contributors. All rights reserved.
"""collect_env: the stack's versions and an mmcv-ops smoke test."""
import os.path as osp
import runpy
from importlib import metadata

import mmcv.ops

import mmssl
from mmssl.utils.collect_env import collect_env


def test_versions_and_ops():
    env = collect_env()
    for name in ('mmcv', 'mmengine', 'mmpretrain', 'mmdet', 'mmsegmentation',
                 'diffusers', 'open_clip_torch', 'numpy'):
        assert env[name] == metadata.version(name), name
    assert 'PyTorch' in env  # mmengine's part
    # the second box overlaps the first by IoU 0.81 > 0.5: only box 0 stays
    assert env['mmcv ops'] == 'ok (nms kept [0])'
    assert env['mmssl'] == mmssl.__version__
    assert list(env)[-1] == 'mmssl'


def test_missing_package_and_broken_ops_are_reported(monkeypatch):
    real_version = metadata.version

    def version(name):
        if name == 'diffusers':
            raise metadata.PackageNotFoundError(name)
        return real_version(name)

    def broken_nms(*args, **kwargs):
        raise RuntimeError('nms_impl: not compiled with CPU support')

    monkeypatch.setattr(metadata, 'version', version)
    monkeypatch.setattr(mmcv.ops, 'nms', broken_nms)
    env = collect_env()
    assert 'diffusers' not in env and 'mmdet' in env
    assert env['mmcv ops'] == ("NOT AVAILABLE: RuntimeError('nms_impl: not "
                               "compiled with CPU support')")


def test_check_env_tool_prints_it(capsys):
    tool = osp.join(
        osp.dirname(__file__), '..', '..', 'tools', 'misc', 'check_env.py')
    runpy.run_path(tool, run_name='__main__')
    lines = capsys.readouterr().out.splitlines()
    assert f'mmssl: {mmssl.__version__}' == lines[-1]
    assert 'mmcv ops: ok (nms kept [0])' in lines
    assert f"mmengine: {metadata.version('mmengine')}" in lines
