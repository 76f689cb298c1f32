# Copyright (c) mmssl contributors. All rights reserved.
"""Side-by-side benchmark of the training step of several configs.

What is measured is the model + optimizer step only: ``model.train_step`` on
one synthetic batch (data preprocessor, forward, loss, backward, optimizer
update), the batch made once and kept on the device. The data loading and
the CPU pipeline (decode, crop, flip) are excluded on purpose, so that two
implementations of the same network compare on what they implement.

For every config the numbers are:

* ``img_per_s``: the median over ``repeat`` timed windows of ``iters`` steps,
  after ``warmup`` untimed steps. The configs run interleaved (A, B, A, B,
  ...) so that background load falls on all of them alike.
* ``flops_per_img``: FLOPs of one training step (forward + backward) per
  image, counted by ``torch.utils.flop_counter.FlopCounterMode`` (matrix
  products, convolutions and attention, the usual MFU accounting;
  element-wise ops and the optimizer update are not counted).
* ``model_gflops``: ``flops_per_img * img_per_s`` / 1e9, and ``pct_of_peak``
  that as a percentage of the matmul peak the tool measures on the same
  device with the same thread count (:func:`measure_matmul_peak`), in the
  dtype the matrix products run in: fp32, or on CUDA the autocast dtype of an
  ``AmpOptimWrapper`` (bf16 / fp16), so that on a GPU ``pct_of_peak`` is the
  model FLOPs utilisation (MFU) against the card's dense bf16 rate; bf16 on
  the CPU with ``amp`` (``mmssl.CPUAmpOptimWrapper``).
  ``peak_dtype`` names it.
* ``compiled``: a config's ``compile`` setting compiles the model's forward
  pass (:func:`maybe_compile`), after the FLOPs are counted on the eager
  model; the warm-up steps absorb the compilation.
* ``peak_mem_mib``: ``state_mib`` (parameters, buffers, gradients and
  optimizer states alive between steps, counted from the tensors) plus
  ``step_mem_mib``, the most memory one training step adds on top of what
  is allocated before it (activations, gradients, temporaries), taken on an
  extra untimed step after the warm-up so that the timed windows are not
  disturbed. On CUDA that is ``torch.cuda.max_memory_allocated`` minus
  ``memory_allocated`` before the step. On CPU it is the growth of the
  process's resident set size: peak RSS (``VmHWM`` in ``/proc/self/status``
  after resetting it through ``/proc/self/clear_refs``, else ``VmRSS``
  sampled every millisecond) minus ``VmRSS`` before the step, with the
  allocator's free memory handed back to the system (``malloc_trim``) first;
  it includes allocator overhead and is an approximation.
* ``faults_per_step``: the process's minor page faults per timed step
  (:func:`minor_page_faults`): fresh pages the kernel zero-fills on first
  touch, which malloc's defaults cause every CPU step
  (:mod:`mmssl.utils.cpu_memory`).
"""
import argparse
import contextlib
import copy
import logging
import os.path as osp
import statistics
import time
from typing import Callable, Iterator, List, Optional, Sequence, Union

import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.model import BaseModel
from mmengine.optim import build_optim_wrapper
from mmengine.registry import MODELS, init_default_scope
from mmengine.runner import set_random_seed
from torch.utils.flop_counter import (FlopCounterMode, conv_flop_count,
                                      sdpa_backward_flop_count,
                                      sdpa_flop_count)

from mmssl.engine.config_options import CFG_OPTIONS_HELP, CfgOptionsAction
from mmssl.engine.machine_cfg import is_amp_wrapper, to_fp32_wrapper
from mmssl.utils.config import default_scope_of
from mmssl.utils.validation import check_int
from .step_memory import StepMemory, machine_info, state_bytes, sync_device
from .step_options import amp_dtype, maybe_compile
from .synthetic_batch import (_img_size, make_synthetic_batch,
                              synthetic_batch_errors)

__all__ = [
    'measure_matmul_peak', 'count_train_flops', 'build_train_model',
    'make_synthetic_batch', 'machine_info', 'benchmark_configs', 'amp_dtype',
    'maybe_compile'
]

MIB = 1024.**2


def _cpu_sdpa_flop(query_shape, key_shape, value_shape, *args, **kwargs):
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def _cpu_sdpa_backward_flop(grad_out_shape, query_shape, key_shape,
                            value_shape, *args, **kwargs):
    return sdpa_backward_flop_count(grad_out_shape, query_shape, key_shape,
                                    value_shape)


def _conv_backward_flop(grad_out_shape, x_shape, w_shape, _bias, _stride,
                        _padding, _dilation, transposed, _output_padding,
                        _groups, output_mask, *args, **kwargs):
    """FLOPs of a convolution's backward: each requested gradient (input,
    weight) costs what the forward costs.

    torch's own formula counts the weight gradient as if the convolution
    had one group, ``groups`` times too much for a grouped convolution
    (data2vec 2.0's decoders: 16x).
    """
    forward = conv_flop_count(x_shape, w_shape, grad_out_shape, transposed)
    return forward * (int(bool(output_mask[0])) + int(bool(output_mask[1])))


# FlopCounterMode knows the CUDA attention kernels but not the CPU one that
# ``F.scaled_dot_product_attention`` runs on CPU; count it the same way. Its
# convolution backward is replaced by one that counts groups.
_EXTRA_FLOP_FORMULAS = {
    torch.ops.aten.convolution_backward: _conv_backward_flop,
}
if hasattr(torch.ops.aten, '_scaled_dot_product_flash_attention_for_cpu'):
    _EXTRA_FLOP_FORMULAS.update({
        torch.ops.aten._scaled_dot_product_flash_attention_for_cpu:
        _cpu_sdpa_flop,
        torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward:
        _cpu_sdpa_backward_flop,
    })


@contextlib.contextmanager
def _num_threads(threads: Optional[int]) -> Iterator[None]:
    """Run with ``torch.set_num_threads(threads)``, restore it on exit."""
    old = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(old)


@contextlib.contextmanager
def _quiet_logs() -> Iterator[None]:
    """Hide mmengine's INFO lines (weight init, paramwise options)."""
    logger = MMLogger.get_current_instance()
    old = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(old)


def measure_matmul_peak(device: Union[str, torch.device] = 'cpu',
                        dtype: torch.dtype = torch.float32,
                        threads: Optional[int] = None,
                        n: int = 2048,
                        repeats: int = 5) -> float:
    """The device's matmul throughput: best of ``repeats`` square matmuls.

    Args:
        device (str | torch.device): Where to multiply. Defaults to 'cpu'.
        dtype (torch.dtype): Element type. Defaults to float32.
        threads (int, optional): CPU threads for the measurement (restored
            afterwards); the current setting if None.
        n (int): Side of the (n, n) @ (n, n) products. Defaults to 2048.
        repeats (int): Timed products; the fastest one counts.

    Returns:
        float: GFLOP/s, counting ``2 * n**3`` FLOPs per product.
    """
    device = torch.device(device)
    gen = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(n, n, device=device, dtype=dtype, generator=gen)
    b = torch.randn(n, n, device=device, dtype=dtype, generator=gen)
    out = torch.empty(n, n, device=device, dtype=dtype)
    best = float('inf')
    with _num_threads(threads):
        torch.mm(a, b, out=out)  # warm-up: thread pool, kernels, caches
        for _ in range(max(1, repeats)):
            sync_device(device)
            start = time.perf_counter()
            torch.mm(a, b, out=out)
            sync_device(device)
            best = min(best, time.perf_counter() - start)
    return 2. * n**3 / max(best, 1e-9) / 1e9


def count_train_flops(model: nn.Module,
                      data,
                      loss_fn: Optional[Callable] = None) -> float:
    """FLOPs of one training step's forward and backward pass.

    Matrix products, convolutions and attention (also the CPU attention
    kernel) are counted by ``FlopCounterMode``; element-wise work and the
    optimizer update are not. Parameters are not changed; gradients are
    cleared (set to None) afterwards.

    Args:
        model (nn.Module): An mmengine ``BaseModel`` (then ``data`` is a
            collated batch, run through ``model.data_preprocessor(data,
            True)``, ``model(**data, mode='loss')`` and
            ``model.parse_losses``), or any module (then ``data`` is its
            input, a tensor or a tuple of positional arguments).
        data: The batch, as described above.
        loss_fn (Callable, optional): For a plain module, maps its output to
            the scalar loss; ``output.sum()`` if None.

    Returns:
        float: FLOPs of the whole batch (divide by the batch size for FLOPs
        per sample).
    """
    counter = FlopCounterMode(
        display=False, custom_mapping=_EXTRA_FLOP_FORMULAS)
    with counter:
        if isinstance(model, BaseModel):
            batch = model.data_preprocessor(data, True)
            if isinstance(batch, dict):
                losses = model(**batch, mode='loss')
            else:
                losses = model(*batch, mode='loss')
            loss, _ = model.parse_losses(losses)
        else:
            args = data if isinstance(data, tuple) else (data, )
            output = model(*args)
            loss = output.sum() if loss_fn is None else loss_fn(output)
        loss.backward()
    model.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())


def _as_config(cfg: Union[str, Config, dict]) -> Config:
    if isinstance(cfg, Config):
        return cfg
    if isinstance(cfg, str):
        return Config.fromfile(cfg)
    return Config(cfg)


def build_train_model(cfg: Config,
                      device: Union[str, torch.device] = 'cpu',
                      amp: bool = False):
    """Build ``cfg.model`` and its optimizer wrapper for training on device.

    The model is built in the config's scope (``default_scope``, else
    ``'mmengine'``, as the Runner does), initialised with
    ``init_weights()`` and put in train mode. On CPU an ``AmpOptimWrapper``
    becomes a plain ``OptimWrapper`` (fp32, as ``tools/train.py`` runs it
    without ``--amp``); with ``amp`` every wrapper becomes
    ``mmssl.CPUAmpOptimWrapper`` there (bf16 autocast, as ``--amp`` on a CPU
    with AMX), and on CUDA a config without mixed precision gets
    ``AmpOptimWrapper(dtype='bfloat16')``. A config that names
    ``mmssl.CPUAmpOptimWrapper`` itself keeps it (one arm of a benchmark in
    bf16: ``optim_wrapper.type=mmssl.CPUAmpOptimWrapper``).

    Args:
        cfg (Config): A training config with ``model`` and ``optim_wrapper``.
        device (str | torch.device): Where to train.
        amp (bool): Mixed precision for every config (see above). Defaults
            to False: the config's own setting on CUDA, fp32 on CPU.

    Returns:
        tuple: ``(model, optim_wrapper, amp)``, ``amp`` telling whether mixed
        precision is used (read the autocast dtype with :func:`amp_dtype`).
    """
    device = torch.device(device)
    init_default_scope(default_scope_of(cfg))
    with _quiet_logs():
        model = MODELS.build(copy.deepcopy(cfg.model))
        model.init_weights()
    model.to(device)
    model.train()
    wrapper_cfg = copy.deepcopy(cfg.optim_wrapper)
    if device.type == 'cuda':
        if amp and not is_amp_wrapper(wrapper_cfg):
            wrapper_cfg.update(type='AmpOptimWrapper', dtype='bfloat16')
    else:
        to_fp32_wrapper(wrapper_cfg)
        if amp:
            wrapper_cfg.update(
                type='mmssl.CPUAmpOptimWrapper', dtype='bfloat16')
    with _quiet_logs():
        optim_wrapper = build_optim_wrapper(model, wrapper_cfg)
    return model, optim_wrapper, amp_dtype(optim_wrapper) != torch.float32


def _default_names(cfgs: Sequence) -> List[str]:
    names = []
    for i, cfg in enumerate(cfgs):
        path = cfg if isinstance(cfg, str) else getattr(cfg, 'filename', None)
        name = osp.splitext(osp.basename(path))[0] if path else f'config{i}'
        names.append(name if name not in names else f'{name}#{i}')
    return names


def minor_page_faults() -> int:
    """The process's minor page faults so far (``ru_minflt``; first touches
    of fresh pages, see :mod:`mmssl.utils.cpu_memory`); 0 where the
    ``resource`` module is missing."""
    try:
        import resource
    except ImportError:  # not on Windows
        return 0
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def _run_steps(model, optim_wrapper, data, steps: int) -> float:
    log_vars = {}
    for _ in range(steps):
        log_vars = model.train_step(data, optim_wrapper)
    loss = log_vars.get('loss')
    return float(loss.detach()) if loss is not None else float('nan')


def benchmark_configs(cfgs: Sequence[Union[str, Config, dict]],
                      names: Optional[Sequence[str]] = None,
                      batch_size: Optional[int] = None,
                      iters: int = 20,
                      warmup: int = 5,
                      repeat: int = 3,
                      threads: Optional[int] = None,
                      device: Union[str, torch.device] = 'cpu',
                      seed: int = 0,
                      matmul_peak: Optional[float] = None,
                      matmul_size: int = 2048,
                      rotate: bool = False,
                      amp: bool = False) -> List[dict]:
    """Time the training step of several configs side by side.

    Every config's model and optimizer are built first (same seed), its
    FLOPs counted and ``warmup`` steps run; then ``repeat`` rounds each time
    every config for ``iters`` steps, in the given order. See the module
    docstring for what each number means.

    Args:
        cfgs (Sequence[str | Config | dict]): Config files or configs.
        names (Sequence[str], optional): A name per config; the file names
            if None.
        batch_size (int, optional): Images per step; each config's
            ``train_dataloader.batch_size`` if None.
        iters (int): Steps per timed window. Defaults to 20.
        warmup (int): Untimed steps per config first. Defaults to 5.
        repeat (int): Timed windows per config. Defaults to 3.
        threads (int, optional): ``torch.set_num_threads`` for the whole run
            (restored afterwards); the current setting if None.
        device (str | torch.device): 'cpu' or 'cuda[:i]'.
        seed (int): Seed of the weights, the batch and the masks.
        matmul_peak (float, optional): The matmul peak in GFLOP/s; measured
            before and after the run (the best of both) if None, in the
            dtype of the first config's steps (:func:`amp_dtype`; on CPU
            fp32, bf16 with ``amp``).
        matmul_size (int): Matrix side for measuring the peak.
        rotate (bool): Start each round one config later (round ``r`` runs
            the configs from the ``r``-th, wrapping around), so that with a
            ``repeat`` that is a multiple of the number of configs each
            config runs in each position of the round equally often; in the
            given order every round if False (default).
        amp (bool): Every config in mixed precision, on CPU in bf16
            autocast (:func:`build_train_model`). Defaults to False.

    Returns:
        list[dict]: One record per config, in order: ``name``, ``config``,
        ``batch_size``, ``img_size``, ``img_per_s`` (median),
        ``img_per_s_windows``, ``s_per_iter``, ``ratio`` (img/s over the
        first config's), ``paired_ratio`` (the median over rounds of this
        config's img/s over the first config's in the same round: a slow
        drift of the machine's speed cancels in it), ``rotate``,
        ``peak_mem_mib``, ``state_mib``, ``step_mem_mib``,
        ``memory_method``, ``flops_per_img``, ``gflops_per_img``,
        ``model_gflops``, ``matmul_peak_gflops``, ``peak_dtype``,
        ``pct_of_peak``, ``compiled``,
        ``num_params``, ``amp``, ``loss``, ``threads``, ``device``,
        ``iters``, ``warmup``, ``repeat``.
    """
    check_int(iters, 'iters', 'benchmark_configs')
    check_int(repeat, 'repeat', 'benchmark_configs')
    check_int(warmup, 'warmup', 'benchmark_configs', minimum=0)
    device = torch.device(device)
    configs = [_as_config(cfg) for cfg in cfgs]
    names = list(names) if names is not None else _default_names(cfgs)
    if len(names) != len(configs):
        raise ValueError(f'{len(names)} names for {len(configs)} configs')

    with _num_threads(threads):
        num_threads = torch.get_num_threads()
        peaks = [] if matmul_peak is None else [matmul_peak]
        peak_dtype = None
        runs = []
        for name, cfg, src in zip(names, configs, cfgs):
            bs = batch_size or cfg.train_dataloader.batch_size
            set_random_seed(seed)
            model, optim_wrapper, used_amp = build_train_model(
                cfg, device, amp)
            if peak_dtype is None:
                peak_dtype = amp_dtype(optim_wrapper)
                if matmul_peak is None:
                    peaks.append(
                        measure_matmul_peak(
                            device, dtype=peak_dtype, n=matmul_size))
            with synthetic_batch_errors(src if isinstance(src, str) else name):
                data = model.data_preprocessor.cast_data(
                    make_synthetic_batch(cfg, bs, seed))
                flops = count_train_flops(model, data)
            compiled = maybe_compile(model, cfg)
            set_random_seed(seed)
            _run_steps(model, optim_wrapper, data, warmup)
            state_size = state_bytes(model, optim_wrapper)
            meter = StepMemory(device)
            meter.start()
            _run_steps(model, optim_wrapper, data, 1)
            step_bytes = meter.stop()
            runs.append(
                dict(
                    name=name,
                    config=src if isinstance(src, str) else getattr(
                        cfg, 'filename', None),
                    model=model,
                    optim_wrapper=optim_wrapper,
                    data=data,
                    batch_size=bs,
                    img_size=list(_img_size(cfg)),
                    amp=used_amp,
                    compiled=compiled,
                    flops=flops,
                    state_bytes=state_size,
                    step_bytes=step_bytes,
                    memory_method=meter.method,
                    times=[],
                    faults=0,
                    loss=float('nan')))

        for r in range(repeat):
            start_at = r % len(runs) if rotate else 0
            for run in runs[start_at:] + runs[:start_at]:
                sync_device(device)
                faults = minor_page_faults()
                start = time.perf_counter()
                run['loss'] = _run_steps(run['model'], run['optim_wrapper'],
                                         run['data'], iters)
                sync_device(device)
                run['times'].append(time.perf_counter() - start)
                run['faults'] += minor_page_faults() - faults

        if matmul_peak is None:
            peaks.append(
                measure_matmul_peak(device, dtype=peak_dtype, n=matmul_size))
    peak = max(peaks)

    results = []
    for run in runs:
        img_per_s = [iters * run['batch_size'] / t for t in run['times']]
        median_ips = statistics.median(img_per_s)
        flops_per_img = run['flops'] / run['batch_size']
        model_gflops = flops_per_img * median_ips / 1e9
        step_bytes = run['step_bytes']
        results.append(
            dict(
                name=run['name'],
                config=run['config'],
                batch_size=run['batch_size'],
                img_size=run['img_size'],
                img_per_s=median_ips,
                img_per_s_windows=img_per_s,
                s_per_iter=statistics.median(run['times']) / iters,
                ratio=None,
                peak_mem_mib=(run['state_bytes'] + step_bytes) / MIB,
                state_mib=run['state_bytes'] / MIB,
                step_mem_mib=step_bytes / MIB,
                memory_method=run['memory_method'],
                flops_per_img=flops_per_img,
                gflops_per_img=flops_per_img / 1e9,
                model_gflops=model_gflops,
                matmul_peak_gflops=peak,
                matmul_peak_gflops_runs=peaks,
                peak_dtype=str(peak_dtype).replace('torch.', ''),
                pct_of_peak=100. * model_gflops / peak,
                num_params=sum(p.numel() for p in run['model'].parameters()),
                amp=run['amp'],
                compiled=run['compiled'],
                loss=run['loss'],
                faults_per_step=run['faults'] / (repeat * iters),
                threads=num_threads,
                device=str(device),
                iters=iters,
                warmup=warmup,
                repeat=repeat))
    first = results[0]['img_per_s_windows']
    for res in results:
        res['ratio'] = res['img_per_s'] / results[0]['img_per_s']
        res['paired_ratio'] = statistics.median(
            ips / ref for ips, ref in zip(res['img_per_s_windows'], first))
        res['rotate'] = bool(rotate)
    return results


def add_timing_args(parser: argparse.ArgumentParser,
                    iters: int,
                    warmup: int,
                    repeat: int,
                    what: str = 'steps') -> argparse.ArgumentParser:
    """The options every timing tool shares: ``--iters``, ``--warmup``,
    ``--repeat``, ``--threads``, ``--device``, ``--seed``,
    ``--cfg-options`` and ``--out`` (JSON), with the tool's defaults."""
    parser.add_argument(
        '--iters', type=int, default=iters, help=f'{what} per timed window')
    parser.add_argument(
        '--warmup', type=int, default=warmup, help=f'untimed {what} first')
    parser.add_argument(
        '--repeat', type=int, default=repeat, help='timed windows per arm')
    parser.add_argument(
        '--threads',
        type=int,
        default=None,
        help='torch threads (default: the current torch setting)')
    parser.add_argument(
        '--device', default='cpu', help="'cpu' or 'cuda' ('cuda:1', ...)")
    parser.add_argument('--seed', type=int, default=0, help='random seed')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=CfgOptionsAction,
        help='settings of the config(s): ' + CFG_OPTIONS_HELP)
    parser.add_argument('--out', default=None, help='write results as JSON')
    return parser
