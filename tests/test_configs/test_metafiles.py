# Copyright (c) mmssl contributors. All rights reserved.
"""The model index: every config is in a metafile, every metafile in
model-index.yml, and the entries are what ``mim search`` reads.

Rules (OpenMMLab's metafile format, as mmpretrain's):

* every config folder has a README.md and a metafile.yml, and
  model-index.yml imports every metafile;
* every config ``.py`` under ``configs/`` (outside ``_base_`` folders) is
  the ``Config`` of exactly one ``Models`` entry, and every ``Config`` path
  exists;
* every entry has ``Name`` (unique), ``In Collection`` (a collection of the
  index), ``Config`` and ``Metadata``; its ``Results`` are a list of
  ``Task`` / ``Dataset`` / ``Metrics`` with numeric metrics, or ``null``
  with a ``Comment`` that says why (a config that was never trained);
* modelindex (what mim uses) loads the index without errors.
"""
import glob
import os.path as osp
from functools import lru_cache

import pytest
import yaml

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
CONFIGS = osp.join(ROOT, 'configs')


def _rel(path: str) -> str:
    return osp.relpath(path, ROOT).replace('\\', '/')


def _config_files() -> list:
    files = glob.glob(osp.join(CONFIGS, '**', '*.py'), recursive=True)
    return sorted(_rel(f) for f in files if '_base_' not in _rel(f).split('/'))


def _folders() -> list:
    return sorted({f.split('/')[1] for f in _config_files()})


@lru_cache()
def _index() -> dict:
    with open(osp.join(ROOT, 'model-index.yml')) as f:
        return yaml.safe_load(f)


@lru_cache()
def _metafile(rel: str) -> dict:
    with open(osp.join(ROOT, rel)) as f:
        return yaml.safe_load(f) or {}


def _imported() -> list:
    return list(_index().get('Import', []))


def _models() -> list:
    out = []
    for rel in _imported():
        if osp.isfile(osp.join(ROOT, rel)):
            for model in _metafile(rel).get('Models') or []:
                out.append((rel, model))
    return out


def _collections() -> set:
    names = set()
    for rel in _imported():
        if osp.isfile(osp.join(ROOT, rel)):
            for col in _metafile(rel).get('Collections') or []:
                names.add(col.get('Name'))
    return names


@pytest.mark.parametrize('folder', _folders())
def test_every_config_folder_has_readme_and_metafile(folder):
    for name in ('README.md', 'metafile.yml'):
        assert osp.isfile(osp.join(CONFIGS, folder, name)), \
            f'configs/{folder}/{name} is missing'
    assert f'configs/{folder}/metafile.yml' in _imported(), \
        f'model-index.yml does not import configs/{folder}/metafile.yml'


def test_model_index_imports_existing_metafiles():
    imported = _imported()
    assert len(imported) == len(set(imported)), 'imported twice'
    for rel in imported:
        assert osp.isfile(osp.join(ROOT, rel)), f'{rel} does not exist'
    on_disk = {
        _rel(f)
        for f in glob.glob(osp.join(CONFIGS, '*', 'metafile.yml'))
    }
    missing = sorted(on_disk - set(imported))
    assert not missing, f'metafiles missing from model-index.yml: {missing}'


@pytest.mark.parametrize('folder', _folders())
def test_every_config_is_in_a_metafile(folder):
    listed = {}
    for rel, model in _models():
        listed.setdefault(model.get('Config'), []).append(rel)
    configs = [c for c in _config_files() if c.split('/')[1] == folder]
    missing = [c for c in configs if c not in listed]
    assert not missing, (f'{len(missing)} of {len(configs)} configs of '
                         f'configs/{folder} are in no metafile: {missing}')
    twice = [c for c in configs if len(listed[c]) > 1]
    assert not twice, f'listed more than once: {twice}'


def _check_entry(rel: str, model: dict, collections: set) -> list:
    name = model.get('Name')
    where = f'{rel}: {name}'
    errors = []
    for key in ('Name', 'In Collection', 'Config', 'Metadata'):
        if not model.get(key):
            errors.append(f'{where}: no {key}')
    config = model.get('Config')
    if config and not osp.isfile(osp.join(ROOT, config)):
        errors.append(f'{where}: Config {config} does not exist')
    col = model.get('In Collection')
    if col and col not in collections:
        errors.append(f'{where}: In Collection {col!r} is no collection')
    if 'Results' not in model:
        errors.append(f'{where}: no Results (null with a Comment if the '
                      'config was never trained)')
    results = model.get('Results')
    if results is None:
        if not model.get('Comment'):
            errors.append(f'{where}: Results null without a Comment')
        return errors
    if not isinstance(results, list) or not results:
        return errors + [f'{where}: Results must be a list or null']
    for res in results:
        for key in ('Task', 'Dataset', 'Metrics'):
            if not res.get(key):
                errors.append(f'{where}: a result without {key}')
        metrics = res.get('Metrics') or {}
        for metric, value in metrics.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                errors.append(f'{where}: metric {metric!r} = {value!r} is '
                              'not a number')
    return errors


def test_metafile_entries():
    collections = _collections()
    names = [m.get('Name') for _, m in _models()]
    dup = sorted({n for n in names if names.count(n) > 1})
    errors = [f'model names used twice: {dup}'] if dup else []
    for rel, model in _models():
        errors += _check_entry(rel, model, collections)
    assert not errors, '\n'.join(errors)


def test_modelindex_loads_the_index():
    """What ``mim search`` does with the installed model-index.yml."""
    load = pytest.importorskip('modelindex.load_model_index').load
    index = load(osp.join(ROOT, 'model-index.yml'))
    # README paths are relative to the repository root, the OpenMMLab
    # convention (mmpretrain's metafiles too); modelindex reads them
    # relative to the metafile
    errors = [
        e for e in index.check(silent=True) if 'Path to README file' not in e
    ]
    assert not errors, '\n'.join(errors)
    assert len(index.models) == len(_models())
