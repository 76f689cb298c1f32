# Copyright (c) mmssl contributors. All rights reserved.
"""Parts of the transfer pipeline without training: data roots, hooks, the
fine-tuning config's backbone, a stage's command and failure, the latest
checkpoint and the results table."""
import json
import os.path as osp
import sys
from types import SimpleNamespace

import pytest
from mmengine.config import Config

from mmssl.analysis import transfer


class Logger:

    def __init__(self):
        self.lines = []

    def info(self, msg):
        self.lines.append(msg)


def test_data_root_reaches_loaders_with_one_and_the_coco_evaluator():
    cfg = Config(
        dict(
            train_dataloader=dict(dataset=dict(data_root='a', x=1)),
            val_dataloader=dict(dataset=dict(type='Wrapper')),
            val_evaluator=dict(type='CocoMetric', ann_file='old.json'),
            test_evaluator=dict(type='IoUMetric')))
    transfer._set_data_root(cfg, '/data')
    assert cfg.train_dataloader.dataset == dict(data_root='/data', x=1)
    assert cfg.val_dataloader.dataset == dict(type='Wrapper')
    assert cfg.val_evaluator.ann_file == osp.join('/data', 'det',
                                                  'annotations',
                                                  'instances_val.json')
    assert cfg.test_evaluator == dict(type='IoUMetric')
    assert cfg.data_root == '/data'


def test_frozen_eval_hooks_are_dropped():
    cfg = Config(
        dict(custom_hooks=[
            dict(type='mmssl.FrozenEvalHook'),
            dict(type='EMAHook'),
        ]))
    transfer._drop_frozen_eval(cfg)
    assert cfg.custom_hooks == [dict(type='EMAHook')]
    cfg = Config(dict(custom_hooks=None))
    transfer._drop_frozen_eval(cfg)
    assert cfg.custom_hooks == []


def test_finetune_config_backbone_init(tmp_path):
    src = transfer.method_configs('simclr', 'seg')['finetune']
    args = SimpleNamespace(
        data_root='data/embedded',
        finetune_cfg_options=None,
        finetune_epochs=None)
    plain = Config.fromfile(osp.join(transfer.REPO, src))
    cfg = transfer.write_finetune_config(src, str(tmp_path / 'a.py'), None,
                                         args)
    assert cfg.model.backbone.init_cfg is None
    assert cfg.train_cfg == plain.train_cfg  # the schedule as written
    cfg = transfer.write_finetune_config(src, str(tmp_path / 'b.py'),
                                         '/ckpt/backbone.pth', args)
    assert cfg.model.backbone.init_cfg == dict(
        type='Pretrained', prefix='backbone.', checkpoint='/ckpt/backbone.pth')
    written = Config.fromfile(str(tmp_path / 'b.py'))
    assert written.model.backbone.init_cfg.checkpoint == '/ckpt/backbone.pth'


def test_run_stage_shows_the_command_and_the_failure(tmp_path):
    logger = Logger()
    script = osp.join(transfer.REPO, 'tools', 'train.py')
    outside = str(tmp_path / 'work')  # not under the repository: as given
    seconds = transfer.run_stage(
        'pretrain', [sys.executable, '-c', 'print(1)', script, outside],
        str(tmp_path / 'ok.log'), logger)
    assert 0 <= seconds < 3600
    assert logger.lines[0] == ('[pretrain] python -c print(1) ' +
                               osp.join('tools', 'train.py') + ' ' + outside)
    assert (tmp_path / 'ok.log').read_text() == '1\n'
    code = 'for i in range(40): print(f"line {i}")\nraise SystemExit(3)'
    with pytest.raises(transfer.PipelineError) as exc:
        transfer.run_stage('test', [sys.executable, '-c', code],
                           str(tmp_path / 'bad.log'), logger)
    message = str(exc.value)
    assert message.startswith('test failed (exit 3), see ')
    assert 'line 10\n' in message and 'line 39\n' in message
    assert 'line 9\n' not in message  # the last 30 lines only


def test_latest_checkpoint(tmp_path):
    assert transfer._latest_checkpoint(str(tmp_path)) is None
    ckpt = tmp_path / 'epoch_1.pth'
    ckpt.write_bytes(b'x')
    (tmp_path / 'last_checkpoint').write_text(f'{ckpt}\n')
    assert transfer._latest_checkpoint(str(tmp_path)) == str(ckpt)
    # a path relative to the repository
    relative = transfer.method_configs('simclr', 'seg')['finetune']
    (tmp_path / 'last_checkpoint').write_text(relative)
    assert transfer._latest_checkpoint(str(tmp_path)) == osp.join(
        transfer.REPO, relative)
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'gone.pth'))
    assert transfer._latest_checkpoint(str(tmp_path)) is None


def test_results_table():
    assert transfer.format_table([]) == ''
    records = [
        dict(
            method='random',
            pretrain_config=None,
            pretrain_epochs=None,
            value=12.345,
            metric='mIoU',
            stages=dict(finetune=dict(seconds=40.4))),
        dict(
            method='simclr',
            pretrain_config='configs/simclr/x.py',
            pretrain_epochs=None,
            value=20.,
            metric='mIoU',
            stages=dict(
                pretrain=dict(seconds=0., pretrain_seconds=300.2),
                finetune=dict(seconds=41.))),
        dict(
            method='mae',
            pretrain_config='configs/mae/x.py',
            pretrain_epochs=5,
            value=15.,
            metric='mIoU',
            stages=dict(
                pretrain=dict(seconds=99.6), finetune=dict(seconds=39.))),
    ]
    assert transfer.format_table(records[:1]).splitlines()[0] == (
        '| method | pretraining | mIoU | pretrain s | fine-tune s |')
    assert transfer.format_table(records).splitlines() == [
        '| method | pretraining | mIoU | pretrain s | fine-tune s |',
        '| --- | --- | --- | --- | --- |',
        '| random | none (random init) | 12.35 | 0 | 40 |',
        '| simclr | config epochs | 20.00 | 300 | 41 |',
        '| mae | 5 epochs | 15.00 | 100 | 39 |',
    ]
    assert transfer.suffix(SimpleNamespace(tag='b')) == '_b'
    assert transfer.suffix(SimpleNamespace(tag=None)) == ''


def _fake_stage(calls):
    """``run_stage`` that writes a checkpoint where train.py would."""

    def run(name, cmd, log_file, logger):
        calls.append(name)
        work_dir = cmd[cmd.index('--work-dir') + 1]
        ckpt = osp.join(work_dir, f'epoch_{len(calls)}.pth')
        with open(ckpt, 'wb') as f:
            f.write(b'x')
        with open(osp.join(work_dir, 'last_checkpoint'), 'w') as f:
            f.write(ckpt)
        return 5.

    return run


def test_pretraining_is_reused_unless_forced_or_changed(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(transfer, 'run_stage', _fake_stage(calls))
    config = transfer.method_configs('simclr', 'seg')['pretrain']
    args = SimpleNamespace(
        data_root='data/embedded',
        pretrain_cfg_options=None,
        pretrain_epochs=None,
        force=False,
        work_dir=str(tmp_path))

    def run():
        record = dict(stages={})
        ckpt = transfer.pretrain('simclr', config, args, Logger(), record)
        return ckpt, record['stages']['pretrain']

    first, stage = run()
    assert calls == ['pretrain'] and stage['seconds'] == 5.
    again, stage = run()  # the same config: reused, nothing trained
    assert calls == ['pretrain'] and again == first
    assert stage == dict(
        seconds=0.,
        reused=first,
        config=osp.join(
            str(tmp_path), 'simclr', 'pretrain', 'pretrain_config.py'),
        pretrain_seconds=5.)
    args.force = True
    forced, _ = run()
    assert calls == ['pretrain'] * 2 and forced != first
    args.force = False
    args.pretrain_cfg_options = {'train_cfg.max_epochs': 2}
    run()  # another config: trained again
    assert calls == ['pretrain'] * 3


def test_a_detection_record(tmp_path, monkeypatch):
    """box mAP in percent, the given checkpoint as a free stage, the total
    seconds and the record file."""

    def finetune(method, task, config, backbone, args, logger, record):
        record['stages']['finetune'] = dict(seconds=10.26)
        record['stages']['test'] = dict(seconds=2.)
        return {'coco/bbox_mAP': 0.12345}

    def convert(method, ckpt, target, args, logger, record):
        record['stages']['convert'] = dict(seconds=1.)
        return f'{ckpt}.{target}'

    monkeypatch.setattr(transfer, 'finetune_and_test', finetune)
    monkeypatch.setattr(transfer, 'convert', convert)
    args = SimpleNamespace(
        pretrain_epochs=None,
        finetune_epochs=None,
        tag=None,
        data_root='data/embedded',
        checkpoint='/given.pth',
        pretrain_only=False,
        work_dir=str(tmp_path))
    record = transfer.run_method('simclr', 'det', args, Logger())
    assert record['stages']['pretrain'] == dict(
        seconds=0., checkpoint='/given.pth', given=True)
    assert record['metric'] == 'box mAP' and record['value'] == 12.35
    assert record['seconds'] == 13.3
    path = tmp_path / 'det_simclr.json'
    assert path.read_text() == json.dumps(record, indent=2)


def test_finetune_and_test_twice_in_one_folder(tmp_path, monkeypatch):
    """The fine-tuning trains without validation, tests its last checkpoint
    into ``test_metrics.json`` and records both stages; a second run (the
    same method, task and tag) goes into the same folder again."""
    calls = []
    train = _fake_stage(calls)

    def run(name, cmd, log_file, logger):
        if name == 'finetune':
            assert cmd[-1] == '--no-validate'
            return train(name, cmd, log_file, logger)
        calls.append(name)
        with open(cmd[cmd.index('--out') + 1], 'w') as f:
            json.dump({'mIoU': 10. + len(calls)}, f)
        return 3.

    monkeypatch.setattr(transfer, 'run_stage', run)
    src = transfer.method_configs('simclr', 'seg')['finetune']
    args = SimpleNamespace(
        data_root='data/embedded',
        finetune_cfg_options=None,
        finetune_epochs=None,
        tag='b',
        work_dir=str(tmp_path))
    work_dir = osp.join(str(tmp_path), 'simclr', 'seg_b')
    for n in (1, 2):
        record = dict(stages={})
        metrics = transfer.finetune_and_test('simclr', 'seg', src, None, args,
                                             Logger(), record)
        assert metrics == {'mIoU': 10. + 2 * n}
        cfg_path = osp.join(work_dir, 'finetune_config.py')
        ckpt = osp.join(work_dir, f'epoch_{2 * n - 1}.pth')
        assert record['stages']['finetune'] == dict(
            seconds=5.,
            config=cfg_path,
            checkpoint=ckpt,
            command=[
                transfer.TRAIN, cfg_path, '--work-dir', work_dir,
                '--no-validate'
            ])
        metrics_file = osp.join(work_dir, 'test_metrics.json')
        assert record['stages']['test'] == dict(
            seconds=3.,
            metrics_file=metrics_file,
            command=[
                transfer.TEST, cfg_path, ckpt, '--work-dir', work_dir, '--out',
                metrics_file, '--out-item', 'metrics'
            ])
    assert calls == ['finetune', 'test'] * 2
