# Copyright (c) mmssl contributors. All rights reserved.
"""tools/analysis_tools/subtuning_search.py: profile and greedy outputs on a
table of accuracies, one real tiny search, the cache and the errors."""
import json
import os
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.logging import MMLogger

import mmssl.analysis.subtuning_search as search
from mmssl.analysis.subtuning_search import SearchError

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(
    REPO, 'configs', 'subtuning',
    'subtuning_resnet18-tiny-simclr_1xb64-coslr-10e_embedded.py')
TINY = [
    'model.backbone.init_cfg=None', 'train_cfg.max_epochs=1',
    'train_dataloader.dataset.fraction=0.05', 'train_dataloader.num_workers=0',
    'train_dataloader.persistent_workers=False',
    'train_dataloader.batch_size=16'
]
TWO = ['--blocks', 'layer4.0', 'layer4.1']
TABLE = {
    (): 0.40,
    ('layer3.1', ): 0.50,
    ('layer4.0', ): 0.55,
    ('layer4.1', ): 0.60,
    ('layer3.1', 'layer4.0'): 0.57,
    ('layer4.0', 'layer4.1'): 0.66,
    ('layer3.1', 'layer4.1'): 0.62,
    ('layer3.1', 'layer4.0', 'layer4.1'): 0.64,
}
PNG = b'\x89PNG\r\n\x1a\n'


@pytest.fixture
def tool(load_tool_module, monkeypatch):
    # the config reads data/embedded relative to the repository
    monkeypatch.chdir(REPO)
    return load_tool_module('analysis_tools/subtuning_search.py')


@pytest.fixture
def table_runs(monkeypatch):
    """Replace training by ``TABLE`` (mmpretrain reports percent)."""
    calls = []

    def fake(cfg, config_path='<config>', stdout_file=None):
        subset = tuple(cfg.model.trainable_blocks)
        calls.append(subset)
        return {'accuracy/top1': 100 * TABLE[subset]}

    monkeypatch.setattr(search, 'train_run', fake)
    return calls


def _main(tool, mode, work_dir, *extra):
    return tool.main([
        mode, CONFIG, '--work-dir',
        str(work_dir), '--cfg-options', 'model.backbone.init_cfg=None', *extra
    ])


def test_profile_writes_json_and_picture(tool, table_runs, tmp_path):
    blocks = ['layer3.1', 'layer4.0', 'layer4.1']
    report = _main(tool, 'profile', tmp_path, '--pairs', '--blocks', *blocks)
    saved = json.load(open(tmp_path / 'profile.json'))
    assert saved == json.loads(json.dumps(report))
    assert saved['blocks'] == blocks
    assert saved['single'] == {
        'layer3.1': 0.50,
        'layer4.0': 0.55,
        'layer4.1': 0.60
    }
    assert saved['pairs'] == {
        'layer3.1+layer4.0': 0.57,
        'layer4.0+layer4.1': 0.66
    }
    assert (saved['linear_probe'], saved['all_blocks']) == (0.40, 0.64)
    assert sorted(saved['runs']) == sorted([
        'none', 'layer3.1', 'layer4.0', 'layer4.1', 'layer3.1+layer4.0',
        'layer4.0+layer4.1', 'layer3.1+layer4.0+layer4.1'
    ])
    assert 'val split was not used' in saved['data']
    assert saved['trained_runs'] == len(table_runs) == 7
    assert (tmp_path / 'profile.png').read_bytes()[:8] == PNG
    assert osp.isfile(tmp_path / 'profile' / 'layer4.1' / 'result.json')


def test_greedy_writes_history_picture_and_config_snippet(
        tool, table_runs, tmp_path):
    snippet = tmp_path / 'chosen.py'
    report = _main(tool, 'greedy', tmp_path, '--blocks', 'layer3.1',
                   'layer4.0', 'layer4.1', '--eps', '0.03', '--snippet',
                   str(snippet))
    saved = json.load(open(tmp_path / 'greedy.json'))
    # 0.40 -> +layer4.1 0.60 -> +layer4.0 0.66 -> +layer3.1 0.64 (within eps)
    assert saved['selected'] == report['selected'] == ['layer4.0', 'layer4.1']
    assert saved['accuracy'] == pytest.approx(0.66)
    assert [h['block'] for h in saved['history']
            ] == [None, 'layer4.1', 'layer4.0', 'layer3.1']
    assert saved['history'][1]['candidates'] == {
        'layer3.1': 0.50,
        'layer4.0': 0.55,
        'layer4.1': 0.60
    }
    assert (saved['eps'], saved['start']) == (0.03, 'non')
    assert (tmp_path / 'greedy.png').read_bytes()[:8] == PNG
    assert saved['snippet'] == str(snippet)
    cfg = Config.fromfile(str(snippet))
    assert cfg.model.trainable_blocks == ['layer4.0', 'layer4.1']
    assert cfg.model.type == 'mmssl.SubTuningClassifier'  # via _base_
    text = snippet.read_text()
    assert '0.6600' in text and 'greedy' in text and '--eps 0.03' in text
    assert 'selection data: 5-fold split' in text
    # the same search again: every subset comes from the cache
    table_runs.clear()
    again = _main(tool, 'greedy', tmp_path, '--blocks', 'layer3.1', 'layer4.0',
                  'layer4.1', '--eps', '0.03')
    assert table_runs == [] and again['trained_runs'] == 0
    assert again['selected'] == ['layer4.0', 'layer4.1']
    assert osp.isfile(tmp_path / 'greedy_blocks.py')


def test_real_tiny_greedy_search(tool, tmp_path):
    report = tool.main([
        'greedy', CONFIG, '--work-dir',
        str(tmp_path), '--cfg-options', *TINY, *TWO
    ])
    for name in ('greedy.json', 'greedy.png', 'greedy_blocks.py'):
        assert os.path.getsize(tmp_path / name) > 0
    saved = json.load(open(tmp_path / 'greedy.json'))
    trained = saved['trained_runs']
    assert 3 <= trained <= 4 and len(saved['runs']) == trained
    for record in saved['runs'].values():
        assert 0. <= record['accuracy'] <= 1.
        run = record['runs']['fold0/seed0']
        assert run == record['accuracy']
    assert 0. <= saved['accuracy'] <= 1.
    assert set(saved['selected']) <= {'layer4.0', 'layer4.1'}
    assert Config.fromfile(
        str(tmp_path /
            'greedy_blocks.py')).model.trainable_blocks == saved['selected']
    cached = json.load(open(tmp_path / 'greedy' / 'none' / 'result.json'))
    run = cached['runs']['fold0/seed0']
    # mmpretrain reports percent; the search keeps fractions
    assert run['metrics']['accuracy/top1'] == pytest.approx(100 *
                                                            run['accuracy'])
    assert osp.isfile(osp.join(run['work_dir'], 'stdout.log'))
    # the runs' loggers are released
    assert not [n for n in MMLogger._instance_dict if 'subtuning-' in n]
    # run again: nothing is trained
    assert tool.main([
        'greedy', CONFIG, '--work-dir',
        str(tmp_path), '--cfg-options', *TINY, *TWO
    ])['trained_runs'] == 0
    assert report['selected'] == saved['selected']


def test_errors(tool, table_runs, tmp_path, monkeypatch, capsys):
    with pytest.raises(
            SearchError,
            match=r"'layer9.0' is not a block of "
            r'ResNet; valid names .*layer1\.0.*layer4\.1'):
        _main(tool, 'profile', tmp_path, '--blocks', 'layer9.0')
    plain = tmp_path / 'plain.py'
    plain.write_text(f'_base_ = [{CONFIG!r}]\n'
                     "model = dict(type='ImageClassifier')\n")
    with pytest.raises(SearchError, match='not a SubTuningClassifier'):
        tool.main(['greedy', str(plain), '--work-dir', str(tmp_path)])
    with pytest.raises(SystemExit):
        _main(tool, 'profile', tmp_path, '--cv', '--use-val-split')
    assert 'not allowed with argument' in capsys.readouterr().err

    def no_top1(cfg, config_path='<config>', stdout_file=None):
        return {'accuracy/top5': 90.0}

    monkeypatch.setattr(search, 'train_run', no_top1)
    with pytest.raises(SearchError, match='reported no accuracy/top1'):
        _main(tool, 'greedy', tmp_path, *TWO)
