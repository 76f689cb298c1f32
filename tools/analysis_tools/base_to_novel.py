# Copyright (c) mmssl contributors. All rights reserved.
"""Run the base-to-novel protocol for zero-shot CLIP, CoOp, CoOp+SubPT and
CoOp+SubPT+NFL, evaluate during training, write a table and a plot.

    python tools/analysis_tools/base_to_novel.py \
        --clip-checkpoint work_dirs/clip_tiny_b128/epoch_150.pth \
        --work-dir work_dirs/b2n [--epochs 30] [--val-interval 3] \
        [--methods coop subpt ...] [--cfg-options k=v ...]

Each method is one config (``--coop``, ``--subpt``, ``--subpt-nfl``,
``--subpt-3phase``; the embedded-data ones by default) evaluated every
``--val-interval`` epochs;
zero-shot CLIP is the CoOp model before training (context initialised from
"a photo of a"). Writes ``results.json``, ``table.md`` and
``curves.png`` under ``--work-dir``; the methods of an earlier call in the
same ``--work-dir`` stay in ``results.json`` unless run again. The protocol
itself is :mod:`mmssl.analysis.base_to_novel`.
"""
import argparse
import json
import os
import os.path as osp
import sys

import mmssl  # noqa: F401  (safe weights-only checkpoint loader)
from mmssl.analysis.base_to_novel import (CONFIGS, LABELS, plot_base_to_novel,
                                          results_table, run_base_to_novel)
from mmssl.engine.runner_utils import (CFG_OPTIONS_HELP, CfgOptionsAction,
                                       tool_main)


@tool_main
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--clip-checkpoint', required=True)
    parser.add_argument('--work-dir', default='work_dirs/base_to_novel')
    parser.add_argument('--epochs', type=int, default=30)
    parser.add_argument(
        '--methods',
        nargs='+',
        default=['zeroshot', 'coop', 'subpt', 'subpt_nfl'],
        choices=list(LABELS))
    parser.add_argument('--coop', default=CONFIGS['coop'])
    parser.add_argument('--subpt', default=CONFIGS['subpt'])
    parser.add_argument('--subpt-nfl', default=CONFIGS['subpt_nfl'])
    parser.add_argument(
        '--subpt-3phase',
        default=CONFIGS['subpt_3phase'],
        help='phase C of three-phase SubPT; needs the subpt method run '
        'first in the same --work-dir (its subpt_subspace.pth)')
    parser.add_argument(
        '--table-epochs',
        type=int,
        nargs='+',
        default=None,
        help='epochs shown in the table (default: 1, 1/4, 1/2, 3/4, last)')
    parser.add_argument(
        '--val-interval',
        type=int,
        default=1,
        help='evaluate every N epochs (and after the last)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=CfgOptionsAction,
        help='settings of every method\'s config: ' + CFG_OPTIONS_HELP)
    parser.add_argument(
        '--plot-only',
        action='store_true',
        help='redraw table and plot from <work-dir>/results.json')
    args = parser.parse_args(argv)
    os.makedirs(args.work_dir, exist_ok=True)
    if args.plot_only:
        with open(osp.join(args.work_dir, 'results.json')) as f:
            results = json.load(f)
    else:
        results = run_base_to_novel(
            args.methods,
            args.work_dir,
            args.clip_checkpoint,
            args.epochs,
            val_interval=args.val_interval,
            configs=dict(
                coop=args.coop,
                subpt=args.subpt,
                subpt_nfl=args.subpt_nfl,
                subpt_3phase=args.subpt_3phase),
            cfg_options=args.cfg_options,
            log=lambda line: print(line, flush=True))
    n = args.epochs
    epochs = args.table_epochs or sorted({1, n // 4, n // 2, 3 * n // 4, n})
    md = results_table(results, epochs)
    with open(osp.join(args.work_dir, 'table.md'), 'w') as f:
        f.write(md)
    print(md)
    plot_base_to_novel(results, osp.join(args.work_dir, 'curves.png'))
    return 0


if __name__ == '__main__':
    sys.exit(main())
