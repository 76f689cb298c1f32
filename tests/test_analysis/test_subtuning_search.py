# Copyright (c) mmssl contributors. All rights reserved.
"""SubTuning search library: the data of the runs, the cache, the profile,
the greedy wrapper, the pictures, the snippet and the errors (no training:
the runs are replaced by a table)."""
import json
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.registry import DATASETS

import mmssl.analysis.subtuning_search as search
from mmssl.analysis.subtuning_search import (SearchError, SubsetEvaluator,
                                             subset_name, top1_fraction)
from mmssl.analysis.subtuning_select import (finetuning_profile, greedy_search,
                                             plot_greedy, plot_profile,
                                             write_snippet)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(
    REPO, 'configs', 'subtuning',
    'subtuning_resnet18-tiny-simclr_1xb64-coslr-10e_embedded.py')
TINY = {
    'model.backbone.init_cfg': None,
    'train_cfg.max_epochs': 1,
    'train_dataloader.dataset.fraction': 0.05,
    'train_dataloader.num_workers': 0,
    'train_dataloader.persistent_workers': False,
}
RESNET18_BLOCKS = [
    'layer1.0', 'layer1.1', 'layer2.0', 'layer2.1', 'layer3.0', 'layer3.1',
    'layer4.0', 'layer4.1'
]
# validation top-1 (fraction) of each subset of the two last blocks
TABLE = {
    (): 0.40,
    ('layer4.0', ): 0.55,
    ('layer4.1', ): 0.60,
    ('layer4.0', 'layer4.1'): 0.58,
}


@pytest.fixture(autouse=True)
def _repo_cwd(monkeypatch):
    # the config reads data/embedded relative to the repository
    monkeypatch.chdir(REPO)


def _build(ds_cfg):
    with DATASETS.switch_scope_and_registry('mmpretrain') as registry:
        return registry.build(ds_cfg)


def _paths(dataset):
    return [dataset.get_data_info(i)['img_path'] for i in range(len(dataset))]


class FakeRuns:
    """Stands in for :func:`train_run`: ``TABLE`` accuracy (percent) plus
    ``fold + seed`` hundredths, and records each call."""

    def __init__(self, table=TABLE, fail_at=None, metrics_key=None):
        self.table, self.fail_at, self.key = table, fail_at, metrics_key
        self.calls = []

    def __call__(self, cfg, config_path='<config>', stdout_file=None):
        subset = tuple(cfg.model.trainable_blocks)
        data = cfg.train_dataloader.dataset
        fold = data.get('fold', 0) if data.type == 'mmssl.KFoldDataset' \
            else 0
        seed = cfg.randomness.seed
        self.calls.append((subset, fold, seed))
        if self.fail_at is not None and len(self.calls) == self.fail_at:
            raise RuntimeError('killed')
        value = 100 * (self.table[subset] + (fold + seed) / 100)
        return {self.key or search.ACCURACY_KEY: value}


def test_runs_train_and_validate_on_disjoint_folds_of_the_train_split(
        tmp_path):
    ev = SubsetEvaluator(
        CONFIG, str(tmp_path), cfg_options=TINY, cv=True, progress=False)
    assert ev.blocks == RESNET18_BLOCKS
    assert ev.folds == [0, 1, 2, 3, 4]
    pool = set(_paths(_build(ev.cfg.train_dataloader.dataset)))
    test_split = set(_paths(_build(ev.cfg.val_dataloader.dataset)))
    assert 90 <= len(pool) <= 110  # 5% of 2000, class by class
    assert not pool & test_split
    held_out = []
    for fold in ev.folds:
        cfg = ev.run_cfg(('layer4.1', ), fold, seed=3)
        train = _build(cfg.train_dataloader.dataset)
        val = _build(cfg.val_dataloader.dataset)
        train_paths, val_paths = set(_paths(train)), set(_paths(val))
        assert train_paths and val_paths
        assert not train_paths & val_paths
        assert train_paths | val_paths == pool
        assert all('/cls/train/' in p for p in train_paths | val_paths)
        held_out += sorted(val_paths)
        # each part keeps the pipeline of its role
        assert cfg.train_dataloader.dataset.pipeline == \
            ev.cfg.train_dataloader.dataset.pipeline
        assert cfg.val_dataloader.dataset.pipeline == \
            ev.cfg.val_dataloader.dataset.pipeline
        assert cfg.model.trainable_blocks == ['layer4.1']
        assert cfg.randomness.seed == 3
        assert cfg.work_dir == osp.join(
            str(tmp_path), 'profile', 'layer4.1', f'fold{fold}')
    # the held-out folds cover the training pool once
    assert sorted(held_out) == sorted(pool)
    a, b = (ev.run_cfg((), 0, 0) for _ in range(2))
    assert a.experiment_name != b.experiment_name
    assert a.work_dir == osp.join(str(tmp_path), 'profile', 'none', 'fold0')
    # validation once, after the last epoch; no checkpoints
    assert a.train_cfg.val_interval > a.train_cfg.max_epochs
    assert a.default_hooks.checkpoint is None
    kept = SubsetEvaluator(
        CONFIG,
        str(tmp_path),
        cfg_options=TINY,
        keep_checkpoints=True,
        seeds=[0, 1],
        progress=False)
    assert kept.folds == [0]
    cfg = kept.run_cfg(('layer4.0', 'layer4.1'), 0, 1)
    assert cfg.default_hooks.checkpoint is not None
    assert cfg.work_dir.endswith(
        osp.join('layer4.0+layer4.1', 'fold0', 'seed1'))


def test_use_val_split_keeps_the_configs_data(tmp_path):
    ev = SubsetEvaluator(
        CONFIG,
        str(tmp_path),
        cfg_options=TINY,
        use_val_split=True,
        mode='greedy',
        progress=False)
    assert ev.folds == [None]
    cfg = ev.run_cfg(('layer4.1', ), None, 0)
    assert cfg.train_dataloader.dataset == ev.cfg.train_dataloader.dataset
    assert cfg.val_dataloader.dataset == ev.cfg.val_dataloader.dataset
    assert cfg.val_dataloader.dataset.split == 'val'
    assert cfg.work_dir == osp.join(str(tmp_path), 'greedy', 'layer4.1')
    assert 'val_dataloader' in ev.describe_data()
    assert 'val split was not used' in SubsetEvaluator(
        CONFIG, str(tmp_path), cfg_options=TINY,
        progress=False).describe_data()


def test_mean_over_folds_and_seeds_and_the_cache(tmp_path, monkeypatch):
    fake = FakeRuns()
    monkeypatch.setattr(search, 'train_run', fake)
    opts = dict(cfg_options=TINY, cv=True, num_folds=2, progress=False)
    ev = SubsetEvaluator(CONFIG, str(tmp_path), seeds=[0, 1], **opts)
    # folds 0, 1 x seeds 0, 1: mean offset (0 + 1 + 1 + 2) / 4 hundredths
    assert ev(('layer4.1', )) == pytest.approx(0.61)
    assert len(fake.calls) == 4 and ev.num_trained == 4
    record = json.load(
        open(osp.join(str(tmp_path), 'profile', 'layer4.1', 'result.json')))
    assert record['subset'] == ['layer4.1']
    assert sorted(record['runs']) == [
        'fold0/seed0', 'fold0/seed1', 'fold1/seed0', 'fold1/seed1'
    ]
    assert record['runs']['fold1/seed1']['accuracy'] == pytest.approx(0.62)
    assert ev.results['layer4.1']['accuracy'] == pytest.approx(0.61)
    # the same evaluator, or a new one with the same settings: no training
    assert ev(('layer4.1', )) == pytest.approx(0.61)
    again = SubsetEvaluator(CONFIG, str(tmp_path), seeds=[0, 1], **opts)
    assert again(('layer4.1', )) == pytest.approx(0.61)
    assert len(fake.calls) == 4 and again.num_trained == 0
    # one more seed: only its runs are trained
    more = SubsetEvaluator(CONFIG, str(tmp_path), seeds=[0, 1, 2], **opts)
    more(('layer4.1', ))
    assert fake.calls[4:] == [(('layer4.1', ), 0, 2), (('layer4.1', ), 1, 2)]
    # other settings (a changed config): everything again
    other = SubsetEvaluator(
        CONFIG,
        str(tmp_path),
        seeds=[0, 1],
        **dict(opts, cfg_options=dict(TINY, **{'train_cfg.max_epochs': 2})))
    other(('layer4.1', ))
    assert len(fake.calls) == 6 + 4


def test_a_crashed_search_resumes_with_the_missing_runs(tmp_path, monkeypatch):
    opts = dict(cfg_options=TINY, cv=True, num_folds=3, progress=False)
    crashing = FakeRuns(fail_at=3)
    monkeypatch.setattr(search, 'train_run', crashing)
    with pytest.raises(RuntimeError, match='killed'):
        SubsetEvaluator(CONFIG, str(tmp_path), **opts)(('layer4.0', ))
    fake = FakeRuns()
    monkeypatch.setattr(search, 'train_run', fake)
    ev = SubsetEvaluator(CONFIG, str(tmp_path), **opts)
    assert ev(('layer4.0', )) == pytest.approx(0.56)
    assert fake.calls == [(('layer4.0', ), 2, 0)]


@pytest.mark.parametrize('start', ['non', 'all', 'best'])
def test_greedy_subsets_bounds_a_search_that_runs_to_the_end(start):
    """Every step within eps: the search runs to the end and evaluates
    1 + n (n + 1) / 2 distinct subsets, the progress bar's length."""
    from mmssl.analysis.subtuning_select import greedy_subsets
    blocks = [f'b{i}' for i in range(5)]
    calls = []

    def evaluate(subset):
        calls.append(subset)
        return 0.5 + 0.001 * len(subset)

    result = greedy_search(evaluate, blocks, start=start)
    assert result['eps'] == 0.01  # the default
    assert len(result['history']) == 6
    assert len(calls) == len(set(calls)) == greedy_subsets(5) == 16
    assert greedy_subsets(1) == 2


def test_profile_and_greedy_on_a_table(tmp_path):
    blocks = ['layer4.0', 'layer4.1']
    calls = []

    def evaluate(subset):
        calls.append(subset)
        return TABLE[subset]

    profile = finetuning_profile(evaluate, blocks, pairs=True)
    assert profile == dict(
        blocks=blocks,
        linear_probe=0.40,
        all_blocks=0.58,
        single={
            'layer4.0': 0.55,
            'layer4.1': 0.60
        },
        pairs={'layer4.0+layer4.1': 0.58})
    # the pair of two blocks is the full set: evaluated once
    assert len(calls) == len(set(calls)) == 4
    # without pairs (the default) the consecutive pairs are not evaluated
    three = blocks + ['layer4.2']
    calls.clear()
    plain = finetuning_profile(lambda s: calls.append(s) or 0.5, three)
    assert calls == [(), ('layer4.0', ), ('layer4.1', ), ('layer4.2', ),
                     tuple(three)]
    assert plain['pairs'] == {} and len(plain['single']) == 3
    calls.clear()
    result = greedy_search(evaluate, blocks, eps=0.01, start='non')
    assert result['selected'] == ['layer4.1']
    assert result['accuracy'] == pytest.approx(0.60)
    assert [h['subset']
            for h in result['history']] == [[], ['layer4.1'],
                                            ['layer4.0', 'layer4.1']]
    assert json.loads(json.dumps(result)) == result
    for path, draw, data in ((tmp_path / 'p.png', plot_profile, profile),
                             (tmp_path / 'g.png', plot_greedy, result)):
        draw(data, str(path))
        assert path.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


def test_snippet_is_a_config_with_the_chosen_blocks(tmp_path):
    plain = write_snippet(
        str(tmp_path / 'plain.py'), ['layer3.1', 'layer4.1'], 0.8125, None,
        'python tools/analysis_tools/subtuning_search.py greedy x.py',
        'fold 0 of 5')
    text = open(plain).read()
    assert '0.8125' in text and 'greedy x.py' in text and 'fold 0' in text
    assert Config.fromfile(plain).model == dict(
        trainable_blocks=['layer3.1', 'layer4.1'])
    full = write_snippet(
        str(tmp_path / 'sub' / 'full.py'), [], 0.5, CONFIG, 'cmd', 'data')
    cfg = Config.fromfile(full)
    assert cfg.model.trainable_blocks == []
    assert cfg.model.type == 'mmssl.SubTuningClassifier'
    assert "_base_ = ['/" not in open(full).read()  # a relative path


def test_names_and_accuracy_reading():
    assert subset_name(()) == 'none'
    assert subset_name(('layer4.0', 'layer4.1')) == 'layer4.0+layer4.1'
    long = tuple(f'layers.{i}' for i in range(24))
    assert subset_name(long).startswith('24blocks-')
    assert top1_fraction({'accuracy/top1': 87.5}, 'run') == 0.875
    with pytest.raises(
            SearchError,
            match=r'reported no accuracy/top1 \('
            r'its validation metrics: accuracy/top5\)'):
        top1_fraction({'accuracy/top5': 90.}, 'run')
    with pytest.raises(SearchError, match='validation did not run'):
        top1_fraction({}, 'run')


def test_errors(tmp_path, monkeypatch):
    ev = SubsetEvaluator(
        CONFIG, str(tmp_path), cfg_options=TINY, progress=False)
    with pytest.raises(
            SearchError,
            match=r"'layer5.0' is not a block of "
            r'ResNet; valid names .*layer4\.1'):
        ev.resolve(['layer4.1', 'layer5.0'])
    assert ev.resolve(['backbone.layer4.1']) == ['layer4.1']
    monkeypatch.setattr(search, 'train_run',
                        FakeRuns(metrics_key='accuracy/top5'))
    with pytest.raises(SearchError, match='reported no accuracy/top1'):
        ev(('layer4.1', ))
    other = tmp_path / 'plain_classifier.py'
    other.write_text(f'_base_ = [{CONFIG!r}]\n'
                     "model = dict(type='ImageClassifier')\n")
    with pytest.raises(
            SearchError, match="'ImageClassifier', not a "
            'SubTuningClassifier'):
        SubsetEvaluator(str(other), str(tmp_path), cfg_options=TINY)
    with pytest.raises(SearchError, match='exclude each other'):
        SubsetEvaluator(CONFIG, str(tmp_path), cv=True, use_val_split=True)
    with pytest.raises(SearchError, match='seeds must be distinct'):
        SubsetEvaluator(CONFIG, str(tmp_path), seeds=[0, 0])
    with pytest.raises(SearchError, match='num_folds'):
        SubsetEvaluator(CONFIG, str(tmp_path), num_folds=1)
