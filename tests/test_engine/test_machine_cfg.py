# Copyright (c) mmssl contributors. All rights reserved.
"""mmssl.engine.machine_cfg: --amp, distributed launches and dataloader
defaults adapted to a machine with or without CUDA (torch.cuda and
mmengine's init_dist stood in for)."""
import logging

import mmengine.dist
import pytest
import torch
from mmengine.config import Config

from mmssl.engine import machine_cfg
from mmssl.engine.tool_errors import ToolError


def _cfg(**extra):
    cfg = dict(
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        train_dataloader=dict(batch_size=2, num_workers=0, dataset=dict()),
        val_dataloader=dict(batch_size=2, num_workers=2, dataset=dict()))
    cfg.update(extra)
    return Config(cfg)


@pytest.fixture
def cuda(monkeypatch):
    """``cuda(True / False)`` sets what torch.cuda.is_available answers."""

    def set_cuda(available):
        monkeypatch.setattr(torch.cuda, 'is_available', lambda: available)

    return set_cuda


@pytest.fixture
def warnings(monkeypatch):
    """The messages machine_cfg logs, with their levels."""
    logged = []
    monkeypatch.setattr(
        machine_cfg,
        'print_log',
        lambda msg, logger=None, level=logging.INFO: logged.append(
            (level, msg)))
    return logged


@pytest.fixture
def amx(monkeypatch):
    """``amx(True / False)`` sets whether the CPU has AMX bf16 units."""

    def set_amx(available):
        monkeypatch.setattr(machine_cfg, 'cpu_has_amx_bf16', lambda: available)

    return set_amx


# ---------------------------------------------------------------- --amp
@pytest.mark.parametrize('amp_type', machine_cfg.AMP_WRAPPERS)
@pytest.mark.parametrize('has_amx', [False, True])
def test_a_config_asking_for_amp_gets_fp32_without_cuda(
        cuda, amx, warnings, amp_type, has_amx):
    # without --amp, even a CPU with AMX trains such a config in fp32
    cuda(False)
    amx(has_amx)
    cfg = _cfg()
    cfg.optim_wrapper.update(
        type=amp_type, loss_scale=512., dtype='float16', use_fsdp=False)
    machine_cfg.configure_amp(cfg, enable=False)
    assert cfg.optim_wrapper == dict(
        type='OptimWrapper', optimizer=dict(type='SGD', lr=0.1))
    assert warnings == [(logging.WARNING,
                         'The config uses AmpOptimWrapper but CUDA is not '
                         'available: using OptimWrapper (fp32) instead '
                         '(with --amp, a CPU with AMX bf16 units trains in '
                         'bf16 autocast)')]


def test_amp_flag_without_cuda_or_amx_is_a_warning_and_fp32(
        cuda, amx, warnings):
    cuda(False)
    amx(False)
    cfg = machine_cfg.configure_amp(_cfg(), enable=True)
    assert 'type' not in cfg.optim_wrapper
    assert len(warnings) == 1 and warnings[0][0] == logging.WARNING
    assert warnings[0][1].startswith('--amp is ignored: CUDA is not avail')
    assert 'no AMX bf16 units' in warnings[0][1]
    # an AMP config with --amp on such a CPU: fp32 too
    cfg = _cfg()
    cfg.optim_wrapper.update(type='AmpOptimWrapper', loss_scale='dynamic')
    machine_cfg.configure_amp(cfg, enable=True)
    assert cfg.optim_wrapper == dict(
        type='OptimWrapper', optimizer=dict(type='SGD', lr=0.1))
    with pytest.raises(ToolError, match='--amp needs an optim_wrapper'):
        machine_cfg.configure_amp(Config(dict()), enable=True)
    # nothing to do without the flag, without CUDA and without a wrapper
    assert machine_cfg.configure_amp(Config(), enable=False).to_dict() == {}


@pytest.mark.parametrize('amp_type', [None, *machine_cfg.AMP_WRAPPERS])
def test_amp_flag_on_a_cpu_with_amx_trains_in_bf16(cuda, amx, warnings,
                                                   amp_type):
    cuda(False)
    amx(True)
    cfg = _cfg()
    cfg.optim_wrapper.update(accumulative_counts=2, clip_grad=dict(max_norm=1))
    if amp_type is not None:
        # fp16 and its loss scaling have no CPU autocast: bf16 instead
        cfg.optim_wrapper.update(
            type=amp_type,
            loss_scale='dynamic',
            dtype='float16',
            use_fsdp=False)
    machine_cfg.configure_amp(cfg, enable=True)
    assert cfg.optim_wrapper == dict(
        type='mmssl.CPUAmpOptimWrapper',
        dtype='bfloat16',
        optimizer=dict(type='SGD', lr=0.1),
        accumulative_counts=2,
        clip_grad=dict(max_norm=1))
    assert len(warnings) == 1 and warnings[0][0] == logging.INFO
    assert 'AMX' in warnings[0][1] and 'CPUAmpOptimWrapper' in warnings[0][1]


def test_amp_with_cuda_keeps_a_configs_own_amp_settings(cuda, warnings):
    cuda(True)
    cfg = _cfg()
    cfg.optim_wrapper.update(type='mmengine.AmpOptimWrapper', loss_scale=64.)
    machine_cfg.configure_amp(cfg, enable=True)
    assert cfg.optim_wrapper.type == 'mmengine.AmpOptimWrapper'
    assert cfg.optim_wrapper.loss_scale == 64.
    # with CUDA and without the flag, an AMP config is left as it is
    cfg = _cfg()
    cfg.optim_wrapper.update(type='AmpOptimWrapper', dtype='bfloat16')
    machine_cfg.configure_amp(cfg, enable=False)
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert cfg.optim_wrapper.dtype == 'bfloat16'
    assert warnings == []


@pytest.mark.parametrize('has_amx', [False, True])
def test_test_amp_sets_fp16_with_cuda_or_amx_only(cuda, amx, warnings,
                                                  has_amx):
    amx(has_amx)
    cuda(True)
    assert machine_cfg.configure_test_amp(_cfg(),
                                          False).to_dict() == _cfg().to_dict()
    cfg = machine_cfg.configure_test_amp(_cfg(), True)
    assert cfg.test_cfg == dict(fp16=True)
    cfg = machine_cfg.configure_test_amp(_cfg(test_cfg=None), True)
    assert cfg.test_cfg == dict(fp16=True)
    cfg = machine_cfg.configure_test_amp(_cfg(test_cfg=dict(a=1)), True)
    assert cfg.test_cfg == dict(a=1, fp16=True)
    assert warnings == []
    cuda(False)
    assert machine_cfg.configure_test_amp(_cfg(),
                                          False).to_dict() == _cfg().to_dict()
    cfg = machine_cfg.configure_test_amp(_cfg(test_cfg=dict(a=1)), True)
    if has_amx:  # mmengine's TestLoop autocast is bf16 on the CPU
        assert cfg.test_cfg == dict(a=1, fp16=True)
        assert len(warnings) == 1 and warnings[0][0] == logging.INFO
        assert 'AMX' in warnings[0][1] and 'bf16' in warnings[0][1]
    else:
        assert cfg.test_cfg == dict(a=1)
        assert len(warnings) == 1 and warnings[0][0] == logging.WARNING
        assert warnings[0][1].startswith('--amp is ignored: CUDA is not '
                                         'available and this CPU has no AMX')


# --------------------------------------------------------- distributed
@pytest.fixture
def dist_calls(monkeypatch):
    """Calls of mmengine's init_dist; is_distributed answers False."""
    calls = []

    def init_dist(launcher, **kwargs):
        calls.append((launcher, kwargs))
        torch.cuda.set_device(0)  # mmengine calls it; must be a no-op here

    monkeypatch.setattr(mmengine.dist, 'init_dist', init_dist)
    monkeypatch.setattr(mmengine.dist, 'is_distributed', lambda: False)
    return calls


def test_no_launcher_leaves_the_config(cuda, dist_calls, monkeypatch):
    cuda(False)
    monkeypatch.delenv('RANK', raising=False)
    cfg = machine_cfg.configure_distributed(_cfg(), 'none')
    assert cfg.to_dict() == _cfg().to_dict()
    assert dist_calls == []


def test_cpu_launch_uses_gloo_and_ddp_without_device_ids(
        cuda, dist_calls, warnings, monkeypatch):
    cuda(False)
    monkeypatch.setenv('RANK', '0')
    cfg = machine_cfg.configure_distributed(
        _cfg(find_unused_parameters=True), 'pytorch')
    assert cfg.env_cfg.dist_cfg == dict(backend='gloo')
    assert cfg.model_wrapper_cfg == dict(
        type='MMDistributedDataParallel',
        broadcast_buffers=False,
        find_unused_parameters=True,
        device_ids=None)
    assert dist_calls == [('pytorch', dict(backend='gloo'))]
    assert [level for level, _ in warnings] == [logging.WARNING]
    assert "'gloo'" in warnings[0][1] and "'nccl'" in warnings[0][1]
    # find_unused_parameters defaults to False
    cfg = machine_cfg.configure_distributed(_cfg(), 'pytorch')
    assert cfg.model_wrapper_cfg.find_unused_parameters is False


def test_cpu_launch_keeps_a_configs_backend_and_wrapper(
        cuda, dist_calls, warnings, monkeypatch):
    cuda(False)
    monkeypatch.delenv('RANK', raising=False)  # only pytorch needs RANK
    cfg = _cfg(
        env_cfg=dict(dist_cfg=dict(backend='gloo', timeout=60)),
        model_wrapper_cfg=dict(type='X', device_ids=[3]))
    machine_cfg.configure_distributed(cfg, 'slurm')
    assert cfg.env_cfg.dist_cfg == dict(backend='gloo', timeout=60)
    assert cfg.model_wrapper_cfg == dict(type='X', device_ids=[3])
    assert dist_calls == [('slurm', dict(backend='gloo', timeout=60))]
    assert warnings == []
    # an env_cfg without dist_cfg, a wrapper without device_ids
    cfg = _cfg(
        env_cfg=dict(cudnn_benchmark=False), model_wrapper_cfg=dict(type='X'))
    machine_cfg.configure_distributed(cfg, 'mpi')
    assert cfg.env_cfg == dict(
        cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
    assert cfg.model_wrapper_cfg == dict(type='X', device_ids=None)


def test_launch_with_cuda_or_an_initialised_group(cuda, dist_calls,
                                                  monkeypatch):
    monkeypatch.setenv('RANK', '0')
    cuda(True)
    cfg = machine_cfg.configure_distributed(_cfg(), 'pytorch')
    assert cfg.to_dict() == _cfg().to_dict()
    assert dist_calls == []
    cuda(False)
    monkeypatch.setattr(mmengine.dist, 'is_distributed', lambda: True)
    cfg = machine_cfg.configure_distributed(_cfg(), 'pytorch')
    assert cfg.env_cfg.dist_cfg.backend == 'gloo'
    assert dist_calls == []


def test_set_device_is_a_no_op_only_inside_the_guard():
    original = torch.cuda.set_device
    with machine_cfg._no_cuda_set_device():
        assert torch.cuda.set_device(5, 'x', key=1) is None
    assert torch.cuda.set_device is original
    with pytest.raises(KeyError), machine_cfg._no_cuda_set_device():
        raise KeyError
    assert torch.cuda.set_device is original


# ------------------------------------------------------ dataloader cfg
def test_dataloader_defaults_follow_the_machine(cuda):
    cuda(False)
    cfg = machine_cfg.set_default_dataloader_cfg(
        _cfg(), ['train_dataloader', 'val_dataloader', 'test_dataloader'])
    assert cfg.train_dataloader == dict(
        pin_memory=False,
        collate_fn=dict(type='default_collate'),
        batch_size=2,
        num_workers=0,
        dataset=dict())
    assert cfg.val_dataloader.persistent_workers is True
    assert cfg.val_dataloader.pin_memory is False
    cfg = machine_cfg.set_default_dataloader_cfg(
        _cfg(val_dataloader=dict(num_workers=1)), ['val_dataloader'])
    assert cfg.val_dataloader.persistent_workers is True
    assert 'test_dataloader' not in cfg
    cuda(True)
    cfg = machine_cfg.set_default_dataloader_cfg(_cfg(), ['val_dataloader'])
    assert cfg.val_dataloader.pin_memory is True
    assert cfg.train_dataloader == _cfg().train_dataloader  # not listed


def test_dataloader_config_values_win_and_false_flags_win_over_them(cuda):
    cuda(True)
    loader = dict(
        batch_size=2,
        num_workers=1,
        pin_memory=False,
        persistent_workers=False,
        collate_fn=dict(type='pseudo_collate'),
        dataset=dict())
    cfg = machine_cfg.set_default_dataloader_cfg(
        _cfg(train_dataloader=loader), ['train_dataloader'])
    assert cfg.train_dataloader == loader
    cfg = machine_cfg.set_default_dataloader_cfg(
        _cfg(
            train_dataloader=dict(
                loader, pin_memory=True, persistent_workers=True)),
        ['train_dataloader'],
        pin_memory=False,
        persistent_workers=False)
    assert cfg.train_dataloader.pin_memory is False
    assert 'persistent_workers' not in cfg.train_dataloader
    # True passed in changes nothing the defaults do not
    cfg = machine_cfg.set_default_dataloader_cfg(
        _cfg(), ['val_dataloader'], pin_memory=True, persistent_workers=True)
    assert cfg.val_dataloader.persistent_workers is True
    # torch refuses persistent workers without workers: dropped
    cfg = machine_cfg.set_default_dataloader_cfg(
        _cfg(
            train_dataloader=dict(
                loader, num_workers=0, persistent_workers=True)),
        ['train_dataloader'])
    assert 'persistent_workers' not in cfg.train_dataloader
    cfg = machine_cfg.set_default_dataloader_cfg(
        _cfg(train_dataloader=dict(batch_size=1, persistent_workers=True)),
        ['train_dataloader'])
    assert 'persistent_workers' not in cfg.train_dataloader


# ------------------------------------------------------------ runners
def test_build_runner_honours_runner_type(monkeypatch):
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner

    built = []
    monkeypatch.setattr(
        Runner, 'from_cfg',
        classmethod(lambda cls, cfg: built.append('from_cfg') or 'runner'))
    monkeypatch.setattr(RUNNERS, 'build',
                        lambda cfg: built.append('registry') or 'custom')
    compiled = []
    monkeypatch.setattr('mmssl.engine.compile.compile_forward_in_runner',
                        compiled.append)
    assert machine_cfg.build_runner(_cfg()) == 'runner'
    assert machine_cfg.build_runner(_cfg(runner_type='X')) == 'custom'
    assert built == ['from_cfg', 'registry']
    assert compiled == ['runner', 'custom']


def test_to_fp32_wrapper_changes_only_amp_wrappers():
    plain = dict(type='OptimWrapper', optimizer=dict(type='SGD'), dtype='x')
    assert not machine_cfg.is_amp_wrapper(plain)
    assert not machine_cfg.is_amp_wrapper(dict(optimizer=dict(type='SGD')))
    assert not machine_cfg.to_fp32_wrapper(plain)
    assert plain == dict(
        type='OptimWrapper', optimizer=dict(type='SGD'), dtype='x')
    amp = dict(
        type='mmengine.AmpOptimWrapper',
        optimizer=dict(type='SGD'),
        loss_scale='dynamic',
        dtype='bfloat16',
        use_fsdp=False,
        accumulative_counts=2)
    assert machine_cfg.is_amp_wrapper(amp)
    assert machine_cfg.to_fp32_wrapper(amp)
    assert amp == dict(
        type='OptimWrapper', optimizer=dict(type='SGD'), accumulative_counts=2)
