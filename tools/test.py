# Copyright (c) mmssl contributors. All rights reserved.
"""Test (and evaluate) a checkpoint with an mmssl / OpenMMLab 2.0 config.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out FILE]
        [--out-item metrics|pred] [--show-dir DIR] [--show]
        [--cfg-options k=v ...] [--launcher none|pytorch|slurm|mpi]

Same arguments and behaviour as mmpretrain 1.2's ``tools/test.py``, plus:

* ``import mmssl`` first (safe weights-only checkpoint loader, the
  ``mmssl::`` config prefix);
* before testing, the checkpoint's ``state_dict`` is compared with the model
  built from the config; any missing, unexpected or differently shaped key is
  reported as one ``error: checkpoint ... does not match ...`` message
  (exit code 2) naming the counts, the first keys and the fix;
* the other user errors of ``tools/train.py`` (missing config, bad or
  unknown ``--cfg-options`` key, unknown ``type=``, a missing or empty data
  folder, a missing, unsafe or broken checkpoint) are reported the same
  way;
* without CUDA, ``--amp`` tests in bf16 autocast on a CPU with AMX tiles
  and keeps fp32 on other CPUs; distributed runs use ``gloo``.
"""
import argparse
import os
import os.path as osp
import sys
from copy import deepcopy

import mmssl  # noqa: F401  (stack check + safe checkpoint I/O)
from mmssl.engine.runner_utils import (CFG_OPTIONS_HELP, CfgOptionsAction,
                                       ToolError, build_runner,
                                       check_checkpoint, configure_distributed,
                                       configure_test_amp, friendly_errors,
                                       load_config, merge_cfg_options,
                                       run_tool, set_default_dataloader_cfg)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='mmssl test (and eval) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--work-dir',
        help='the directory to save the file containing evaluation metrics')
    parser.add_argument('--out', help='the file to output results.')
    parser.add_argument(
        '--out-item',
        choices=['metrics', 'pred'],
        help='To output whether metrics or predictions. '
        'Defaults to output predictions.')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=CfgOptionsAction,
        help=CFG_OPTIONS_HELP)
    parser.add_argument(
        '--amp',
        action='store_true',
        help='automatic mixed precision: fp16 with CUDA, bf16 on a CPU with '
        'AMX (else fp32 with a warning)')
    parser.add_argument(
        '--show-dir',
        help='directory where the visualization images will be saved.')
    parser.add_argument(
        '--show',
        action='store_true',
        help='whether to display the prediction results in a window.')
    parser.add_argument(
        '--interval',
        type=int,
        default=1,
        help='visualize per interval samples.')
    parser.add_argument(
        '--wait-time',
        type=float,
        default=2,
        help='display time of every window. (second)')
    parser.add_argument(
        '--no-pin-memory',
        action='store_true',
        help='whether to disable the pin_memory option in dataloaders.')
    parser.add_argument(
        '--tta',
        action='store_true',
        help='Whether to enable the Test-Time-Aug (TTA). If the config file '
        'has `tta_pipeline` and `tta_model` fields, use them to determine the '
        'TTA transforms and how to merge the TTA results. Otherwise, use flip '
        'TTA by averaging classification score.')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    # torch.distributed.launch of torch >= 2.0 passes `--local-rank`, older
    # versions `--local_rank`; torchrun only sets the LOCAL_RANK variable.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    if args.out is None and args.out_item is not None:
        parser.error('--out-item needs --out FILE')
    return args


def merge_args(cfg, args):
    """Merge CLI arguments into the config (mmpretrain's order)."""
    cfg.launcher = args.launcher

    # work_dir priority: CLI > value in the config > config file name
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])

    cfg.load_from = args.checkpoint
    cfg.resume = False

    configure_test_amp(cfg, args.amp)

    if args.show or args.show_dir is not None:
        vis = cfg.get('default_hooks', {}).get('visualization')
        if vis is None:
            raise ToolError(
                f'--show/--show-dir need a visualization hook in the config '
                f'{args.config!r}: add default_hooks=dict(visualization='
                "dict(type='VisualizationHook', enable=False))")
        vis.enable = True
        vis.show = args.show
        vis.wait_time = args.wait_time
        vis.out_dir = args.show_dir
        vis.interval = args.interval

    if args.tta:
        if 'tta_model' not in cfg:
            cfg.tta_model = dict(type='mmpretrain.AverageClsScoreTTA')
        if 'tta_pipeline' not in cfg:
            test_pipeline = cfg.test_dataloader.dataset.pipeline
            cfg.tta_pipeline = deepcopy(test_pipeline)
            flip_tta = dict(
                type='TestTimeAug',
                transforms=[
                    [
                        dict(type='RandomFlip', prob=1.),
                        dict(type='RandomFlip', prob=0.)
                    ],
                    [test_pipeline[-1]],
                ])
            cfg.tta_pipeline[-1] = flip_tta
        cfg.model = dict(**cfg.tta_model, module=cfg.model)
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline

    merge_cfg_options(cfg, args.cfg_options, args.config)

    set_default_dataloader_cfg(
        cfg, ['test_dataloader'],
        pin_memory=False if args.no_pin_memory else None)
    return cfg


def main(argv=None):
    args = parse_args(argv)
    cfg = load_config(args.config)
    cfg = merge_args(cfg, args)
    missing = [
        key for key in ('test_dataloader', 'test_cfg', 'test_evaluator')
        if cfg.get(key) is None
    ]
    if missing:
        raise ToolError(
            f'config {args.config!r} sets no {", ".join(missing)}, so it '
            'cannot be tested (pretraining configs have none): test with a '
            'downstream config, e.g. one in configs/<method>/benchmarks/, or '
            'evaluate the frozen backbone with '
            'tools/analysis_tools/eval_frozen.py CONFIG CHECKPOINT')
    configure_distributed(cfg, args.launcher)

    with friendly_errors(args.config, cfg):
        runner = build_runner(cfg)
        model = runner.model
        if args.tta:  # the checkpoint belongs to the wrapped model
            from mmengine.model import is_model_wrapper
            model = model.module if is_model_wrapper(model) else model
            model = getattr(model, 'module', model)
        check_checkpoint(model, args.checkpoint, args.config, strict=True)

        if args.out and args.out_item in ['pred', None]:
            from mmengine.evaluator import DumpResults
            runner.test_evaluator.metrics.append(
                DumpResults(out_file_path=args.out))

        metrics = runner.test()

    if args.out and args.out_item == 'metrics':
        import mmengine
        mmengine.dump(metrics, args.out)
    return metrics


if __name__ == '__main__':
    run_tool(main)
    sys.exit(0)
