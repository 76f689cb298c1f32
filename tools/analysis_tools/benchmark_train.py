# Copyright (c) mmssl contributors. All rights reserved.
"""Benchmark the training step of one or more configs side by side.

Usage::

    python tools/analysis_tools/benchmark_train.py CONFIG [CONFIG ...]
        [--names a b] [--batch-size N] [--iters 20] [--warmup 5]
        [--repeat 3] [--threads N] [--device cpu|cuda] [--seed 0]
        [--matmul-size N] [--rotate] [--amp] [--cfg-options ...]
        [--arm-options ...] [--out result.json]

Each config's model and optimizer are built as the training would build
them and fed one synthetic batch of random images of the size the model
expects (``model.backbone.img_size``, default 224), collated like the
config's loader does. What is timed is ``model.train_step`` alone: data
preprocessing on the device, forward, loss, backward and optimizer update.
Data loading is excluded on purpose, so that two implementations of one
network (e.g. mmssl's MAE and mmpretrain's, see ``configs/mae/reference``)
compare on the model and optimizer step they implement.

The configs run interleaved (A, B, A, B, ...) over ``--repeat`` windows of
``--iters`` steps, with the same seed and thread count, so background load
falls on all of them alike; img/s is the median of the windows. With
``--rotate`` each round starts one config later (A, B / B, A / ...), so that
no config always runs first or after the same one (a ``--repeat`` that is a
multiple of the number of configs puts each in each position equally
often). The table shows images/s, seconds per step, the ratio to the first
config (of the medians) and the paired ratio (the median of the per-round
ratios, in which a slow drift of the machine's speed cancels), peak
memory, FLOPs per image of one training step (forward + backward, matrix
products, convolutions and attention), the model FLOP/s achieved and its
share of the matmul peak measured on the same device and threads (fp32;
on CUDA with an ``AmpOptimWrapper`` its bf16 / fp16 autocast dtype, i.e. the
MFU; a config's ``compile`` is applied as the Runner applies it). How
each number is defined is written in :mod:`mmssl.analysis.benchmark` and
:mod:`mmssl.analysis.step_memory`. On CPU an ``AmpOptimWrapper`` runs as a
plain ``OptimWrapper`` (fp32, as ``tools/train.py`` runs it there), unless
``--amp`` is given: then every arm trains in bf16 autocast
(``mmssl.CPUAmpOptimWrapper``, what ``tools/train.py --amp`` uses on a CPU
with AMX) and the peak is the bf16 one; on CUDA ``--amp`` gives the configs
without mixed precision ``AmpOptimWrapper(dtype='bfloat16')``.

``--arm-options`` gives each config its own settings on top of
``--cfg-options`` (one quoted ``'KEY=VALUE ...'`` string per config, ``-``
for none), so one config with and without a setting runs interleaved in
one run, e.g. eager against compiled::

    python tools/analysis_tools/benchmark_train.py CFG CFG \\
        --names eager compiled --arm-options - compile=True

or fp32 against bf16 autocast on the CPU (an ``AmpOptimWrapper`` config
switches by its type alone)::

    python tools/analysis_tools/benchmark_train.py CFG CFG \
        --names fp32 bf16 \
        --arm-options - optim_wrapper.type=mmssl.CPUAmpOptimWrapper

The minor page faults per step of each arm (fresh pages the kernel
zero-fills, which glibc's malloc causes each CPU step) are printed under the
table; ``--malloc keep`` makes malloc keep freed memory for reuse instead
(:mod:`mmssl.utils.cpu_memory`; a setting of the whole process, so of every
arm: compare it with the default in separate runs).

Example (mmssl's MAE vs mmpretrain's on the tiny 64 px config)::

    python tools/analysis_tools/benchmark_train.py \\
        configs/mae/mae_vit-tiny-p8_1xb64-coslr-30e_embedded.py \\
        configs/mae/reference/mae-mmpretrain_vit-tiny-p8_1xb64_embedded.py \\
        --names mmssl mmpretrain --threads 2 --out bench.json
"""
import argparse
import json
import sys
from typing import List, Optional

from mmengine.logging import print_log

import mmssl  # noqa: F401  (registers mmssl's parts)
from mmssl.analysis import machine_info
from mmssl.analysis.benchmark import add_timing_args
from mmssl.apis import benchmark_configs
from mmssl.engine.config_options import (check_one_per_config,
                                         parse_options_text)
from mmssl.engine.runner_utils import load_config, merge_cfg_options, run_tool
from mmssl.utils.cpu_memory import keep_freed_memory, user_allocator_env
from mmssl.utils.table import format_table as _format_table

# (result key, column title, number format)
COLUMNS = [('num_params', 'params', ',d'), ('img_per_s', 'img/s', '.2f'),
           ('s_per_iter', 's/iter', '.4f'), ('ratio', 'ratio', '.3f'),
           ('paired_ratio', 'paired', '.3f'),
           ('peak_mem_mib', 'peak MiB', '.1f'),
           ('gflops_per_img', 'GFLOPs/img', '.3f'),
           ('model_gflops', 'GFLOP/s', '.2f'),
           ('pct_of_peak', '% of peak', '.1f')]


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Time the training step of configs side by side '
        '(model + optimizer only, synthetic data)')
    parser.add_argument('configs', nargs='+', help='training config files')
    parser.add_argument(
        '--names', nargs='+', default=None, help='a name per config')
    parser.add_argument(
        '--batch-size',
        type=int,
        default=None,
        help='images per step (default: train_dataloader.batch_size)')
    add_timing_args(parser, iters=20, warmup=5, repeat=3)
    parser.add_argument(
        '--matmul-size',
        type=int,
        default=None,
        help='matrix side of the matmul peak measurement (default 2048 on '
        'CPU, 8192 on CUDA, where smaller products do not fill the card)')
    parser.add_argument(
        '--rotate',
        action='store_true',
        help='start each timing round one config later, so that each config '
        'runs in each position equally often (give a --repeat that is a '
        'multiple of the number of configs)')
    parser.add_argument(
        '--amp',
        action='store_true',
        help='every arm in mixed precision: bf16 autocast on CPU (fast on '
        'CPUs with AMX), AmpOptimWrapper(bf16) on CUDA where the config has '
        'none')
    parser.add_argument(
        '--malloc',
        choices=('default', 'keep'),
        default='default',
        help="on CPU: 'keep' makes glibc's malloc keep freed memory for "
        'reuse (mmssl.utils.cpu_memory: no fresh pages, so no page faults, '
        "per step); 'default' leaves its thresholds. A setting of the "
        'process, so of every arm; an allocator chosen by the environment '
        'stands')
    parser.add_argument(
        '--arm-options',
        nargs='+',
        default=None,
        help="one 'KEY=VALUE KEY=VALUE' string per config ('-' for none): "
        'settings of that config alone, after --cfg-options')
    args = parser.parse_args(argv)
    check_one_per_config(parser, args)
    try:
        args.arm_options = [
            parse_options_text(text, f'--arm-options of {path}')
            for text, path in zip(args.arm_options or [''] *
                                  len(args.configs), args.configs)
        ]
    except ValueError as err:
        parser.error(str(err))
    return args


def choose_malloc(mode: str, device: str) -> str:
    """Apply ``--malloc`` (CPU only) and say what the process runs with."""
    if device.startswith('cuda'):
        return 'default (CUDA run)'
    chosen = user_allocator_env()
    if chosen:
        return f"set by the environment ({', '.join(chosen)})"
    if mode == 'keep':
        return 'keep' if keep_freed_memory() else 'default (not settable)'
    return 'default'


def format_table(results: List[dict]) -> str:
    """One row per config, one column per number."""
    return _format_table([(r['name'], r) for r in results], COLUMNS, 'config')


def load_configs(paths: List[str],
                 cfg_options: Optional[dict],
                 arm_options: Optional[List[dict]] = None) -> list:
    """Each config with ``cfg_options``, then its own ``arm_options``."""
    configs = []
    for i, path in enumerate(paths):
        cfg = merge_cfg_options(load_config(path), cfg_options, path)
        if arm_options and arm_options[i]:
            cfg = merge_cfg_options(cfg, arm_options[i], path)
        configs.append(cfg)
    return configs


def main(argv: Optional[List[str]] = None) -> List[dict]:
    args = parse_args(argv)
    configs = load_configs(args.configs, args.cfg_options, args.arm_options)
    machine = machine_info(args.device)
    machine['malloc'] = choose_malloc(args.malloc, args.device)
    results = benchmark_configs(
        configs,
        names=args.names,
        batch_size=args.batch_size,
        iters=args.iters,
        warmup=args.warmup,
        repeat=args.repeat,
        threads=args.threads,
        device=args.device,
        seed=args.seed,
        matmul_size=args.matmul_size
        or (8192 if args.device.startswith('cuda') else 2048),
        rotate=args.rotate,
        amp=args.amp)
    machine['load_average_end'] = machine_info(args.device).get('load_average')
    machine['torch_threads'] = results[0]['threads']
    machine['matmul_peak_gflops'] = results[0]['matmul_peak_gflops']

    first = results[0]
    print(format_table(results))
    order = ('each round one config later'
             if first['rotate'] else 'in the given order')
    print(f"batch {first['batch_size']}, {first['iters']} steps x "
          f"{first['repeat']} windows after {first['warmup']} warm-up steps "
          f'(rounds of one window per config, {order}), '
          f"{first['threads']} threads on {machine['device']} "
          f"({machine.get('device_name', machine['cpu'])}); "
          f"{first['peak_dtype']} matmul peak "
          f"{first['matmul_peak_gflops']:.1f} GFLOP/s; "
          f"load average {machine.get('load_average')} before, "
          f"{machine.get('load_average_end')} after")
    print(f"peak memory: state + one step's growth, {first['memory_method']}")
    faults = ', '.join(f"{r['name']} {r['faults_per_step']:.0f}"
                       for r in results)
    print(f"malloc: {machine['malloc']}; minor page faults per step: "
          f'{faults}')
    if args.out:
        payload = dict(
            machine=machine, argv=sys.argv, args=vars(args), results=results)
        with open(args.out, 'w') as f:
            json.dump(payload, f, indent=2)
        print_log(f'results written to {args.out}', logger='current')
    return results


if __name__ == '__main__':
    run_tool(main)
