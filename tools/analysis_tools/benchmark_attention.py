# Copyright (c) mmssl contributors. All rights reserved.
"""Time the attention kernel alone: forward + backward per shape and dtype.

Usage::

    python tools/analysis_tools/benchmark_attention.py SHAPE [SHAPE ...]
        [--dtypes float32 bfloat16] [--backends default flash math]
        [--iters 5] [--repeat 3] [--threads N] [--device cpu|cuda]
        [--out result.json]

Each SHAPE is ``B,H,N,d`` (batch, heads, tokens, head width) of q, k and v.
Every shape x dtype x backend is timed (``F.scaled_dot_product_attention``
forward + backward, the mean of ``--iters`` calls), all of them interleaved
over ``--repeat`` rounds, of which the median counts; the last column is
the time over the first dtype's at the same shape and backend
(:mod:`mmssl.analysis.attention_benchmark`). This is the measurement behind
``mmssl.models.utils.CPU_BF16_ATTENTION_MIN_KEYS``, e.g. MAE ViT-B's
decoder and encoder shapes at batch 8 and longer sequences::

    python tools/analysis_tools/benchmark_attention.py 8,16,197,32 \\
        8,12,50,64 16,12,256,64 8,12,512,64 2,12,1024,64 --threads 2
"""
import argparse
import json
import sys
from typing import List, Optional

import torch

from mmssl.analysis import machine_info
from mmssl.analysis.attention_benchmark import (BACKENDS, benchmark_attention,
                                                parse_shape)
from mmssl.engine.runner_utils import run_tool
from mmssl.utils.table import format_table

DTYPES = ('float32', 'bfloat16', 'float16')
COLUMNS = [('ms', 'ms fwd+bwd', '.2f'),
           ('ratio_to_first_dtype', 'over first dtype', '.2f')]


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        'shapes', nargs='+', help='B,H,N,d of q, k and v (one per shape)')
    parser.add_argument(
        '--dtypes',
        nargs='+',
        default=['float32', 'bfloat16'],
        choices=DTYPES,
        help='element types (the first is the reference)')
    parser.add_argument(
        '--backends',
        nargs='+',
        default=['default'],
        choices=['default', *BACKENDS],
        help="attention backends ('default': PyTorch picks)")
    parser.add_argument('--iters', type=int, default=5, help='calls timed')
    parser.add_argument(
        '--repeat', type=int, default=3, help='interleaved rounds')
    parser.add_argument('--threads', type=int, help='torch threads')
    parser.add_argument('--device', default='cpu', help="'cpu' or 'cuda'")
    parser.add_argument('--out', help='write the results as JSON')
    args = parser.parse_args(argv)
    try:
        args.shapes = [parse_shape(s) for s in args.shapes]
    except ValueError as err:
        parser.error(str(err))
    return args


def main(argv: Optional[List[str]] = None) -> List[dict]:
    args = parse_args(argv)
    results = benchmark_attention(
        args.shapes,
        dtypes=[getattr(torch, d) for d in args.dtypes],
        backends=[None if b == 'default' else b for b in args.backends],
        iters=args.iters,
        repeat=args.repeat,
        threads=args.threads,
        device=args.device)
    machine = machine_info(args.device)
    rows = [(f"{tuple(r['shape'])} {r['dtype']} {r['backend']}", r)
            for r in results]
    print(format_table(rows, COLUMNS, '(B, H, N, d) dtype backend'))
    threads = args.threads or torch.get_num_threads()
    print(f'median of {args.repeat} rounds of {args.iters} calls, {threads} '
          f"threads on {machine['device']} "
          f"({machine.get('device_name', machine.get('cpu'))})")
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(
                dict(machine=machine, argv=sys.argv, results=results),
                f,
                indent=2)
    return results


if __name__ == '__main__':
    run_tool(main)
