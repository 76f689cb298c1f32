# Copyright (c) mmssl contributors. All rights reserved.
"""The benchmark's arithmetic on fake clocks and fake memory meters: how the
windows become img/s, the FLOPs per image, the peak, the memory fields and
the ratios; the matmul peak; the state and step memory by hand."""
import inspect
import io
import os.path as osp
import types

import pytest
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.model import BaseDataPreprocessor, BaseModel
from mmengine.optim import OptimWrapper

from mmssl.analysis import benchmark, step_memory
from mmssl.analysis.benchmark import (add_timing_args, amp_dtype,
                                      benchmark_configs, build_train_model,
                                      count_train_flops, measure_matmul_peak)
from mmssl.engine.optimizers import CPUAmpOptimWrapper

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
TINY = osp.join(ROOT,
                'configs/mae/mae_vit-tiny-p8_1xb64-coslr-30e_embedded.py')
MIB = 2**20


class FakeClock:
    """``perf_counter`` that returns the given readings in turn."""

    def __init__(self, readings):
        self.readings = list(readings)
        self.calls = 0

    def __call__(self):
        self.calls += 1
        return self.readings.pop(0)


def test_documented_defaults():
    params = inspect.signature(benchmark_configs).parameters
    assert {
        k: params[k].default
        for k in ('iters', 'warmup', 'repeat', 'seed', 'matmul_size')
    } == dict(
        iters=20, warmup=5, repeat=3, seed=0, matmul_size=2048)
    params = inspect.signature(measure_matmul_peak).parameters
    assert (params['n'].default, params['repeats'].default) == (2048, 5)
    args = add_timing_args(__import__('argparse').ArgumentParser(), 7, 2,
                           4).parse_args([])
    assert vars(args) == dict(
        iters=7,
        warmup=2,
        repeat=4,
        threads=None,
        device='cpu',
        seed=0,
        cfg_options=None,
        out=None)


def test_matmul_peak_is_the_fastest_product(monkeypatch):
    n = 32
    # one untimed warm-up product, then three timed ones: 0.5, 0.25, 0.4 s
    clock = FakeClock([0., .5, 1., 1.25, 2., 2.4])
    monkeypatch.setattr(benchmark, 'time',
                        types.SimpleNamespace(perf_counter=clock))
    peak = measure_matmul_peak('cpu', n=n, repeats=3)
    assert clock.calls == 6
    assert peak == pytest.approx(2 * n**3 / .25 / 1e9)
    # repeats=0 still times one product; a zero time is clamped to 1 ns
    clock = FakeClock([3., 3.])
    monkeypatch.setattr(benchmark, 'time',
                        types.SimpleNamespace(perf_counter=clock))
    assert measure_matmul_peak(
        'cpu', n=n, repeats=0) == pytest.approx(2 * n**3)
    assert clock.calls == 2


class _Recorder(BaseDataPreprocessor):

    def forward(self, data, training=False):
        self.training_flags.append(training)
        return super().forward(data, training)


class _Net(BaseModel):

    def __init__(self):
        super().__init__(data_preprocessor=_Recorder())
        self.data_preprocessor.training_flags = []
        self.fc = nn.Linear(6, 5)

    def forward(self, inputs, data_samples=None, mode='loss'):
        return dict(loss=self.fc(inputs).sum())


def test_flops_of_a_base_model_run_its_preprocessor_in_training_mode():
    net = _Net()
    flops = count_train_flops(net, dict(inputs=torch.randn(4, 6)))
    assert flops == 2 * (2 * 4 * 6 * 5)  # forward + weight gradient
    assert net.data_preprocessor.training_flags == [True]


def test_an_amp_config_trains_in_fp32_on_cpu():
    cfg = Config.fromfile(TINY)
    cfg.optim_wrapper = dict(
        type='AmpOptimWrapper',
        loss_scale='dynamic',
        dtype='bfloat16',
        optimizer=dict(type='SGD', lr=0.1))
    model, wrapper, amp = build_train_model(cfg, 'cpu')
    assert type(wrapper) is OptimWrapper and amp is False
    assert model.training
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'  # not changed


def test_amp_on_cpu_is_bf16_autocast_for_every_config():
    cfg = Config.fromfile(TINY)
    for wrapper_cfg in (dict(optimizer=dict(type='SGD', lr=0.1)),
                        dict(
                            type='AmpOptimWrapper',
                            loss_scale='dynamic',
                            optimizer=dict(type='SGD', lr=0.1))):
        cfg.optim_wrapper = wrapper_cfg
        _, wrapper, amp = build_train_model(cfg, 'cpu', amp=True)
        assert type(wrapper) is CPUAmpOptimWrapper and amp is True
        assert amp_dtype(wrapper) == torch.bfloat16
    # one arm in bf16: an AmpOptimWrapper config switched by its type alone
    cfg.optim_wrapper.type = 'mmssl.CPUAmpOptimWrapper'
    _, wrapper, amp = build_train_model(cfg, 'cpu')
    assert type(wrapper) is CPUAmpOptimWrapper and amp is True


class _FakeMeter:

    method = 'fake meter'

    def __init__(self, device):
        self.device = device

    def start(self):
        pass

    def stop(self):
        return 2. * MIB


def _tiny(batch_size):
    cfg = Config.fromfile(TINY)
    cfg.train_dataloader.batch_size = batch_size
    return cfg


@pytest.mark.parametrize('given_peak', [None, 50.])
def test_numbers_from_the_windows(monkeypatch, given_peak):
    """Two configs (batch 2 and 4), three windows each, interleaved: the
    median img/s, s/iter, FLOPs per image, the peak and its share, memory in
    MiB, ratios, and the steps each phase runs."""
    iters = 3
    # perf_counter readings: (start, end) of A1, B1, A2, B2, A3, B3
    # A takes 2, 1, 4 s; B takes 6, 3, 3 s
    clock = FakeClock([0, 2, 10, 16, 20, 21, 30, 33, 40, 44, 50, 53])
    monkeypatch.setattr(benchmark, 'time',
                        types.SimpleNamespace(perf_counter=clock))
    measured = []

    def fake_peak(device, dtype, n):
        measured.append((str(device), dtype, n))
        return [100., 150.][len(measured) - 1]

    monkeypatch.setattr(benchmark, 'measure_matmul_peak', fake_peak)
    monkeypatch.setattr(benchmark, 'StepMemory', _FakeMeter)
    monkeypatch.setattr(benchmark, 'state_bytes', lambda m, o: 3 * MIB)
    steps = []
    run_steps = benchmark._run_steps

    def counting_steps(model, optim_wrapper, data, n):
        steps.append(n)
        return run_steps(model, optim_wrapper, data, n)

    monkeypatch.setattr(benchmark, '_run_steps', counting_steps)
    results = benchmark_configs([_tiny(2), _tiny(4)],
                                names=['a', 'b'],
                                iters=iters,
                                warmup=2,
                                repeat=3,
                                threads=1,
                                matmul_peak=given_peak,
                                matmul_size=96)
    # warm-up, the memory step, then the interleaved windows
    assert steps == [2, 1, 2, 1] + [iters] * 6
    assert clock.calls == 12
    if given_peak is None:
        assert measured == [('cpu', torch.float32, 96)] * 2
        peak, runs = 150., [100., 150.]
    else:
        assert measured == []
        peak, runs = given_peak, [given_peak]
    a, b = results
    assert a['img_per_s_windows'] == pytest.approx(
        [iters * 2 / 2, iters * 2 / 1, iters * 2 / 4])
    assert a['img_per_s'] == pytest.approx(iters * 2 / 2)
    assert b['img_per_s'] == pytest.approx(iters * 4 / 3)
    assert a['s_per_iter'] == pytest.approx(2 / iters)
    assert b['s_per_iter'] == pytest.approx(3 / iters)
    assert (a['ratio'], b['ratio']) == (1.0, pytest.approx(4 / 3))
    # per round B / A img/s: (12/6)/(6/2), (12/3)/(6/1), (12/3)/(6/4)
    assert b['paired_ratio'] == pytest.approx(2 / 3)
    assert a['paired_ratio'] == 1.0
    assert not a['rotate'] and not b['rotate']
    # the same network: FLOPs per image do not depend on the batch size
    assert a['flops_per_img'] == pytest.approx(b['flops_per_img'])
    assert a['batch_size'] == 2 and b['batch_size'] == 4
    for res in results:
        assert res['gflops_per_img'] == pytest.approx(res['flops_per_img'] /
                                                      1e9)
        assert res['model_gflops'] == pytest.approx(res['gflops_per_img'] *
                                                    res['img_per_s'])
        assert res['matmul_peak_gflops'] == peak
        assert res['matmul_peak_gflops_runs'] == runs
        assert res['pct_of_peak'] == pytest.approx(100 * res['model_gflops'] /
                                                   peak)
        assert res['peak_dtype'] == 'float32'
        assert (res['state_mib'], res['step_mem_mib'],
                res['peak_mem_mib']) == (3., 2., 5.)
        assert res['memory_method'] == 'fake meter'
        assert (res['iters'], res['warmup'], res['repeat']) == (iters, 2, 3)


@pytest.mark.parametrize('rotate', [False, True])
def test_rotated_rounds(monkeypatch, rotate):
    """With ``rotate`` round r starts at config r (mod n): three configs,
    three rounds put each config first, second and third once; each
    config's windows stay its own."""
    build = benchmark.build_train_model
    names = iter('abc')

    def named_build(cfg, device, amp):
        model, optim_wrapper, amp = build(cfg, device, amp)
        model._name = next(names)
        return model, optim_wrapper, amp

    steps = []

    def recording_steps(model, optim_wrapper, data, n):
        steps.append(model._name)
        return 0.

    monkeypatch.setattr(benchmark, 'build_train_model', named_build)
    monkeypatch.setattr(benchmark, '_run_steps', recording_steps)
    monkeypatch.setattr(benchmark, 'StepMemory', _FakeMeter)
    monkeypatch.setattr(benchmark, 'state_bytes', lambda m, o: 0)
    # the k-th window of every round lasts k s, whichever config runs it
    times = iter([0., 1., 0., 2., 0., 3.] * 3)
    monkeypatch.setattr(
        benchmark, 'time',
        types.SimpleNamespace(perf_counter=lambda: next(times)))
    results = benchmark_configs(
        [_tiny(2)] * 3,
        names=['a', 'b', 'c'],
        iters=1,
        warmup=0,
        repeat=3,
        threads=1,
        matmul_peak=1.,
        rotate=rotate)
    # warm-up (0 steps) and the memory step per config, then the rounds
    timed = ''.join(steps[6:])
    assert timed == ('abcbcacab' if rotate else 'abc' * 3)
    assert [r['rotate'] for r in results] == [rotate] * 3
    windows = {r['name']: r['img_per_s_windows'] for r in results}
    if rotate:
        assert windows == dict(
            a=[2., 2 / 3, 1.], b=[1., 2., 2 / 3], c=[2 / 3, 1., 2.])
        # b / a per round: 1/2, 3, 2/3 -> median 2/3; c / a: 1/3, 3/2, 2
        assert results[1]['paired_ratio'] == pytest.approx(2 / 3)
        assert results[2]['paired_ratio'] == pytest.approx(3 / 2)
    else:
        assert windows == dict(a=[2.] * 3, b=[1.] * 3, c=[2 / 3] * 3)
        assert results[2]['paired_ratio'] == pytest.approx(1 / 3)


# ------------------------------------------------------------- step memory
def test_state_bytes_by_hand():
    model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=.1))
    params = (4 * 3 + 3 + 3 + 3) * 4  # fp32 weights and biases
    buffers = 2 * 3 * 4 + 8  # running mean / var, an int64 counter
    assert step_memory.state_bytes(model, wrapper) == params + buffers
    model(torch.randn(5, 4)).sum().backward()
    assert step_memory.state_bytes(model, wrapper) == 2 * params + buffers
    wrapper = OptimWrapper(
        torch.optim.SGD(model.parameters(), lr=.1, momentum=.9))
    wrapper.step()  # one momentum buffer per parameter
    assert step_memory.state_bytes(model, wrapper) == 3 * params + buffers


@pytest.fixture
def fake_status(monkeypatch):
    """``/proc/self/status`` fields as the test sets them."""
    fields = {}
    monkeypatch.setattr(step_memory, '_status_kib', fields.get)
    monkeypatch.setattr(step_memory, '_malloc_trim', lambda: None)
    return fields


def test_peak_rss_growth_by_hand(monkeypatch, fake_status):
    monkeypatch.setattr(step_memory, '_reset_peak_rss', lambda: True)
    meter = step_memory.StepMemory(torch.device('cpu'))
    assert meter.method.startswith('process RSS growth (VmHWM - VmRSS')
    fake_status.update(VmRSS=1000, VmHWM=1000)
    meter.start()
    assert meter.stop() == 0.
    fake_status['VmHWM'] = 1500
    assert meter.stop() == 500 * 1024.
    del fake_status['VmHWM']  # the field vanished: no growth
    assert meter.stop() == 0.


def test_reset_peak_rss_needs_clear_refs_and_vmhwm(monkeypatch, fake_status):

    class Writable(io.StringIO):

        def __exit__(self, *args):
            return None

    def refused(path, mode='r'):
        raise OSError(13, 'Permission denied', path)

    monkeypatch.setattr(step_memory, 'open', refused, raising=False)
    assert step_memory._reset_peak_rss() is False
    monkeypatch.setattr(
        step_memory, 'open', lambda p, m='r': Writable(), raising=False)
    assert step_memory._reset_peak_rss() is False  # no VmHWM field
    fake_status['VmHWM'] = 10
    assert step_memory._reset_peak_rss() is True


def test_cpu_meter_method_names_its_source(monkeypatch):
    monkeypatch.setattr(step_memory, '_reset_peak_rss', lambda: False)
    meter = step_memory.StepMemory(torch.device('cpu'))
    assert meter.method == ('process RSS growth (VmRSS sampled every 1 ms - '
                            'VmRSS before the step, after malloc_trim)')


def test_cuda_meter_on_fake_counters(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.cuda, 'synchronize', lambda d: None)
    monkeypatch.setattr(torch.cuda, 'reset_peak_memory_stats',
                        lambda d: calls.append('reset'))
    monkeypatch.setattr(torch.cuda, 'memory_allocated', lambda d: 100)
    monkeypatch.setattr(torch.cuda, 'max_memory_allocated', lambda d: 350)
    meter = step_memory.StepMemory(torch.device('cuda'))
    assert meter.method.startswith('torch.cuda.max_memory_allocated')
    meter.start()
    assert calls == ['reset']
    assert meter.stop() == 250.


def test_sampled_rss_of_an_idle_block_is_small(monkeypatch):
    """The sampled meter counts growth over the RSS before the block, not
    the whole RSS (hundreds of MiB in this process)."""
    monkeypatch.setattr(step_memory, '_reset_peak_rss', lambda: False)
    meter = step_memory.StepMemory(torch.device('cpu'))
    meter.start()
    block = torch.ones(16 * MIB // 4)  # 16 MiB, written
    del block
    grown = meter.stop()
    assert grown < 64 * MIB
    assert step_memory._status_kib('VmRSS') * 1024 > 64 * MIB


def test_cpu_model_name_and_fallback(monkeypatch):
    cpuinfo = 'processor\t: 0\nmodel name\t: Fake CPU @ 2.00GHz\n'
    monkeypatch.setattr(
        step_memory,
        'open',
        lambda p, m='r': io.StringIO(cpuinfo),
        raising=False)
    assert step_memory._cpu_model() == 'Fake CPU @ 2.00GHz'

    def missing(path, mode='r'):
        raise OSError(2, 'No such file', path)

    monkeypatch.setattr(step_memory, 'open', missing, raising=False)
    monkeypatch.setattr(step_memory.platform, 'processor', lambda: '')
    monkeypatch.setattr(step_memory.platform, 'machine', lambda: 'riscv64')
    assert step_memory._cpu_model() == 'riscv64'
    monkeypatch.setattr(step_memory.platform, 'processor', lambda: 'arm')
    assert step_memory._cpu_model() == 'arm'


def test_load_average_has_two_decimals():
    info = step_memory.machine_info('cpu')
    assert len(info['load_average']) == 3
    assert all(round(x, 2) == x for x in info['load_average'])
