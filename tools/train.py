# Copyright (c) mmssl contributors. All rights reserved.
"""Train a model from an mmssl (or any OpenMMLab 2.0) config.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp]
        [--auto-scale-lr] [--no-validate] [--cfg-options k=v ...]
        [--launcher none|pytorch|slurm|mpi]

Same arguments and behaviour as mmpretrain 1.2's ``tools/train.py``, plus:

* ``import mmssl`` first: registers nothing by itself but installs the safe
  (weights-only, allow-listed) checkpoint loader and atomic checkpoint saving
  and the ``mmssl::`` config prefix.
* user errors (missing config, bad or unknown ``--cfg-options`` key,
  unknown ``type=``, a missing or empty data folder, a missing, unsafe,
  broken or ill-fitting ``load_from``/``--resume`` checkpoint) are printed
  as ``error: ...`` on stderr with exit code 2;
* ``--cfg-options`` keys must exist in the config or be arguments of the
  class their dict builds; ``+KEY=VALUE`` adds any other key on purpose;
* ``CONFIG`` and its ``_base_`` files may be written
  ``mmssl::<folder>/<file>.py`` (a config of mmssl's ``configs/``; see
  :mod:`mmssl.utils.config`);
* without CUDA, ``--amp`` keeps fp32 with a warning and a distributed launch
  uses ``gloo`` instead of ``nccl`` (see :mod:`mmssl.engine.runner_utils`).
"""
import argparse
import os
import os.path as osp
import sys

import mmssl  # noqa: F401  (stack check + safe checkpoint I/O)
from mmssl.engine.runner_utils import (CFG_OPTIONS_HELP, CfgOptionsAction,
                                       ToolError, build_runner,
                                       check_checkpoint, configure_amp,
                                       configure_distributed, friendly_errors,
                                       load_config, merge_cfg_options,
                                       run_tool, set_default_dataloader_cfg)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='If specify checkpoint path, resume from it, while if not '
        'specify, try to auto resume from the latest checkpoint '
        'in the work directory.')
    parser.add_argument(
        '--amp',
        action='store_true',
        help='enable automatic-mixed-precision training (CUDA; on a CPU '
        'with AMX bf16 autocast, mmssl.CPUAmpOptimWrapper; ignored with a '
        'warning on other CPUs)')
    parser.add_argument(
        '--no-validate',
        action='store_true',
        help='whether not to evaluate the checkpoint during training')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='whether to auto scale the learning rate according to the '
        'actual batch size and the original batch size.')
    parser.add_argument(
        '--no-pin-memory',
        action='store_true',
        help='whether to disable the pin_memory option in dataloaders.')
    parser.add_argument(
        '--no-persistent-workers',
        action='store_true',
        help='whether to disable the persistent_workers option in dataloaders.'
    )
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=CfgOptionsAction,
        help=CFG_OPTIONS_HELP)
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
    return args


def merge_args(cfg, args):
    """Merge CLI arguments into the config (mmpretrain's order)."""
    if args.no_validate:
        cfg.val_cfg = None
        cfg.val_dataloader = None
        cfg.val_evaluator = None

    cfg.launcher = args.launcher

    # work_dir priority: CLI > value in the config > config file name
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])

    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume

    if args.auto_scale_lr:
        if cfg.get('auto_scale_lr') is None:
            raise ToolError(
                f'--auto-scale-lr needs auto_scale_lr=dict(base_batch_size=N) '
                f'in the config {args.config!r} (N: the total batch size the '
                'learning rate was tuned for)')
        cfg.auto_scale_lr.enable = True

    merge_cfg_options(cfg, args.cfg_options, args.config)

    # after --cfg-options, so that they can set loss_scale, and so that an
    # AmpOptimWrapper set there is also replaced on a machine without CUDA
    configure_amp(cfg, args.amp)
    set_default_dataloader_cfg(
        cfg, ['train_dataloader', 'val_dataloader', 'test_dataloader'],
        pin_memory=False if args.no_pin_memory else None,
        persistent_workers=False if args.no_persistent_workers else None)
    return cfg


def _checkpoint_to_check(cfg):
    """(path, strict) of the checkpoint the runner will load, if any."""
    if cfg.get('resume') and cfg.get('load_from') is None:
        from mmengine.runner import find_latest_checkpoint
        latest = find_latest_checkpoint(cfg.work_dir)
        return (latest, True) if latest else (None, True)
    if cfg.get('load_from'):
        return cfg.load_from, bool(cfg.get('resume'))
    return None, True


def main(argv=None):
    args = parse_args(argv)
    cfg = load_config(args.config)
    cfg = merge_args(cfg, args)
    configure_distributed(cfg, args.launcher)

    with friendly_errors(args.config, cfg):
        runner = build_runner(cfg)
        ckpt, strict = _checkpoint_to_check(cfg)
        if ckpt:
            check_checkpoint(
                runner.model,
                ckpt,
                args.config,
                strict=strict,
                purpose='resuming from it' if strict else 'load_from')
        runner.train()


if __name__ == '__main__':
    sys.exit(run_tool(main))
