# Copyright (c) mmssl contributors. All rights reserved.
"""Benchmark a config's input pipeline alone, beside its training step.

Usage::

    python tools/analysis_tools/benchmark_loader.py CONFIG
        [--workers 0 1 2 4] [--batches 20] [--warmup 5] [--repeat 3]
        [--batch-size N] [--with-step] [--step-iters 10] [--threads N]
        [--device cpu|cuda] [--seed 0] [--matmul-size N]
        [--transform-samples 16]
        [--cfg-options ...] [--out result.json]

The config's ``train_dataloader`` is built as ``tools/train.py`` builds it
(its loader defaults, then mmengine's ``Runner.build_dataloader`` with the
config's data set, sampler, ``collate_fn`` and ``persistent_workers``), once
per worker count of ``--workers`` (default: 0, 1, 2 and the config's
``num_workers``), and only iterated: decoded images/s (median of
``--repeat`` windows of ``--batches`` batches, after ``--warmup`` batches
that also absorb the workers' start-up), batches/s and the time to the
first batch. A second table splits one sample's pipeline cost by transform
(each transform of ``train_dataloader.dataset.pipeline`` timed in the main
process on ``--transform-samples`` samples) and names the costliest.

With ``--with-step`` the training step of the same config and batch size is
timed as well (:func:`mmssl.analysis.benchmark_configs`, i.e.
``tools/analysis_tools/benchmark_train.py``: synthetic batch, model and
optimizer only; ``--step-iters`` steps per window, the same ``--warmup`` and
``--repeat``), shown beside the loader's rates, with a line saying which
side limits training: the loader at its best worker count or the step. On
a CPU the loader's workers and the step share the cores, so the rate of a
real run is below both.

Examples::

    # the embedded demo config: loader at 0, 1 and 2 workers vs the step
    python tools/analysis_tools/benchmark_loader.py \\
        configs/mae/mae_vit-tiny-p8_1xb64-coslr-30e_embedded.py \\
        --workers 0 1 2 --with-step --out loader.json

    # an ImageNet-style folder of JPEGs (<root>/train/<class>/*.JPEG)
    # through the ImageNet config; with_label=False reads any number of
    # class folders (ImageNet's labels expect its 1000)
    python tools/analysis_tools/benchmark_loader.py \\
        configs/mae/mae_vit-base-p16_8xb512-amp-coslr-800e_in1k.py \\
        --workers 4 8 --batch-size 128 \\
        --cfg-options train_dataloader.dataset.data_root=/data/my_images \\
        train_dataloader.dataset.with_label=False

Any config whose training set is mmpretrain's ``CustomDataset`` /
``ImageNet`` takes a folder the same way
(``train_dataloader.dataset.data_root=...``).
"""
import argparse
import json
import sys
from typing import List, Optional

from mmengine.logging import print_log

import mmssl  # noqa: F401  (registers mmssl's parts)
from mmssl.analysis import (benchmark_configs, benchmark_loader,
                            loader_summary, machine_info)
from mmssl.analysis.benchmark import add_timing_args
from mmssl.engine.runner_utils import (ToolError, friendly_errors, load_config,
                                       merge_cfg_options, positive_int,
                                       run_tool)
from mmssl.utils.table import format_table

# (result key, column title, number format)
LOADER_COLUMNS = [('img_per_s', 'img/s', '.1f'),
                  ('batches_per_s', 'batches/s', '.2f'),
                  ('first_batch_s', 'first batch s', '.3f'),
                  ('build_s', 'build s', '.3f'), ('vs_step', 'x step', '.2f')]
TRANSFORM_COLUMNS = [('ms_per_sample', 'ms/sample', '.3f'),
                     ('share', '% of pipeline', '.1f')]


def _worker_count(text: str) -> int:
    """``--workers`` item: an integer >= 0."""
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < 0:
        raise argparse.ArgumentTypeError(
            f'{text!r} is not a worker count: give integers >= 0 '
            '(0 loads in the main process), e.g. --workers 0 1 2')
    return value


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Time the input pipeline of a config alone (decoded '
        'images/s per worker count), optionally beside its training step')
    parser.add_argument('config', help='training config file')
    parser.add_argument(
        '--workers',
        nargs='+',
        type=_worker_count,
        default=None,
        help='worker counts to measure (default: 0 1 2 and the config\'s '
        'num_workers)')
    parser.add_argument(
        '--batch-size',
        type=positive_int,
        default=None,
        help='samples per batch (default: train_dataloader.batch_size)')
    add_timing_args(parser, iters=20, warmup=5, repeat=3, what='batches')
    parser.add_argument(
        '--batches',
        dest='iters',
        type=positive_int,
        default=argparse.SUPPRESS,
        help='batches per timed window (the same as --iters)')
    parser.add_argument(
        '--with-step',
        action='store_true',
        help='also time the training step (model + optimizer, synthetic '
        'batch) of the same config and batch size')
    parser.add_argument(
        '--step-iters',
        type=positive_int,
        default=10,
        help='steps per timed window of --with-step')
    parser.add_argument(
        '--matmul-size',
        type=positive_int,
        default=None,
        help='matrix side of the matmul peak of --with-step (default 2048 '
        'on CPU, 8192 on CUDA)')
    parser.add_argument(
        '--transform-samples',
        type=int,
        default=16,
        help='samples of the per-transform breakdown (0 skips it)')
    args = parser.parse_args(argv)
    for key in ('iters', 'repeat'):
        if getattr(args, key) < 1:
            parser.error(f'--{key} must be >= 1, got {getattr(args, key)}')
    for key in ('warmup', 'transform_samples'):
        if getattr(args, key) < 0:
            flag = '--' + key.replace('_', '-')
            parser.error(f'{flag} must be >= 0, got {getattr(args, key)}')
    return args


def load_train_config(path: str, cfg_options: Optional[dict]):
    """The config with ``--cfg-options`` merged; it must have a training
    loader."""
    cfg = merge_cfg_options(load_config(path), cfg_options, path)
    if not isinstance(cfg.get('train_dataloader'), dict):
        raise ToolError(
            f'the config {path!r} has no train_dataloader: give a training '
            'config (one tools/train.py accepts)')
    return cfg


def worker_counts(args: argparse.Namespace, cfg) -> List[int]:
    """``--workers``, else 0, 1, 2 and the config's ``num_workers``."""
    if args.workers is not None:
        return list(dict.fromkeys(args.workers))
    return sorted({0, 1, 2, int(cfg.train_dataloader.get('num_workers', 0))})


def loader_table(runs: List[dict]) -> str:
    """One row per worker count."""
    return format_table([(r['num_workers'], r) for r in runs], LOADER_COLUMNS,
                        'workers')


def transform_table(transforms: dict) -> str:
    """One row per transform and the pipeline's total."""
    rows = [(step['type'], step) for step in transforms['steps']]
    rows.append(('total',
                 dict(
                     ms_per_sample=transforms['total_ms_per_sample'],
                     share=100. if transforms['steps'] else None)))
    return format_table(rows, TRANSFORM_COLUMNS, 'transform')


def default_matmul_size(device: str) -> int:
    """Matrix side of the matmul peak: 8192 on CUDA, where smaller products
    do not fill the card, else 2048."""
    return 8192 if device.startswith('cuda') else 2048


def measure(args: argparse.Namespace, cfg, counts: List[int]) -> tuple:
    """(loader results, step record or None), as described above."""
    result = benchmark_loader(
        cfg,
        counts,
        batches=args.iters,
        warmup=args.warmup,
        repeat=args.repeat,
        batch_size=args.batch_size,
        seed=args.seed,
        transform_samples=args.transform_samples,
        progress=True)
    if not args.with_step:
        return result, None
    step = benchmark_configs([cfg],
                             names=['step'],
                             batch_size=result['batch_size'],
                             iters=args.step_iters,
                             warmup=args.warmup,
                             repeat=args.repeat,
                             threads=args.threads,
                             device=args.device,
                             seed=args.seed,
                             matmul_size=args.matmul_size
                             or default_matmul_size(args.device))[0]
    for run in result['runs']:
        run['vs_step'] = run['img_per_s'] / step['img_per_s']
    return result, step


def main(argv: Optional[List[str]] = None) -> dict:
    args = parse_args(argv)
    cfg = load_train_config(args.config, args.cfg_options)
    counts = worker_counts(args, cfg)
    machine = machine_info(args.device)
    with friendly_errors(args.config, cfg):
        result, step = measure(args, cfg, counts)
    machine['load_average_end'] = machine_info(args.device).get('load_average')

    best = result['best']
    print(loader_table(result['runs']))
    print(f"batch {result['batch_size']} ({result['num_samples']} samples, "
          f"{result['collate_fn']}), {args.iters} batches x {args.repeat} "
          f'windows after {args.warmup} warm-up batches; '
          f"{machine['cpu_count']} CPUs ({machine['cpu']}); load average "
          f"{machine.get('load_average')} before, "
          f"{machine.get('load_average_end')} after")
    if result['transforms'] and result['transforms']['steps']:
        transforms = result['transforms']
        print()
        print(transform_table(transforms))
        print(f'pipeline alone in one process: '
              f"{transforms['img_per_s']:.1f} img/s over "
              f"{transforms['samples']} samples; costliest transform: "
              f"{transforms['bottleneck']}")
    if step is not None:
        print()
        print(f"training step: {step['img_per_s']:.1f} img/s "
              f"({step['s_per_iter']:.4f} s/step, batch "
              f"{step['batch_size']}, {step['threads']} threads on "
              f"{step['device']}, {step['pct_of_peak']:.1f}% of the "
              f"{step.get('peak_dtype', 'float32')} matmul peak)")
        print(f"{loader_summary(best['img_per_s'], step['img_per_s'])} "
              f"(loader at {best['num_workers']} workers)")
    if args.out:
        payload = dict(
            machine=machine,
            argv=sys.argv,
            args=vars(args),
            results=result,
            step=step)
        with open(args.out, 'w') as f:
            json.dump(payload, f, indent=2)
        print_log(f'results written to {args.out}', logger='current')
    return dict(result, step=step)


if __name__ == '__main__':
    run_tool(main)
