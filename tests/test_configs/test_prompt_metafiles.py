# Copyright (c) mmssl contributors. All rights reserved.
"""configs/clip, configs/coop and configs/subpt: README, metafile, index."""
import glob
import os.path as osp

import pytest
import yaml

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
FOLDERS = ['clip', 'coop', 'subpt']


@pytest.mark.parametrize('folder', FOLDERS)
def test_folder_has_readme_and_metafile_in_the_index(folder):
    base = osp.join(ROOT, 'configs', folder)
    readme = open(osp.join(base, 'README.md')).read()
    for part in ('## Abstract', '## Results', '## Citation', '```bibtex'):
        assert part in readme, (folder, part)
    with open(osp.join(ROOT, 'model-index.yml')) as f:
        index = yaml.safe_load(f)['Import']
    assert f'configs/{folder}/metafile.yml' in index
    with open(osp.join(base, 'metafile.yml')) as f:
        meta = yaml.safe_load(f)
    collections = {c['Name'] for c in meta['Collections']}
    for c in meta['Collections']:
        assert osp.isfile(osp.join(ROOT, c['README']))
        assert osp.isfile(osp.join(ROOT, c['Code']['URL']))
    names = [m['Name'] for m in meta['Models']]
    assert len(names) == len(set(names))
    configs = set()
    for m in meta['Models']:
        assert m['In Collection'] in collections
        assert m['Config'].startswith(f'configs/{folder}/')
        assert osp.isfile(osp.join(ROOT, m['Config'])), m['Config']
        assert osp.basename(m['Config']) == m['Name'] + '.py'
        configs.add(m['Config'])
        for res in m['Results'] or []:
            assert res['Metrics'] and all(
                isinstance(v, (int, float)) for v in res['Metrics'].values())
            # every measured figure appears in the folder's README
            for v in res['Metrics'].values():
                assert f'{v:.1f}' in readme, (m['Name'], v)
    # every config of the folder has an entry
    files = {osp.relpath(p, ROOT) for p in glob.glob(osp.join(base, '*.py'))}
    assert files == configs


def test_models_are_listed_once_across_the_prompt_metafiles():
    names = []
    for folder in FOLDERS:
        with open(osp.join(ROOT, 'configs', folder, 'metafile.yml')) as f:
            names += [m['Name'] for m in yaml.safe_load(f)['Models']]
    assert len(names) == len(set(names))
