# Copyright (c) mmssl contributors. All rights reserved.
"""Latency and memory of SubTuning multi-task inference against separate
task models.

Usage::

    python tools/analysis_tools/benchmark_multitask.py CONFIG
        [--tasks 1 2 4 8] [--blocks layer4.1 layer2.0 random]
        [--batch-size 8] [--img-size N] [--iters 5] [--warmup 2]
        [--repeat 5] [--threads N] [--device cpu|cuda] [--seed 0]
        [--pretrained] [--cfg-options ...] [--out result.json]
        [--plot latency.png]

CONFIG is a ``mmssl.SubTuningClassifier`` config. For every block
placement (``--blocks``: ``layer4.1`` or ``layer2.0,layer4.0`` for every
task, ``random`` / ``random:K`` for K random blocks per task) and task
count (``--tasks``), T task models are built from it sharing one trunk
(random, or the config's pretrained backbone with ``--pretrained``), each
with its own perturbed tuned blocks and head. On one batch of random
preprocessed images, under ``torch.inference_mode()``, one interleaved run
times the T models one after the other (``separate``),
``MultiTaskSubTuning`` (``multitask``) and the same with
``batch_branches=True`` (``multitask_batched``): warm-up, then ``--repeat``
rounds of every arm in turn, the median of the rounds. The markdown table
gives the latency per forward of all T tasks, the speed-up over
``separate``, the memory one forward adds (CPU: growth of the process's
resident set size; CUDA: ``max_memory_allocated``), the weights each arm
needs (T full models vs the trunk once plus the branches) and the largest
logit difference to the separate models. The definitions are in
:mod:`mmssl.analysis.multitask_benchmark`.

Example (the tiny 64 px ResNet-18, late and early tuned blocks)::

    CFG=subtuning/subtuning_resnet18-tiny-simclr_1xb64-coslr-10e_embedded.py
    python tools/analysis_tools/benchmark_multitask.py mmssl::$CFG \\
        --blocks layer4.1 layer2.0 --threads 2 \\
        --out multitask.json --plot multitask.png
"""
import argparse
import json
import sys
from typing import List, Optional

from mmengine.logging import print_log

import mmssl  # noqa: F401  (registers mmssl's parts)
from mmssl.analysis import benchmark_multitask, machine_info
from mmssl.analysis.benchmark import add_timing_args
from mmssl.analysis.multitask_benchmark import (ARMS, format_markdown,
                                                plot_latency)
from mmssl.engine.runner_utils import load_config, merge_cfg_options, run_tool
from mmssl.engine.tool_errors import ToolError


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Time T separate SubTuning models against multi-task '
        'inference over one shared frozen trunk')
    parser.add_argument('config', help='a SubTuningClassifier config')
    parser.add_argument(
        '--tasks',
        type=int,
        nargs='+',
        default=[1, 2, 4, 8],
        help='numbers of tasks (default: 1 2 4 8)')
    parser.add_argument(
        '--blocks',
        nargs='+',
        default=['layer4.1'],
        help="tuned blocks of every task ('layer4.1', 'layer2.0,layer4.0') "
        "or 'random' / 'random:K' (K random blocks per task); one case "
        'each (default: layer4.1)')
    parser.add_argument(
        '--arms',
        nargs='+',
        choices=ARMS,
        default=list(ARMS),
        help='what to time (default: all)')
    parser.add_argument(
        '--batch-size', type=int, default=8, help='images per forward')
    parser.add_argument(
        '--img-size',
        type=int,
        default=None,
        help='image side (default: from the config, else 224)')
    add_timing_args(parser, iters=5, warmup=2, repeat=5, what='forwards')
    parser.add_argument(
        '--pretrained',
        action='store_true',
        help="keep the config's Pretrained init_cfg (default: random trunk)")
    parser.add_argument(
        '--plot', default=None, help='write latency vs tasks as an image')
    return parser.parse_args(argv)


def _benchmark(cfg, args) -> List[dict]:
    return benchmark_multitask(
        cfg,
        task_counts=args.tasks,
        blocks=args.blocks,
        batch_size=args.batch_size,
        img_size=args.img_size,
        iters=args.iters,
        warmup=args.warmup,
        repeat=args.repeat,
        threads=args.threads,
        device=args.device,
        seed=args.seed,
        pretrained=args.pretrained,
        arms=args.arms)


def main(argv: Optional[List[str]] = None) -> List[dict]:
    args = parse_args(argv)
    cfg = merge_cfg_options(
        load_config(args.config), args.cfg_options, args.config)
    machine = machine_info(args.device)
    try:
        rows = _benchmark(cfg, args)
    except ValueError as err:  # not a SubTuning config, bad block names
        raise ToolError(f'{args.config}: {err}') from err
    machine['load_average_end'] = machine_info(args.device).get('load_average')
    machine['torch_threads'] = rows[0]['threads']
    first = rows[0]
    where = machine.get('device_name', machine['cpu'])
    print(format_markdown(rows))
    print(f"batch {first['batch_size']} x {first['img_size']} px, "
          f"{first['iters']} forwards x {first['repeat']} rounds after "
          f"{first['warmup']} warm-up forwards, {first['threads']} threads "
          f"on {machine['device']} ({where}); load average "
          f"{machine.get('load_average')} before, "
          f"{machine.get('load_average_end')} after")
    print(f"forward memory: {first['memory_method']}; weights: T full "
          'models (separate) vs trunk weights some task keeps frozen + '
          'branches (multitask)')
    if args.out:
        payload = dict(
            machine=machine, argv=sys.argv, args=vars(args), results=rows)
        with open(args.out, 'w') as f:
            json.dump(payload, f, indent=2)
        print_log(f'results written to {args.out}', logger='current')
    if args.plot:
        plot_latency(rows, args.plot)
        print_log(f'plot written to {args.plot}', logger='current')
    return rows


if __name__ == '__main__':
    run_tool(main)
