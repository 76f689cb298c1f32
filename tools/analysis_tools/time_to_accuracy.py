# Copyright (c) mmssl contributors. All rights reserved.
"""Time to accuracy: pretrain configs under one wall-clock budget, compare.

    python tools/analysis_tools/time_to_accuracy.py REF_CONFIG CONFIG [...] \
        --names mae data2vec2 --budget 300 --evals 6 --out tta.json \
        --plot tta.png

The first config is the reference (MAE in the data2vec 2.0 comparison). Each
config first gets a short training-step benchmark (img/s, peak memory,
FLOPs per image, the same measurement as ``benchmark_train.py``);
then a short real training probe (data loading included) sizes its schedule
to the budget; then it pretrains for ``--budget`` seconds
of training time through mmengine's Runner, and its frozen backbone is
evaluated (kNN / linear probe on the config's ``frozen_eval`` data) at
``--evals`` evenly spaced time points. The table reports each method's final
accuracy, the training time it needed to reach the reference's final
accuracy, and the speed-up (the reference's own time to that accuracy /
the method's time). The curves are
saved as a picture with ``--plot``.
"""
import argparse
import json
import os.path as osp
import sys

import torch

from mmssl.analysis import machine_info
from mmssl.apis import benchmark_configs, compare_time_to_accuracy
from mmssl.engine.runner_utils import (CFG_OPTIONS_HELP, CfgOptionsAction,
                                       ToolError, load_config,
                                       merge_cfg_options, run_tool)
from mmssl.visualization import plot_curves


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('configs', nargs='+', help='reference config first')
    p.add_argument('--names', nargs='+', help='one name per config')
    p.add_argument(
        '--budget',
        type=float,
        default=300,
        help='training seconds per config')
    p.add_argument(
        '--evals',
        type=int,
        default=5,
        help='evaluations per run, evenly spaced in time')
    p.add_argument(
        '--protocols',
        nargs='+',
        default=['knn', 'linear'],
        choices=['knn', 'linear'])
    p.add_argument(
        '--metric',
        default='knn_top1',
        help='metric compared (knn_top1 or linear_top1)')
    p.add_argument(
        '--probe-iters',
        type=int,
        default=5,
        help='timed steps of the speed probe')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument(
        '--device',
        default=None,
        help="'cpu' or 'cuda' (default: cuda when available); "
        'training runs where mmengine puts it (the GPU when '
        'there is one)')
    p.add_argument(
        '--cfg-options',
        nargs='+',
        action=CfgOptionsAction,
        help='settings of every config: ' + CFG_OPTIONS_HELP)
    p.add_argument('--work-dir', default=None)
    p.add_argument('--out', help='JSON file for all numbers')
    p.add_argument('--plot', help='PNG file for the accuracy curves')
    return p.parse_args(argv)


def plot_result(result: dict, path: str) -> None:
    """Accuracy against pretraining time, one curve per run."""
    metric = result['metric']
    curves = {
        name: ([r['train_s']
                for r in run['records']], [r[metric] for r in run['records']])
        for name, run in result['runs'].items()
    }
    plot_curves(
        curves,
        path,
        xlabel='pretraining time (s)',
        ylabel=metric + ' (%)',
        hlines={f"{result['reference']} final": result['target']})


def main(argv=None):
    args = parse_args(argv)
    names = args.names or [
        osp.splitext(osp.basename(c))[0] for c in args.configs
    ]
    if len(names) != len(args.configs):
        raise ToolError('--names needs one name per config')
    cfgs = [
        merge_cfg_options(load_config(c), args.cfg_options, c)
        for c in args.configs
    ]
    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    speed = benchmark_configs(
        cfgs,
        names=names,
        iters=args.probe_iters,
        warmup=2,
        repeat=1,
        seed=args.seed,
        device=device)
    # the schedules are sized by a real probe (data loading included); the
    # synthetic-batch benchmark above gives the step's own numbers
    result = compare_time_to_accuracy(
        cfgs,
        names,
        args.budget,
        None,
        metric=args.metric,
        num_evals=args.evals,
        protocols=args.protocols,
        work_dir=args.work_dir,
        seed=args.seed)
    result['speed'] = speed
    result['machine'] = machine_info(device)
    result['argv'] = sys.argv
    print(f"\nmetric: {args.metric}; target = {result['reference']}'s "
          f"final {result['target']:.2f} after {args.budget:.0f} s")
    header = (f"{'method':<14}{'final':>8}{'t->target s':>13}{'speed-up':>10}"
              f"{'img/s':>9}{'GFLOPs/img':>12}{'peak MiB':>10}")
    print(header)
    print('-' * len(header))
    for s, name in zip(speed, names):
        row = result['summary'][name]
        t = row['time_to_target_s']
        t_txt = f'{t:.0f}' if t is not None else 'never'
        up_txt = f"{row['speedup']:.2f}x" if row['speedup'] else '-'
        print(f"{name:<14}{row['final']:>8.2f}{t_txt:>13}{up_txt:>10}"
              f"{s['img_per_s']:>9.1f}{s['gflops_per_img']:>12.3f}"
              f"{s['peak_mem_mib']:>10.0f}")
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(result, f, indent=2, default=str)
    if args.plot:
        plot_result(result, args.plot)
        print(f'curves: {args.plot}')


if __name__ == '__main__':
    run_tool(main)
