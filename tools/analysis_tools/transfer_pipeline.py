# Copyright (c) mmssl contributors. All rights reserved.
"""Pretrain -> convert -> fine-tune -> evaluate, on the embedded data.

    python tools/analysis_tools/transfer_pipeline.py \
        --method simclr|densecl|mae|data2vec2|random|random-vit \
        --task seg|det [--pretrain-epochs N] [--finetune-epochs N] \
        [--work-dir DIR] [--tag NAME] [--data-root DIR] [--num-train N] \
        [--pretrain-cfg-options k=v ...] [--finetune-cfg-options k=v ...]
    python tools/analysis_tools/transfer_pipeline.py --all --task seg ...

For one method and task it runs, each as its own process:

1. ``tools/train.py`` on the method's tiny pretraining config (skipped for
   ``random``; reused when the same pretraining already exists in the work
   directory, as between ``--task seg`` and ``--task det``);
2. ``tools/model_converters/convert_backbone.py`` to the fine-tuning
   library's key layout (``--to mmseg`` for ResNets in mmseg, ``--to mmdet``
   in mmdet, ``--to mmpretrain`` for the ViTs, which mmseg builds from
   mmpretrain / mmssl classes);
3. ``tools/train.py`` on the tiny transfer config of ``configs/transfer/``
   (``init_cfg=None`` for ``random``);
4. ``tools/test.py`` on the fine-tuned checkpoint, which gives mIoU
   (mmseg ``IoUMetric``) or box mAP (mmdet ``CocoMetric``).

The epochs of both stages can be changed: the schedule is rescaled to the
new length (``mmssl.analysis.schedule.rescale_schedule``: epoch-based
schedulers and the EMA teacher's anneal keep their share of the run,
iteration-based warm-ups their length). The stages themselves are
:mod:`mmssl.analysis.transfer`; this tool parses the command line, makes
the data and loops over the methods. Every stage writes its config, log and
checkpoints under ``WORK_DIR/<method>/``; the result (metrics, commands,
configs, seconds per stage) goes to ``WORK_DIR/<task>_<method>.json``.
``--all`` runs ``random`` and every method whose configs exist (DenseCL
only once ``configs/densecl/`` has its tiny config), prints a table and
writes ``WORK_DIR/<task>_results.json`` and ``WORK_DIR/<task>_results.md``.
"""
import argparse
import json
import os
import os.path as osp
import sys
import time
from typing import List

from mmengine.logging import MMLogger

import mmssl  # noqa: F401  (stack check + safe checkpoint I/O)
from mmssl.analysis.transfer import (METHODS, TASKS, available_methods,
                                     format_table, run_method, suffix)
from mmssl.engine.runner_utils import (CFG_OPTIONS_HELP, CfgOptionsAction,
                                       run_tool)


# --------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------
def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Pretrain, convert, fine-tune and evaluate on the '
        'embedded data (segmentation mIoU or detection box mAP).')
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument('--method', choices=list(METHODS))
    group.add_argument(
        '--all',
        action='store_true',
        help='random init and every method with configs for the task')
    parser.add_argument('--task', choices=TASKS, required=True)
    parser.add_argument(
        '--pretrain-epochs',
        type=int,
        help='pretraining epochs (default: the config\'s own)')
    parser.add_argument(
        '--finetune-epochs',
        type=int,
        help='fine-tuning epochs (default: the config\'s own)')
    parser.add_argument(
        '--work-dir',
        default='work_dirs/transfer/embedded',
        help='where every stage writes (default: %(default)s)')
    parser.add_argument(
        '--data-root',
        default='data/embedded',
        help='embedded data set folder (default: %(default)s)')
    parser.add_argument(
        '--num-train',
        type=int,
        help='make a data set of this many classification training images '
        '(detection / segmentation get half) under --data-root')
    parser.add_argument(
        '--num-val', type=int, help='with --num-train: validation images')
    parser.add_argument(
        '--tag',
        help='name of this fine-tuning setting: its outputs go to '
        '<method>/<task>_<tag>/ and <task>_<method>_<tag>.json, beside those '
        'of other settings that share the same pretraining')
    parser.add_argument(
        '--force',
        action='store_true',
        help='pretrain again even if the same pretraining exists')
    parser.add_argument(
        '--checkpoint',
        help='an mmssl pretraining checkpoint of --method (e.g. a longer '
        'run made elsewhere) to convert and fine-tune instead of '
        'pretraining here; give it its own --work-dir, since the converted '
        'backbone is written to WORK_DIR/<method>/')
    parser.add_argument(
        '--pretrain-only',
        action='store_true',
        help='stop after pretraining and conversion (e.g. to pretrain every '
        'method once before fine-tuning for both tasks)')
    parser.add_argument(
        '--pretrain-cfg-options',
        nargs='+',
        action=CfgOptionsAction,
        help='overrides of the pretraining config: ' + CFG_OPTIONS_HELP)
    parser.add_argument(
        '--finetune-cfg-options',
        nargs='+',
        action=CfgOptionsAction,
        help='overrides of the transfer config: ' + CFG_OPTIONS_HELP)
    parser.add_argument(
        '--out',
        help='results JSON (default: WORK_DIR/<task>_results.json '
        'with --all)')
    args = parser.parse_args(argv)
    if args.num_val is not None and args.num_train is None:
        parser.error('--num-val needs --num-train')
    if args.checkpoint is not None:
        pretrained = [m for m in METHODS if METHODS[m]['pretrain']]
        if args.method not in pretrained:
            parser.error('--checkpoint needs --method with a pretraining '
                         f'(one of {", ".join(pretrained)})')
        if not osp.isfile(args.checkpoint):
            parser.error(f'--checkpoint {args.checkpoint}: no such file')
        if args.pretrain_epochs is not None or args.force:
            parser.error('--checkpoint replaces pretraining: drop '
                         '--pretrain-epochs / --force')
    return args


def main(argv=None) -> List[dict]:
    args = parse_args(argv)
    args.work_dir = osp.abspath(args.work_dir)
    args.data_root = osp.abspath(args.data_root)
    if args.checkpoint is not None:  # the steps run from the package root
        args.checkpoint = osp.abspath(args.checkpoint)
    os.makedirs(args.work_dir, exist_ok=True)
    logger = MMLogger.get_instance(
        f'transfer_pipeline_{time.time_ns()}',
        logger_name='transfer_pipeline',
        log_file=osp.join(args.work_dir,
                          f'pipeline_{args.task}{suffix(args)}.log'))

    from mmssl.datasets import ensure_embedded_data, make_embedded_data
    if args.num_train is not None:
        make_embedded_data(
            args.data_root,
            num_train=args.num_train,
            num_val=args.num_val or max(1, args.num_train // 4))
    else:
        ensure_embedded_data(args.data_root)

    methods = available_methods(args.task) if args.all else [args.method]
    if args.all:
        missing = [m for m in METHODS if m not in methods]
        logger.info(f'methods: {", ".join(methods)}' + (
            f' (no configs for {", ".join(missing)})' if missing else ''))
    records = [run_method(m, args.task, args, logger) for m in methods]
    if args.pretrain_only:
        return records

    table = format_table(records)
    logger.info(f'{args.task} on the embedded data:\n{table}')
    out = args.out
    if out is None and args.all:
        out = osp.join(args.work_dir,
                       f'{args.task}_results{suffix(args)}.json')
    if out is not None:
        with open(out, 'w') as f:
            json.dump(
                dict(
                    task=args.task,
                    command=' '.join(['python'] + sys.argv),
                    results=records),
                f,
                indent=2)
        with open(osp.splitext(out)[0] + '.md', 'w') as f:
            f.write(table + '\n')
    return records


if __name__ == '__main__':
    run_tool(main)
