# Copyright (c) mmssl contributors. All rights reserved.
"""OpenMMLab packaging: configs, tools and model-index.yml in ``mmssl/.mim``.

A built wheel carries copies (what ``mim train mmssl CONFIG``, ``mim search
mmssl`` and ``mmssl::`` config bases read from the installed package); an
editable install gets symlinks to the checkout.
"""
import glob
import importlib.util
import os
import os.path as osp
import shutil
import subprocess
import sys
import textwrap
import zipfile

import pytest

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..'))
MAE_TINY = 'configs/mae/mae_vit-tiny-p8_1xb64-coslr-30e_embedded.py'

#: what a copy of the checkout to build from leaves out: top-level folders
#: that are no source, and caches / generated files anywhere
_NOT_SOURCE_TOP = ('.git', '.venv', 'data', 'work_dirs', 'build', 'dist')
_NOT_SOURCE = shutil.ignore_patterns('__pycache__', '*.egg-info', '.mim',
                                     '.pytest_cache', '*.pyc')


def _ignore(folder: str, names: list) -> set:
    ignored = set(_NOT_SOURCE(folder, names))
    if osp.samefile(folder, ROOT):
        ignored |= set(names) & set(_NOT_SOURCE_TOP)
    return ignored


def _setup_module():
    spec = importlib.util.spec_from_file_location('mmssl_setup',
                                                  osp.join(ROOT, 'setup.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # not __main__: setup() does not run
    return module


def test_editable_install_links_the_checkout(tmp_path, monkeypatch):
    setup = _setup_module()
    for name in ('configs/mae', 'tools', 'mmssl'):
        os.makedirs(tmp_path / name)
    (tmp_path / 'configs/mae/a.py').write_text('x = 1\n')
    (tmp_path / 'model-index.yml').write_text('Import: []\n')
    monkeypatch.setattr(setup, 'HERE', str(tmp_path))
    # other commands leave mmssl/.mim alone
    monkeypatch.setattr(sys, 'argv', ['setup.py', 'egg_info'])
    setup.add_mim_extension()
    assert not osp.exists(tmp_path / 'mmssl/.mim')
    for command in ('develop', 'editable_wheel'):
        monkeypatch.setattr(sys, 'argv', ['setup.py', command])
        setup.add_mim_extension()
        mim = tmp_path / 'mmssl/.mim'
        for name in setup.MIM_FILES:
            assert osp.islink(mim / name), name
            assert osp.samefile(mim / name, tmp_path / name)
        assert (mim / 'configs/mae/a.py').read_text() == 'x = 1\n'
        # generated, so git ignores it
        assert (mim / '.gitignore').read_text().strip().endswith('*')


def _copy_checkout(dest) -> str:
    shutil.copytree(ROOT, dest, ignore=_ignore)
    return str(dest)


def test_pep660_editable_build_links_the_copy(tmp_path):
    """``pip install -e`` (PEP 660: setuptools' ``build_editable``) makes
    the symlinks in the source tree."""
    src = _copy_checkout(tmp_path / 'src')
    code = ('from setuptools import build_meta; '
            f'build_meta.build_editable({str(tmp_path / "dist")!r})')
    proc = subprocess.run([sys.executable, '-c', code],
                          cwd=src,
                          capture_output=True,
                          text=True,
                          timeout=300)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    mim = osp.join(src, 'mmssl', '.mim')
    for name in ('configs', 'tools', 'model-index.yml'):
        assert osp.islink(osp.join(mim, name)), name
        assert osp.samefile(osp.join(mim, name), osp.join(src, name))


@pytest.fixture(scope='module')
def wheel(tmp_path_factory):
    """A wheel built from a copy of the checkout (the checkout itself is
    not touched)."""
    tmp = tmp_path_factory.mktemp('wheel')
    src = _copy_checkout(tmp / 'src')
    proc = subprocess.run([
        sys.executable, '-m', 'pip', 'wheel', src, '--no-deps',
        '--no-build-isolation', '--disable-pip-version-check', '-q', '-w',
        str(tmp / 'dist')
    ],
                          capture_output=True,
                          text=True,
                          timeout=300)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    (path, ) = glob.glob(str(tmp / 'dist' / 'mmssl-*.whl'))
    return path


def test_wheel_ships_configs_tools_and_model_index(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert 'mmssl/.mim/model-index.yml' in names
    assert 'mmssl/.mim/' + MAE_TINY in names
    assert 'mmssl/.mim/tools/train.py' in names
    assert 'mmssl/.mim/tools/dist_train.sh' in names
    # every config and metafile of the checkout
    for path in glob.glob(
            osp.join(ROOT, 'configs', '**', '*.*'), recursive=True):
        rel = osp.relpath(path, ROOT).replace(os.sep, '/')
        if rel.endswith(('.py', '.yml')):
            assert 'mmssl/.mim/' + rel in names, rel
    # only configs, scripts and metadata; no caches
    assert not [n for n in names if '__pycache__' in n or n.endswith('.pyc')]
    assert not [
        n for n in names if n.startswith('mmssl/.mim/') and not n.endswith(
            ('.py', '.yml', '.sh'))
    ]


def test_installed_wheel_resolves_mmssl_bases_and_mim_files(wheel, tmp_path):
    """From the installed layout (not the checkout): ``mmssl::`` bases,
    what ``mim search`` loads (model-index.yml and its metafiles) and what
    ``mim train`` runs (tools/train.py, a config found by its name)."""
    site = tmp_path / 'site'
    proc = subprocess.run([
        sys.executable, '-m', 'pip', 'install', wheel, '--no-deps',
        '--disable-pip-version-check', '-q', '--target',
        str(site)
    ],
                          capture_output=True,
                          text=True,
                          timeout=300)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    (tmp_path / 'my_cfg.py').write_text(
        f"_base_ = 'mmssl::{MAE_TINY[len('configs/'):]}'\n"
        'model = dict(backbone=dict(mask_ratio=0.5))\n')
    code = textwrap.dedent(f"""
        import os.path as osp
        import mmssl
        site = {str(site)!r}
        assert mmssl.__file__.startswith(site), mmssl.__file__
        try:
            from mmssl.utils.config import (enable_mmssl_config_prefix,
                                            mmssl_configs_root,
                                            resolve_mmssl_config)
        except ImportError:
            from mmssl.engine.runner_utils import (
                enable_mmssl_config_prefix, mmssl_configs_root,
                resolve_mmssl_config)
        mim = osp.join(site, 'mmssl', '.mim')
        assert mmssl_configs_root() == osp.join(mim, 'configs')
        base = resolve_mmssl_config('mmssl::{MAE_TINY[len('configs/'):]}')
        assert base.startswith(mim), base
        enable_mmssl_config_prefix()
        from mmengine.config import Config
        cfg = Config.fromfile('my_cfg.py')
        assert cfg.model.type == 'mmssl.MAE', cfg.model.type
        assert cfg.model.backbone.mask_ratio == 0.5
        # mim search: model-index.yml and the metafiles it imports
        from modelindex.load_model_index import load
        index = load(osp.join(mim, 'model-index.yml'))
        assert len(index.models) > 0
        for model in index.models:
            assert model.config, model.name
            assert osp.isfile(osp.join(mim, model.config)), model.config
        # mim train: the training script and a config found by its name
        assert osp.isfile(osp.join(mim, 'tools', 'train.py'))
        name = osp.basename({MAE_TINY!r})
        import glob
        assert glob.glob(osp.join(mim, 'configs', '**', name),
                         recursive=True)
        print('ok', len(index.models))
        """)
    env = dict(os.environ, PYTHONPATH=str(site))
    proc = subprocess.run([sys.executable, '-c', code],
                          cwd=str(tmp_path),
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=300)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert proc.stdout.strip().startswith('ok')
