# Copyright (c) mmssl contributors. All rights reserved.
"""Argument parsing and config merging of tools/train.py and tools/test.py."""
import os
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from mmssl.engine import machine_cfg, runner_utils
from mmssl.engine.runner_utils import (CfgOptionsError, ConfigFileError,
                                       ToolError)


@pytest.fixture(scope='module')
def train_tool(load_tool_module):
    return load_tool_module('train.py')


@pytest.fixture(scope='module')
def test_tool(load_tool_module):
    return load_tool_module('test.py')


@pytest.fixture(autouse=True)
def _keep_local_rank(monkeypatch):
    monkeypatch.delenv('LOCAL_RANK', raising=False)


@pytest.mark.parametrize('flag', ['--local_rank', '--local-rank'])
def test_train_local_rank_spellings(train_tool, flag):
    args = train_tool.parse_args(['cfg.py', flag, '3'])
    assert args.local_rank == 3
    assert os.environ['LOCAL_RANK'] == '3'


@pytest.mark.parametrize('flag', ['--local_rank', '--local-rank'])
def test_test_local_rank_spellings(test_tool, flag):
    args = test_tool.parse_args(['cfg.py', 'ckpt.pth', f'{flag}=1'])
    assert args.local_rank == 1
    assert os.environ['LOCAL_RANK'] == '1'


def test_local_rank_env_wins(train_tool, monkeypatch):
    monkeypatch.setenv('LOCAL_RANK', '5')
    args = train_tool.parse_args(['cfg.py', '--local-rank', '2'])
    assert args.local_rank == 2 and os.environ['LOCAL_RANK'] == '5'


def test_train_arguments(train_tool):
    args = train_tool.parse_args(['cfg.py'])
    assert args.resume is None and args.launcher == 'none'
    assert not args.amp and not args.auto_scale_lr and not args.no_validate
    assert train_tool.parse_args(['cfg.py', '--resume']).resume == 'auto'
    assert train_tool.parse_args(['cfg.py', '--resume',
                                  'a.pth']).resume == 'a.pth'
    args = train_tool.parse_args(
        ['cfg.py', '--cfg-options', 'a.b=1', 'c=[1,2]', '--launcher', 'slurm'])
    assert args.cfg_options == {'a.b': 1, 'c': [1, 2]}
    assert args.launcher == 'slurm'
    with pytest.raises(SystemExit):
        train_tool.parse_args(['cfg.py', '--launcher', 'ssh'])


def test_test_arguments(test_tool):
    args = test_tool.parse_args([
        'cfg.py', 'ckpt.pth', '--work-dir', 'w', '--out', 'r.pkl',
        '--show-dir', 'vis', '--cfg-options', 'x=1'
    ])
    assert (args.config, args.checkpoint, args.work_dir, args.out,
            args.show_dir) == ('cfg.py', 'ckpt.pth', 'w', 'r.pkl', 'vis')
    assert args.cfg_options == {'x': 1}


def test_malformed_cfg_option_is_a_usage_error(train_tool, capsys):
    with pytest.raises(SystemExit) as exc:
        train_tool.parse_args(['cfg.py', '--cfg-options', 'lr0.1'])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert 'expected KEY=VALUE' in err and "'lr0.1'" in err


def _cfg(**extra):
    cfg = dict(
        model=dict(
            type='mmpretrain.ImageClassifier',
            backbone=dict(type='mmpretrain.ResNet', depth=2)),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        train_dataloader=dict(batch_size=2, num_workers=0, dataset=dict()),
        val_dataloader=dict(batch_size=2, num_workers=2, dataset=dict()),
        val_cfg=dict(),
        val_evaluator=dict(type='Accuracy'),
        pipeline=[dict(type='A'), dict(type='B')])
    cfg.update(extra)
    return Config(cfg)


def test_merge_args_defaults(train_tool):
    args = train_tool.parse_args(['configs/x/my_cfg.py', '--no-validate'])
    cfg = train_tool.merge_args(_cfg(), args)
    assert cfg.work_dir == osp.join('./work_dirs', 'my_cfg')
    assert cfg.val_cfg is None and cfg.val_dataloader is None
    assert cfg.launcher == 'none'
    loader = cfg.train_dataloader
    assert loader.collate_fn == dict(type='default_collate')
    assert loader.pin_memory == torch.cuda.is_available()
    assert 'persistent_workers' not in loader  # num_workers=0


def test_merge_args_resume_and_work_dir(train_tool):
    args = train_tool.parse_args(['c.py', '--resume', '--work-dir', 'w'])
    cfg = train_tool.merge_args(_cfg(load_from='x.pth'), args)
    assert cfg.resume is True and cfg.load_from is None
    assert cfg.work_dir == 'w'
    args = train_tool.parse_args(['c.py', '--resume', 'ckpt.pth'])
    cfg = train_tool.merge_args(_cfg(), args)
    assert cfg.resume is True and cfg.load_from == 'ckpt.pth'


def test_auto_scale_lr_needs_config_entry(train_tool):
    args = train_tool.parse_args(['c.py', '--auto-scale-lr'])
    with pytest.raises(ToolError, match='base_batch_size'):
        train_tool.merge_args(_cfg(), args)
    cfg = train_tool.merge_args(
        _cfg(auto_scale_lr=dict(base_batch_size=256)), args)
    assert cfg.auto_scale_lr.enable is True


def test_amp_without_cuda_keeps_fp32(train_tool, monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    monkeypatch.setattr(machine_cfg, 'cpu_has_amx_bf16', lambda: False)
    args = train_tool.parse_args(['c.py', '--amp'])
    cfg = train_tool.merge_args(_cfg(), args)
    assert cfg.optim_wrapper.get('type', 'OptimWrapper') == 'OptimWrapper'
    assert 'loss_scale' not in cfg.optim_wrapper
    # a config that itself asks for AMP is downgraded as well
    cfg = _cfg()
    cfg.optim_wrapper.update(type='AmpOptimWrapper', loss_scale='dynamic')
    runner_utils.configure_amp(cfg, enable=False)
    assert cfg.optim_wrapper.type == 'OptimWrapper'
    assert 'loss_scale' not in cfg.optim_wrapper


def test_amp_on_a_cpu_with_amx_trains_in_bf16(train_tool, monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    monkeypatch.setattr(machine_cfg, 'cpu_has_amx_bf16', lambda: True)
    # --amp after --cfg-options: an AmpOptimWrapper set there switches too
    args = train_tool.parse_args([
        'c.py', '--amp', '--cfg-options', 'optim_wrapper.type=AmpOptimWrapper'
    ])
    cfg = train_tool.merge_args(_cfg(), args)
    assert cfg.optim_wrapper.type == 'mmssl.CPUAmpOptimWrapper'
    assert cfg.optim_wrapper.dtype == 'bfloat16'
    # without --amp the same machine trains in fp32
    args = train_tool.parse_args(
        ['c.py', '--cfg-options', 'optim_wrapper.type=AmpOptimWrapper'])
    cfg = train_tool.merge_args(_cfg(), args)
    assert cfg.optim_wrapper.type == 'OptimWrapper'


def test_amp_with_cuda_uses_amp_wrapper(monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    cfg = runner_utils.configure_amp(_cfg(), enable=True)
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert cfg.optim_wrapper.loss_scale == 'dynamic'


def test_missing_config_file_message(tmp_path):
    (tmp_path / 'mae_vit-tiny_1xb8.py').write_text('x = 1\n')
    with pytest.raises(ConfigFileError) as exc:
        runner_utils.load_config(str(tmp_path / 'mae_vit-tiny_1xb9.py'))
    msg = str(exc.value)
    assert 'does not exist' in msg and 'mae_vit-tiny_1xb9.py' in msg
    assert 'did you mean' in msg and 'mae_vit-tiny_1xb8.py' in msg
    with pytest.raises(ConfigFileError, match='folder .* does not exist'):
        runner_utils.load_config(str(tmp_path / 'nope' / 'cfg.py'))


def test_missing_base_config_message(tmp_path):
    path = tmp_path / 'child.py'
    path.write_text("_base_ = ['./missing_base.py']\n")
    with pytest.raises(ConfigFileError, match='_base_'):
        runner_utils.load_config(str(path))


def test_cfg_options_typo_is_refused():
    with pytest.raises(CfgOptionsError) as exc:
        runner_utils.merge_cfg_options(_cfg(), {'model.backbon.depth': 3},
                                       'cfg.py')
    msg = str(exc.value)
    assert "'model.backbon.depth'" in msg and "'backbone'" in msg
    assert 'cfg.py' in msg
    with pytest.raises(CfgOptionsError, match="'optim_wrapper'"):
        runner_utils.merge_cfg_options(_cfg(),
                                       {'optim_wraper.optimizer.lr': 1.0},
                                       'cfg.py')
    with pytest.raises(CfgOptionsError, match='not a valid index'):
        runner_utils.merge_cfg_options(_cfg(), {'pipeline.5.type': 'C'},
                                       'cfg.py')
    with pytest.raises(CfgOptionsError, match='not a dict'):
        runner_utils.merge_cfg_options(_cfg(), {'model.backbone.depth.x': 1},
                                       'cfg.py')


def test_cfg_options_valid_keys_merge():
    cfg = runner_utils.merge_cfg_options(
        _cfg(), {
            'model.backbone.depth': 3,
            'model.backbone.init_cfg.type': 'Pretrained',
            'pipeline.1.type': 'C',
            'randomness.seed': 1,
        }, 'cfg.py')
    assert cfg.model.backbone.depth == 3
    assert cfg.model.backbone.init_cfg.type == 'Pretrained'
    assert cfg.pipeline[1].type == 'C'
    assert cfg.randomness.seed == 1


def test_launcher_pytorch_outside_torchrun(monkeypatch):
    monkeypatch.delenv('RANK', raising=False)
    with pytest.raises(ToolError, match='torchrun'):
        runner_utils.configure_distributed(_cfg(), 'pytorch')


def test_run_tool_formats_user_errors(capsys):

    def user_error():
        raise ConfigFileError("config file 'x.py' does not exist")

    with pytest.raises(SystemExit) as exc:
        runner_utils.run_tool(user_error)
    assert exc.value.code == 2
    assert capsys.readouterr().err == \
        "error: config file 'x.py' does not exist\n"

    def bug():
        raise ZeroDivisionError('a genuine bug')

    with pytest.raises(ZeroDivisionError):  # keeps its traceback
        runner_utils.run_tool(bug)


def test_cfg_options_applied_before_machine_defaults(train_tool, monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    monkeypatch.setattr(machine_cfg, 'cpu_has_amx_bf16', lambda: False)
    args = train_tool.parse_args([
        'c.py', '--amp', '--cfg-options', 'val_dataloader.num_workers=0',
        'optim_wrapper.type=AmpOptimWrapper'
    ])
    cfg = _cfg()
    cfg.val_dataloader.persistent_workers = True
    cfg = train_tool.merge_args(cfg, args)
    # torch refuses persistent workers without workers
    assert 'persistent_workers' not in cfg.val_dataloader
    # AmpOptimWrapper cannot be built without CUDA
    assert cfg.optim_wrapper.type == 'OptimWrapper'


def test_cfg_options_new_key_near_existing_one_is_accepted():
    cfg = _cfg()
    cfg.model.backbone.drop_rate = 0.
    runner_utils.merge_cfg_options(cfg, {'model.backbone.drop_path_rate': .1},
                                   'cfg.py')
    assert cfg.model.backbone.drop_path_rate == .1


def test_cfg_options_unknown_key_is_refused():
    # not close to any key and not an argument of mmpretrain's ResNet
    with pytest.raises(CfgOptionsError) as exc:
        runner_utils.merge_cfg_options(_cfg(), {'model.backbone.colour': 1},
                                       'cfg.py')
    msg = str(exc.value)
    assert "no key 'colour' under model.backbone" in msg
    assert "ResNet has no argument 'colour'" in msg
    assert '+model.backbone.colour=' in msg
    # a top-level key that is neither in the config nor a Runner argument
    with pytest.raises(
            CfgOptionsError, match="no key 'my_setting' under "
            '<top level>'):
        runner_utils.merge_cfg_options(_cfg(), {'my_setting': 1}, 'cfg.py')
    # a type-less dict the Runner builds: DataLoader arguments only
    with pytest.raises(CfgOptionsError, match="'presistent_workers'"):
        runner_utils.merge_cfg_options(
            _cfg(), {'train_dataloader.presistent_workers': True}, 'cfg.py')
    # an unregistered type: its arguments cannot be known
    cfg = _cfg()
    cfg.model.neck = dict(type='NoSuchNeck')
    with pytest.raises(CfgOptionsError, match='not a registered class'):
        runner_utils.merge_cfg_options(cfg, {'model.neck.depth': 1}, 'cfg.py')


def test_cfg_options_plus_adds_a_new_key(train_tool):
    args = train_tool.parse_args(
        ['c.py', '--cfg-options', '+my_setting.a=1', 'randomness.seed=3'])
    assert args.cfg_options == {'+my_setting.a': 1, 'randomness.seed': 3}
    cfg = runner_utils.merge_cfg_options(_cfg(), args.cfg_options, 'c.py')
    assert cfg.my_setting.a == 1 and cfg.randomness.seed == 3
    assert '+my_setting' not in cfg
    # arguments of what the Runner builds need no '+'
    cfg = runner_utils.merge_cfg_options(
        _cfg(), {
            'train_dataloader.persistent_workers': True,
            'randomness.diff_rank_seed': True,
            'env_cfg.cudnn_benchmark': True
        }, 'c.py')
    assert cfg.train_dataloader.persistent_workers is True
    assert cfg.randomness.diff_rank_seed is True
    # '+' does not excuse a bad list index
    with pytest.raises(CfgOptionsError, match='not a valid index'):
        runner_utils.merge_cfg_options(_cfg(), {'+pipeline.7.type': 'C'},
                                       'c.py')
    with pytest.raises(SystemExit):  # '+' alone is no key
        train_tool.parse_args(['c.py', '--cfg-options', '+=1'])
