# Copyright (c) mmssl contributors. All rights reserved.
"""tools/analysis_tools/transfer_pipeline.py: pretrain -> convert ->
fine-tune -> evaluate, end to end on a tiny embedded data set."""
import json
import os.path as osp

import pytest
import torch
from mmengine.config import Config


@pytest.fixture(scope='module')
def pipeline(load_tool_module):
    return load_tool_module('analysis_tools/transfer_pipeline.py')


def test_pipeline_end_to_end(pipeline, tmp_path):
    """SimCLR and random init through every stage in a minimal setting."""
    work_dir = tmp_path / 'work'
    common = [
        '--task', 'seg', '--work-dir',
        str(work_dir), '--data-root',
        str(tmp_path / 'data'), '--num-train', '16', '--num-val', '8',
        '--pretrain-epochs', '1', '--finetune-epochs', '1',
        '--pretrain-cfg-options', 'train_dataloader.batch_size=8',
        'train_dataloader.num_workers=0', '--finetune-cfg-options',
        'train_dataloader.batch_size=4', 'train_dataloader.num_workers=0'
    ]
    records = pipeline.main(['--method', 'simclr'] + common)
    assert len(records) == 1
    rec = records[0]
    assert set(rec['stages']) == {'pretrain', 'convert', 'finetune', 'test'}
    assert rec['metric'] == 'mIoU' and 0 <= rec['value'] <= 100
    with open(work_dir / 'seg_simclr.json') as f:
        written = json.load(f)
    assert written['value'] == rec['value']
    assert 'mIoU' in written['metrics']
    # the converter wrote a prefixed backbone that the fine-tuning loaded
    backbone = rec['stages']['convert']['output']
    state = torch.load(backbone, map_location='cpu', weights_only=True)
    assert all(k.startswith('backbone.') for k in state['state_dict'])
    ft_cfg = Config.fromfile(rec['stages']['finetune']['config'])
    assert ft_cfg.model.backbone.init_cfg.checkpoint == backbone
    assert ft_cfg.train_cfg.max_epochs == 1
    with open(osp.join(work_dir, 'simclr', 'seg', 'finetune.log')) as f:
        assert f'load backbone. in model from: {backbone}' in f.read()

    # a pretraining checkpoint made elsewhere: converted, not pretrained;
    # given relative to the caller's folder (the steps run elsewhere)
    ckpt = rec['stages']['pretrain']['checkpoint']
    given_dir = tmp_path / 'given'
    given = pipeline.main([
        '--method', 'simclr', '--task', 'seg', '--work-dir',
        str(given_dir), '--data-root',
        str(tmp_path / 'data'), '--checkpoint',
        osp.relpath(ckpt), '--pretrain-only'
    ])[0]
    assert given['stages']['pretrain'] == dict(
        seconds=0., checkpoint=ckpt, given=True)
    assert not (given_dir / 'simclr' / 'pretrain').exists()
    again = torch.load(
        given['stages']['convert']['output'],
        map_location='cpu',
        weights_only=True)['state_dict']
    assert again.keys() == state['state_dict'].keys()
    assert all(torch.equal(again[k], state['state_dict'][k]) for k in again)

    records = pipeline.main(['--method', 'random'] + common +
                            ['--out', str(tmp_path / 'random.json')])
    rec = records[0]
    assert set(rec['stages']) == {'finetune', 'test'}
    assert 0 <= rec['value'] <= 100
    ft_cfg = Config.fromfile(rec['stages']['finetune']['config'])
    assert ft_cfg.model.backbone.init_cfg is None
    with open(tmp_path / 'random.json') as f:
        assert json.load(f)['results'][0]['method'] == 'random'
    assert (tmp_path / 'random.md').read_text().startswith('| method |')


@pytest.mark.parametrize('extra, message', [
    (['--method', 'random'], '--checkpoint needs --method with a pretraining'),
    (['--method', 'simclr', '--pretrain-epochs', '3'
      ], 'drop --pretrain-epochs'),
    (['--all'], '--checkpoint needs --method'),
])
def test_checkpoint_argument_errors(pipeline, tmp_path, capsys, extra,
                                    message):
    ckpt = tmp_path / 'pretrain.pth'
    ckpt.write_bytes(b'')
    with pytest.raises(SystemExit):
        pipeline.parse_args(['--task', 'seg', '--checkpoint',
                             str(ckpt)] + extra)
    assert message in capsys.readouterr().err


def test_checkpoint_missing_file(pipeline, tmp_path, capsys):
    missing = str(tmp_path / 'nope.pth')
    with pytest.raises(SystemExit):
        pipeline.parse_args(
            ['--method', 'mae', '--task', 'seg', '--checkpoint', missing])
    assert f'--checkpoint {missing}: no such file' in capsys.readouterr().err
