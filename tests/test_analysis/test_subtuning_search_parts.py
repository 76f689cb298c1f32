# Copyright (c) mmssl contributors. All rights reserved.
"""Parts of the SubTuning search evaluator without training: defaults,
names, the settings fingerprint, the data description, the run config and
the progress bar."""
import hashlib
import inspect
import json
import os.path as osp
from types import SimpleNamespace

import pytest
from mmengine.config import Config

import mmssl.analysis.subtuning_search as search
from mmssl.analysis.subtuning_search import (SearchError, SubsetEvaluator,
                                             subset_name)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(
    REPO, 'configs', 'subtuning',
    'subtuning_resnet18-tiny-simclr_1xb64-coslr-10e_embedded.py')
FAST = {'model.backbone.init_cfg': None}


@pytest.fixture(autouse=True)
def _repo_cwd(monkeypatch):
    monkeypatch.chdir(REPO)


def _evaluator(tmp_path, config=CONFIG, **kwargs):
    kwargs.setdefault('progress', False)
    return SubsetEvaluator(
        config, str(tmp_path), cfg_options=dict(FAST), **kwargs)


def test_defaults():
    params = inspect.signature(SubsetEvaluator).parameters
    assert {
        k: params[k].default
        for k in ('mode', 'seeds', 'use_val_split', 'num_folds', 'cv',
                  'split_seed', 'keep_checkpoints', 'quiet', 'progress')
    } == dict(
        mode='profile',
        seeds=(0, ),
        use_val_split=False,
        num_folds=5,
        cv=False,
        split_seed=42,
        keep_checkpoints=False,
        quiet=True,
        progress=True)


def test_long_subset_names_become_a_digest():
    exact = ('a' * 59, 'b' * 60)  # 120 characters with the '+'
    assert subset_name(exact) == '+'.join(exact)
    longer = ('a' * 60, 'b' * 60)
    digest = hashlib.sha1('+'.join(longer).encode()).hexdigest()
    assert subset_name(longer) == f'2blocks-{digest[:10]}'


def test_a_config_built_in_code_is_named(tmp_path):
    with pytest.raises(SearchError, match="'<config>' has no model"):
        SubsetEvaluator(Config(dict(a=1)), str(tmp_path), progress=False)


def test_split_seed_zero_and_no_amp_switched_on(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(search, 'configure_amp',
                        lambda cfg, enable: calls.append(enable) or cfg)
    ev = _evaluator(tmp_path, split_seed=0)
    assert ev.split_seed == 0
    assert calls == [False]  # the search trains in the config's precision


def test_settings_do_not_depend_on_key_order(tmp_path):
    cfg = Config.fromfile(CONFIG)
    reordered = Config(dict(reversed(list(cfg.to_dict().items()))))
    assert list(reordered.keys()) != list(cfg.keys())
    one = _evaluator(tmp_path, cfg)
    two = _evaluator(tmp_path, reordered)
    assert one.settings == two.settings


def test_use_val_split_takes_a_dataset_wrapper(tmp_path):
    cfg = Config.fromfile(CONFIG)
    cfg.train_dataloader.dataset = dict(
        type='mmpretrain.RepeatDataset',
        times=2,
        dataset=cfg.train_dataloader.dataset)
    assert _evaluator(tmp_path, cfg, use_val_split=True).folds == [None]
    with pytest.raises(SearchError, match='has no pipeline'):
        _evaluator(tmp_path, cfg)


def test_describe_data(tmp_path):
    one = _evaluator(tmp_path).describe_data()
    assert '(mmssl.LabelFractionDataset fraction=1.0 seed=0)' in one
    assert one.endswith('; training seed 0')
    assert 'fold 0' in one and 'shuffle seed 42' in one
    cfg = Config.fromfile(CONFIG)
    cfg.train_dataloader.dataset = cfg.train_dataloader.dataset.dataset
    two = _evaluator(tmp_path, cfg, seeds=(0, 3)).describe_data()
    assert '(mmssl.EmbeddedClsDataset)' in two
    assert two.endswith('; mean over training seeds 0, 3')


def test_run_cfg_keeps_randomness_and_never_validates_early(tmp_path):
    cfg = Config.fromfile(CONFIG)
    cfg.randomness = dict(seed=5, deterministic=True)
    cfg.train_cfg.max_epochs = 1000
    cfg.pop('val_cfg', None)
    cfg.resume = True
    run = _evaluator(tmp_path, cfg).run_cfg(['layer4.1'], 0, 7)
    assert run.randomness == dict(seed=7, deterministic=True)
    assert run.resume is False
    assert run.val_cfg == dict()
    assert run.train_cfg.val_interval > run.train_cfg.max_epochs
    cfg.val_cfg = dict(type='ValLoop', fp16=False)
    run = _evaluator(tmp_path, cfg).run_cfg(['layer4.1'], 0, 7)
    assert run.val_cfg == dict(type='ValLoop', fp16=False)


def test_progress_counts_every_run(tmp_path):
    ev = _evaluator(
        tmp_path, seeds=(0, 1), cv=True, num_folds=3, progress=True)
    with ev.progress(4, 'profile'):
        assert ev._bar.total == 4 * 3 * 2
        ev._tick(('layer4.1', ), cached=True)
        assert ev._bar.n == 1
        bar = ev._bar
    assert ev._bar is None and bar.total == 1  # closed where it stopped
    quiet = _evaluator(tmp_path)
    with quiet.progress(4, 'profile'):
        assert quiet._bar is None


def test_a_run_records_its_seconds_and_ticks_the_bar(tmp_path, monkeypatch):
    from test_subtuning_search import FakeRuns
    monkeypatch.setattr(search, 'train_run', FakeRuns())
    clock = iter([100., 103.456789])
    monkeypatch.setattr(search, 'time',
                        SimpleNamespace(time=lambda: next(clock)))
    ev = _evaluator(tmp_path, progress=True)
    with ev.progress(2, 'profile'):
        ev(('layer4.1', ))
        assert ev._bar.postfix == 'layer4.1'
        ev(('layer4.1', ))  # from the cache
        assert ev._bar.postfix == 'layer4.1 (cached)'
        assert ev._bar.n == 2
    run = ev.results['layer4.1']
    assert run['accuracy'] == pytest.approx(0.60)
    record = json.loads(
        (tmp_path / 'profile' / 'layer4.1' / 'result.json').read_text())
    assert record['runs']['fold0/seed0']['seconds'] == 3.46
    # indented JSON, two spaces
    text = (tmp_path / 'profile' / 'layer4.1' / 'result.json').read_text()
    assert text == json.dumps(record, indent=2)


@pytest.mark.parametrize('quiet', [True, False])
def test_a_failed_run_names_its_output_when_quiet(tmp_path, monkeypatch,
                                                  quiet):
    from test_subtuning_search import FakeRuns
    monkeypatch.setattr(search, 'train_run', FakeRuns(fail_at=1))
    ev = _evaluator(tmp_path, quiet=quiet)
    with pytest.raises(RuntimeError, match='killed') as exc:
        ev(('layer4.1', ))
    notes = getattr(exc.value, '__notes__', [])
    if quiet:
        assert notes == [
            "the run's output: " + osp.join(
                str(tmp_path), 'profile', 'layer4.1', 'fold0', 'stdout.log')
        ]
    else:
        assert notes == []
