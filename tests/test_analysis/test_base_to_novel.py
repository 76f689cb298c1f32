# Copyright (c) mmssl contributors. All rights reserved.
"""The base-to-novel protocol: method configs, runs, table and plot."""
import json
import os.path as osp

import pytest
import torch

from mmssl.analysis.base_to_novel import (CONFIGS, LABELS, method_cfg,
                                          plot_base_to_novel, results_table,
                                          run_base_to_novel)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _tiny_clip(path):
    from mmssl.models.clip import CLIPPretrainer
    tiny = dict(
        embed_dim=32,
        vision=dict(width=8, image_size=32),
        text=dict(width=32, heads=2, layers=1, context_length=16))
    torch.manual_seed(0)
    model = CLIPPretrainer(arch='tiny-rn', arch_overrides=tiny)
    torch.save(dict(state_dict=model.state_dict()), path)
    return tiny


def test_zero_shot_and_coop_runs_are_recorded(tmp_path):
    ckpt = str(tmp_path / 'clip.pth')
    tiny = _tiny_clip(ckpt)
    # CoOp's embedded config on the tiny CLIP, 10 training images, 45 val
    cfg = tmp_path / 'coop_tiny.py'
    cfg.write_text(
        f'_base_ = [{osp.join(ROOT, CONFIGS["coop"])!r}]\n'
        f'model = dict(clip=dict(_delete_=True, arch="tiny-rn", **{tiny!r}))\n'
        'train_dataloader = dict(batch_size=10, dataset=dict(num_shots=2))\n'
        'val_dataloader = dict(batch_size=45, '
        'dataset=dict(dataset=dict(indices=45)))\n')
    work = tmp_path / 'b2n'
    work.mkdir()
    # a method of an earlier call is kept
    earlier = dict(subpt=[dict(epoch=2, base=1.0, novel=2.0, hm=1.3)])
    (work / 'results.json').write_text(json.dumps(earlier))
    lines = []
    results = run_base_to_novel(['zeroshot', 'coop'],
                                str(work),
                                ckpt,
                                epochs=2,
                                configs=dict(coop=str(cfg)),
                                log=lines.append)
    assert list(results) == ['subpt', 'zeroshot', 'coop']
    assert results['subpt'] == earlier['subpt']
    assert [r['epoch'] for r in results['zeroshot']] == [0]
    assert [r['epoch'] for r in results['coop']] == [1, 2]
    for rows in results.values():
        for r in rows:
            assert {'base', 'novel', 'hm', 'epoch'} <= set(r)
    for r in results['zeroshot'] + results['coop']:
        b, n = r['base'], r['novel']
        assert r['hm'] == pytest.approx(2 * b * n / (b + n) if b + n else 0)
    # the CLIP checkpoint was the tiny one, each run in its own folder
    assert osp.isfile(work / 'coop' / 'epoch_2.pth')
    assert json.loads((work / 'results.json').read_text()) == results
    assert [line.split(':')[0].strip() for line in lines] == \
        ['zero-shot CLIP', 'CoOp']
    assert lines[1].startswith(
        f'            CoOp: epoch 2 base {results["coop"][-1]["base"]:.1f}')
    with pytest.raises(ValueError, match=r"unknown methods \['clip'\]"):
        run_base_to_novel(['clip'], str(work), ckpt, 1)


def test_method_cfg_sets_the_protocol(tmp_path):
    work = str(tmp_path)
    cfg = method_cfg(
        osp.join(ROOT, CONFIGS['coop']),
        work,
        'coop',
        12,
        'clip.pth',
        val_interval=3,
        cfg_options={'model.n_ctx': 8})
    assert cfg.work_dir == osp.join(work, 'coop')
    assert cfg.model.clip.checkpoint == 'clip.pth'
    assert (cfg.train_cfg.max_epochs, cfg.train_cfg.val_interval) == (12, 3)
    cosine = [s for s in cfg.param_scheduler if s.type == 'CosineAnnealingLR']
    assert [(s.T_max, s.end) for s in cosine] == [(11, 12)]
    assert cfg.default_hooks.checkpoint == dict(
        type='CheckpointHook', interval=12, max_keep_ckpts=1)
    assert cfg.model.n_ctx == 8  # the options are merged last
    # by default every epoch is evaluated
    cfg = method_cfg(osp.join(ROOT, CONFIGS['coop']), work, 'coop', 12, 'c')
    assert cfg.train_cfg.val_interval == 1


def test_table_and_plot(tmp_path):
    results = {
        'zeroshot': [dict(epoch=0, base=50., novel=40., hm=44.4)],
        'coop': [
            dict(epoch=e, base=b, novel=40. - e, hm=45.)
            for e, b in ((1, 61.), (2, 65.), (3, 62.))
        ]
    }
    md = results_table(results, [1, 3, 4])
    assert md.splitlines() == [
        '| method | epoch | base | novel | H |',
        '| --- | --- | --- | --- | --- |',
        '| zero-shot CLIP | 0 | 50.0 | 40.0 | 44.4 |',
        '| CoOp | 1 | 61.0 | 39.0 | 45.0 |',
        '| CoOp | 3 | 62.0 | 37.0 | 45.0 |',
        '| CoOp (best base) | 2 | 65.0 | 38.0 | 45.0 |',
    ]
    plot_base_to_novel(results, str(tmp_path / 'curves.png'))
    assert osp.getsize(tmp_path / 'curves.png') > 1000
    assert set(LABELS) >= set(CONFIGS) | {'zeroshot'}
