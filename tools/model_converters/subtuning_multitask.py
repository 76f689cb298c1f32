# Copyright (c) mmssl contributors. All rights reserved.
"""Merge SubTuning task checkpoints into one multi-task checkpoint.

    python tools/model_converters/subtuning_multitask.py \
        --task NAME CONFIG CHECKPOINT [--task NAME CONFIG CHECKPOINT ...] \
        --out merged.pth [--save-config merged_cfg.py] [--batch-size 2] \
        [--img-size N] [--atol 1e-6]

Every task is a ``mmssl.SubTuningClassifier`` config and its trained
checkpoint, all finetuned from the same pretrained backbone. The output
holds the shared frozen trunk once and each task's tuned blocks, neck and
head, with the task configs in ``meta['multitask']`` (see
:mod:`mmssl.converters.subtuning_multitask`); build the model from it
alone with::

    from mmssl.models import MultiTaskSubTuning
    model = MultiTaskSubTuning.from_checkpoint('merged.pth')
    logits = model(inputs)  # {task name: (B, num_classes)}

The tool prints the size of the merged file against the task checkpoints
(files and weights), reloads the merged file and checks on a random batch
that its outputs (per-branch and ``batch_branches`` forwards) equal each
task model's within ``--atol``. ``--save-config`` also writes a config
whose ``model`` builds the same model (``init_cfg`` loads the merged file).

Exit status 0 on success, 2 on bad input (``error: ...`` on stderr): a
config that is no SubTuningClassifier, a checkpoint that does not fit its
config (the key is named), tasks whose frozen trunks differ (the first
differing key is named) or a merged model that does not reproduce the
tasks (the merged file is then removed).
"""
import argparse
import os
import os.path as osp
import sys

from mmengine.config import Config

import mmssl  # noqa: F401  (safe weights-only checkpoint loader)
from mmssl.converters import (ConversionError, load_subtuning_task,
                              save_multitask_checkpoint, verify_multitask)
from mmssl.engine.tool_errors import ToolError, tool_main

MIB = 1024.**2


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Merge SubTuning task checkpoints (one shared frozen '
        'trunk) into one multi-task checkpoint.')
    parser.add_argument(
        '--task',
        nargs=3,
        action='append',
        metavar=('NAME', 'CONFIG', 'CHECKPOINT'),
        required=True,
        help='a task: its name, SubTuningClassifier config and trained '
        'checkpoint (repeat for every task)')
    parser.add_argument('--out', required=True, help='merged checkpoint')
    parser.add_argument(
        '--save-config',
        default=None,
        help='also write a config building the merged model')
    parser.add_argument(
        '--batch-size', type=int, default=2, help='images of the check')
    parser.add_argument(
        '--img-size',
        type=int,
        default=None,
        help='image side of the check (default: backbone.img_size or 64)')
    parser.add_argument(
        '--atol',
        type=float,
        default=1e-6,
        help='largest logit difference allowed (default: 1e-6)')
    return parser.parse_args(argv)


def report(info: dict, diffs: dict, out: str) -> str:
    """The lines printed after a successful merge."""
    tasks = info['meta']['multitask']['tasks']
    lines = [
        f"{t['name']}: blocks {t['trainable_blocks']}, "
        f"{t['num_classes']} classes" for t in tasks
    ]
    task_files = [v for v in info['task_file_bytes'].values() if v]
    task_weights = sum(info['task_weight_bytes'].values())
    merged_weights = info['merged_weight_bytes']
    lines.append(f'weights: merged {merged_weights / MIB:.2f} MiB vs '
                 f'{task_weights / MIB:.2f} MiB in the {len(tasks)} task '
                 f'checkpoints ({merged_weights / task_weights:.1%})')
    if task_files and info['merged_file_bytes']:
        total = sum(task_files)
        lines.append(f"files: merged {info['merged_file_bytes'] / MIB:.2f} "
                     f'MiB vs {total / MIB:.2f} MiB '
                     f"({info['merged_file_bytes'] / total:.1%})")
    worst = max(d for per in diffs.values() for d in per.values())
    lines.append(f'check: reloaded from {out}, largest logit difference to '
                 f'the task models {worst:.3g} (per-branch and '
                 'batch_branches forwards)')
    lines.append(f'saved to {out} ({info["num_tensors"]} tensors); load '
                 f"with MultiTaskSubTuning.from_checkpoint('{out}')")
    return '\n'.join(lines)


def save_config(info: dict, out: str, path: str) -> None:
    """Write a config whose ``model`` builds the merged model."""
    meta = info['meta']['multitask']
    model = dict(
        meta['model'],
        init_cfg=dict(type='Pretrained', checkpoint=osp.abspath(out)))
    Config(dict(default_scope=meta['default_scope'], model=model)).dump(path)


@tool_main
def main(argv=None):
    args = parse_args(argv)
    try:
        tasks = [
            load_subtuning_task(name, config, checkpoint)
            for name, config, checkpoint in args.task
        ]
        info = save_multitask_checkpoint(
            tasks,
            args.out,
            converted_by='tools/model_converters/subtuning_multitask.py')
    except ConversionError as err:
        raise ToolError(str(err)) from err
    try:
        diffs = verify_multitask(
            args.out,
            tasks,
            batch_size=args.batch_size,
            img_size=args.img_size,
            atol=args.atol)
    except (ConversionError, ValueError) as err:
        os.remove(args.out)
        raise ToolError(f'{err}; {args.out} was removed') from err
    if args.save_config:
        save_config(info, args.out, args.save_config)
    print(report(info, diffs, args.out))
    if args.save_config:
        print(f'config: {args.save_config} (MODELS.build(cfg.model) then '
              'model.init_weights())')
    return 0


if __name__ == '__main__':
    sys.exit(main())
