# Copyright (c) mmssl contributors. All rights reserved.
"""Arms x seeds summaries from the runs' scalar logs."""
import json
import os

import pytest

from mmssl.analysis.seed_study import (eval_path, last_value, mean_curves,
                                       mean_std, read_scalars, run_dir,
                                       study_table, summarize_study)


def _write_run(root, arm, seed, records, stamp='20260101_000000'):
    d = os.path.join(run_dir(root, arm, seed), stamp, 'vis_data')
    os.makedirs(d)
    with open(os.path.join(d, 'scalars.json'), 'w') as f:
        for r in records:
            f.write(json.dumps(r) + '\n')


def test_mean_std_is_the_sample_spread():
    s = mean_std([10.0, 12.0, 17.0])
    assert s['mean'] == pytest.approx(13.0)
    # ((9 + 1 + 16) / 2) ** 0.5
    assert s['std'] == pytest.approx(13**0.5)
    assert (s['min'], s['max'], s['n']) == (10.0, 17.0, 3)
    assert mean_std([4.0])['std'] == 0
    with pytest.raises(ValueError):
        mean_std([])


def test_summary_reads_the_last_value_and_alternative_keys(tmp_path):
    root = str(tmp_path)
    for seed, acc in ((0, 20.0), (1, 30.0)):
        _write_run(root, 'apl', seed, [
            dict(step=10, loss_cls=2.0, acc_pos=5.0),
            dict(step=5, **{'accuracy/top1': acc - 5}),
            dict(step=20, loss_cls=1.0, acc_pos=50.0),
            dict(step=10, **{'accuracy/top1': acc}),
        ])
    # an older log format: the class loss logged as `loss`
    _write_run(root, 'apl', 2, [dict(step=20, loss=3.0)])
    summary = summarize_study(root, ['apl', 'base'], [0, 1, 2],
                              ['accuracy/top1', 'loss_cls|loss'])
    acc = summary['apl']['accuracy/top1']
    assert acc['per_seed'] == {0: 20.0, 1: 30.0} and acc['mean'] == 25.0
    assert summary['apl']['loss_cls|loss']['per_seed'] == {
        0: 1.0,
        1: 1.0,
        2: 3.0
    }
    assert 'seed2:accuracy/top1' in summary['apl']['missing']
    assert summary['base']['missing'] == ['seed0', 'seed1', 'seed2']
    table = study_table(summary, ['accuracy/top1'])
    assert '| apl | 25.00 ± 7.07 (2) |' in table
    assert '| base | - |' in table
    # each seed's value after the spread, in seed order
    table = study_table(summary, ['accuracy/top1'], digits=1, per_seed=True)
    assert '| apl | 25.0 ± 7.1 (2): 20.0, 30.0 |' in table
    assert table.splitlines()[0] == '| arm | accuracy/top1 |'
    assert table.splitlines()[1] == '| --- | --- |'


def test_latest_log_and_mean_curves(tmp_path):
    root = str(tmp_path)
    _write_run(root, 'a', 0, [dict(step=1, x=9.0)], '20260101_000000')
    _write_run(root, 'a', 0,
               [dict(step=1, x=1.0), dict(step=2, x=3.0)], '20260102_000000')
    _write_run(root, 'a', 1, [dict(step=1, x=3.0)])
    assert read_scalars(run_dir(root, 'a', 0))[0]['x'] == 1.0
    assert last_value(read_scalars(run_dir(root, 'a', 0)), 'x', 2) == 2.0
    # only steps every seed logged
    assert mean_curves(root, ['a'], [0, 1], 'x') == {'a': ([1], [2.0])}
    with pytest.raises(FileNotFoundError, match='scalars.json'):
        read_scalars(str(tmp_path / 'none'))


def test_summary_reads_the_frozen_evaluation_files(tmp_path):
    root = str(tmp_path)
    for seed, knn in ((0, 18.0), (1, 20.0)):
        _write_run(root, 'mae', seed, [dict(step=1, loss=0.3)])
        with open(eval_path(root, 'mae', seed), 'w') as f:
            json.dump(dict(results=dict(pretrained=dict(knn_top1=knn))), f)
    summary = summarize_study(root, ['mae'], [0, 1], ['knn_top1', 'loss'])
    assert summary['mae']['knn_top1']['mean'] == 19.0
    assert summary['mae']['loss']['per_seed'] == {0: 0.3, 1: 0.3}


def test_reductions_over_the_run(tmp_path):
    root = str(tmp_path)
    recs = [
        dict(step=1, acc=30.0),
        dict(step=2, acc=40.0),
        dict(step=3, acc=38.0)
    ]
    assert last_value(recs, 'acc') == 38.0  # the last one by default
    assert last_value(recs, 'acc@max') == 40.0
    assert last_value(recs, 'acc@min') == 30.0
    assert last_value(recs, 'acc@first') == 30.0
    assert last_value(recs, 'other@max') is None
    assert last_value(recs, 'acc@sum') == 108.0
    assert last_value(recs, 'acc@sum:2') == 70.0  # steps 1 and 2
    assert last_value(recs, 'acc@sum:0') is None
    # a record without a step counts as step 0
    assert last_value([dict(acc=5.), dict(step=1, acc=7.)], 'acc@sum:0') == 5.
    for bad in ('acc@sum:x', 'acc@max:2'):
        with pytest.raises(ValueError, match='@sum:STEP'):
            last_value(recs, bad)
    with pytest.raises(ValueError, match='@best'):
        last_value(recs, 'acc@best')
    for seed, shift in ((0, 0.0), (1, 10.0)):
        _write_run(root, 'a', seed,
                   [dict(step=r['step'], acc=r['acc'] + shift) for r in recs])
    summary = summarize_study(root, ['a'], [0, 1], ['acc', 'acc@max'])
    assert summary['a']['acc']['mean'] == 43.0
    assert summary['a']['acc@max']['per_seed'] == {0: 40.0, 1: 50.0}
