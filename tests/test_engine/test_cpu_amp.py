# Copyright (c) mmssl contributors. All rights reserved.
"""mmssl.CPUAmpOptimWrapper: bf16 autocast on the CPU (fp32 parameters,
gradients and optimizer state), built from a config, resumable."""
import copy

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import OptimWrapper, build_optim_wrapper
from mmengine.registry import init_default_scope
from torch import nn

from mmssl.engine.optimizers import CPUAmpOptimWrapper, cpu_has_amx_bf16
from mmssl.testing import (assert_resume_equals_straight, tiny_mae_cfg,
                           tiny_pretrain_runner_cfg, train_state,
                           write_random_images)


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.Linear(16, 4))


def _wrapper(net, **kwargs):
    return CPUAmpOptimWrapper(
        optimizer=torch.optim.AdamW(net.parameters(), lr=0.1), **kwargs)


def test_the_forward_runs_in_bf16_and_the_state_stays_fp32():
    net = _net()
    wrapper = _wrapper(net)
    x = torch.randn(5, 8)
    with wrapper.optim_context(net):
        out = net(x)
        assert out.dtype == torch.bfloat16
    assert net(x).dtype == torch.float32  # the context is left again
    wrapper.update_params(out.float().square().mean())
    assert all(p.dtype == torch.float32 for p in net.parameters())
    state = wrapper.optimizer.state[net[0].weight]
    assert state['exp_avg'].dtype == torch.float32
    assert wrapper.cast_dtype == torch.bfloat16


def test_a_step_is_the_autocast_step_of_torch():
    x, y = torch.randn(6, 8), torch.randn(6, 4)
    net, ref = _net(), _net()
    wrapper = _wrapper(net)
    ref_opt = torch.optim.AdamW(ref.parameters(), lr=0.1)
    for _ in range(3):
        with wrapper.optim_context(net):
            loss = (net(x).float() - y).square().mean()
        wrapper.update_params(loss)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            ref_loss = (ref(x).float() - y).square().mean()
        ref_loss.backward()
        ref_opt.step()
        ref_opt.zero_grad()
        assert torch.equal(loss, ref_loss)
    for p, q in zip(net.parameters(), ref.parameters()):
        assert torch.equal(p, q)
    # and bf16 is not fp32: the same steps without autocast differ
    fp32 = _net()
    opt = torch.optim.AdamW(fp32.parameters(), lr=0.1)
    for _ in range(3):
        (fp32(x) - y).square().mean().backward()
        opt.step()
        opt.zero_grad()
    assert not torch.equal(fp32[0].weight, net[0].weight)


def test_gradient_accumulation_of_the_base_wrapper_still_works():
    net = _net()
    wrapper = _wrapper(net, accumulative_counts=2)
    before = net[0].weight.detach().clone()
    x = torch.randn(4, 8)
    with wrapper.optim_context(net):
        loss = net(x).float().sum()
    wrapper.update_params(loss)
    assert torch.equal(net[0].weight, before)  # gradient kept, no step
    with wrapper.optim_context(net):
        loss = net(x).float().sum()
    wrapper.update_params(loss)
    assert not torch.equal(net[0].weight, before)


@pytest.mark.parametrize('dtype', ['bfloat16', torch.bfloat16, None])
def test_bf16_is_the_only_dtype(dtype):
    assert _wrapper(_net(), dtype=dtype).cast_dtype == torch.bfloat16


@pytest.mark.parametrize('dtype', ['float16', torch.float16, 'float32'])
def test_other_dtypes_are_refused_by_name(dtype):
    with pytest.raises(ValueError, match=r'dtype=.*float.*bfloat16 only'):
        _wrapper(_net(), dtype=dtype)


def test_built_from_a_config_and_its_state_is_the_optimizers():
    init_default_scope('mmssl')
    net = _net()
    wrapper = build_optim_wrapper(
        net,
        dict(
            type='mmssl.CPUAmpOptimWrapper',
            optimizer=dict(type='AdamW', lr=0.1)))
    assert type(wrapper) is CPUAmpOptimWrapper
    with wrapper.optim_context(net):
        loss = net(torch.randn(3, 8)).float().sum()
    wrapper.update_params(loss)
    state = wrapper.state_dict()
    assert state.keys() == wrapper.optimizer.state_dict().keys()
    # a plain OptimWrapper loads it (a checkpoint resumes without --amp)
    plain = OptimWrapper(
        optimizer=torch.optim.AdamW(copy.deepcopy(net).parameters(), lr=0.1))
    plain.load_state_dict(state)
    assert torch.equal(plain.optimizer.state_dict()['state'][0]['exp_avg'],
                       state['state'][0]['exp_avg'])


def test_amx_probe(monkeypatch):
    assert isinstance(cpu_has_amx_bf16(), bool)
    monkeypatch.setattr(torch.cpu, '_is_amx_tile_supported', lambda: True)
    assert cpu_has_amx_bf16() is True
    monkeypatch.setattr(torch.cpu, '_is_amx_tile_supported', lambda: False)
    assert cpu_has_amx_bf16() is False
    monkeypatch.delattr(torch.cpu, '_is_amx_tile_supported')
    assert cpu_has_amx_bf16() is False


def _bf16_cfg(work_dir, data_root, max_epochs, resume_from=None):
    cfg = Config(
        tiny_pretrain_runner_cfg(
            tiny_mae_cfg(),
            work_dir,
            data_root,
            max_epochs,
            resume_from=resume_from))
    cfg.optim_wrapper.type = 'mmssl.CPUAmpOptimWrapper'
    return cfg


def test_a_bf16_mae_run_resumes_exactly(tmp_path):
    data = tmp_path / 'imgs'
    data.mkdir()
    write_random_images(str(data))
    straight, _, ckpt = assert_resume_equals_straight(
        lambda work_dir, epochs, ckpt: _bf16_cfg(work_dir, str(data), epochs,
                                                 ckpt), str(tmp_path))
    assert 'loss_scaler' not in ckpt['optimizer']
    # the runner trained in bf16: fp32 training ends elsewhere
    fp32 = _bf16_cfg(str(tmp_path / 'fp32'), str(data), 4)
    fp32.optim_wrapper.type = 'OptimWrapper'
    fp32 = train_state(fp32)
    assert max(
        (fp32[k] - straight[k]).abs().max().item() for k in straight) > 1e-4
