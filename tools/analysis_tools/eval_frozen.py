# Copyright (c) mmssl contributors. All rights reserved.
"""Evaluate a pretrained backbone: kNN, linear probe, finetune and health.

Usage::

    python tools/analysis_tools/eval_frozen.py CONFIG [CHECKPOINT] [--random]
        [--protocols knn linear finetune] [--pool auto] [--k 20]
        [--temperature 0.07] [--linear-iters 100] [--finetune-epochs 5]
        [--seed 0] [--device cpu] [--out results.json]
        [--data-cfg DATA_CONFIG | --data-root FOLDER [--val-fraction 0.2]
         [--img-size N] [--batch-size 64] [--num-workers 2]]
        [--cfg-options ...]

CONFIG is a pretraining config (``model`` with a ``backbone``, usually
``default_scope='mmpretrain'``). The labelled data come from, first found:

1. ``--data-root FOLDER``: an ImageNet-style folder of labelled images, one
   sub-folder per class (images may sit deeper inside it). If FOLDER holds
   ``train/`` and ``val/``, each with the same class sub-folders, those are
   the two splits; otherwise FOLDER's class sub-folders are split per class
   (``--val-fraction`` of each class, at least one image, drawn with
   ``--seed``). Images are read with mmpretrain's ``CustomDataset``, resized
   (short edge) and centre-cropped to ``--img-size`` (default: the
   backbone's ``img_size``, else the crop of the training pipeline, else
   224). No config needs to be written.
2. ``--data-cfg DATA_CONFIG``: the ``frozen_eval`` key of that config (a
   config that holds only the evaluation data, reusable for many pretraining
   configs); it replaces the one of CONFIG.
3. the ``frozen_eval`` key of CONFIG::

    frozen_eval = dict(
        train_dataloader=dict(batch_size=64, num_workers=2, dataset=dict(...)),
        val_dataloader=dict(batch_size=64, num_workers=2, dataset=dict(...)),
        num_classes=None)  # optional; else read from the data set

Both data sets are read in order with a deterministic pipeline (e.g. resize
+ centre crop); their samplers are replaced by sequential ones. The tool logs
which data it evaluates on (where they come from, the folder or data set and
split, the number of images and the classes); ``--out`` stores the same.

With CHECKPOINT the row ``pretrained`` is evaluated; with ``--random`` (or
without CHECKPOINT) the row ``random``, the same architecture at its random
initialisation; with both, the two rows are printed side by side. Every row
starts from the same seed, so the finetune of both sees the same head
initialisation and the same batches in the same order, and a rerun gives the
same numbers.
"""
import argparse
import json
import os.path as osp
from typing import Dict, List, Optional

from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.registry import init_default_scope
from mmengine.runner import set_random_seed

import mmssl  # noqa: F401  (stack check + safe checkpoint I/O)
from mmssl.apis import build_eval_dataloader, evaluate_backbone
from mmssl.engine.backbone_eval_cli import (add_backbone_args, backbone_rows,
                                            load_eval_model)
from mmssl.engine.runner_utils import (CFG_OPTIONS_HELP, CfgOptionsAction,
                                       ToolError, friendly_errors, load_config,
                                       merge_cfg_options, run_tool)
from mmssl.evaluation.protocols import (EvalDataError, default_img_size,
                                        describe_data, folder_frozen_eval,
                                        format_data, frozen_eval_cfg)
from mmssl.utils.table import format_table as _format_table

# (result key, column title, number format)
COLUMNS = [('knn_top1', 'kNN top-1', '.2f'),
           ('linear_top1', 'linear top-1', '.2f'),
           ('finetune_top1', 'finetune top-1', '.2f'),
           ('std_mean', 'feat std', '.4f'), ('std_min', 'min std', '.4f'),
           ('effective_rank', 'eff. rank', '.2f'),
           ('rank_ratio', 'rank ratio', '.3f')]


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='kNN / linear-probe / finetune evaluation of a backbone')
    add_backbone_args(parser, 'evaluate')
    parser.add_argument(
        '--protocols',
        nargs='+',
        default=['knn', 'linear', 'finetune'],
        choices=['knn', 'linear', 'finetune'],
        help='protocols to run')
    parser.add_argument(
        '--pool',
        default='auto',
        choices=['auto', 'cls', 'mean'],
        help="token pooling: 'mean' of patch tokens ('auto') or 'cls'")
    parser.add_argument('--k', type=int, default=20, help='kNN neighbours')
    parser.add_argument(
        '--temperature', type=float, default=0.07, help='kNN temperature')
    parser.add_argument(
        '--linear-iters',
        type=int,
        default=100,
        help='linear-probe L-BFGS iterations')
    parser.add_argument(
        '--linear-wd',
        type=float,
        default=1e-3,
        help='linear-probe L2 weight decay')
    parser.add_argument(
        '--finetune-epochs', type=int, default=5, help='finetune epochs')
    parser.add_argument(
        '--finetune-lr', type=float, default=1e-3, help='finetune AdamW lr')
    parser.add_argument(
        '--finetune-wd',
        type=float,
        default=0.05,
        help='finetune AdamW weight decay')
    parser.add_argument('--seed', type=int, default=0, help='random seed')
    parser.add_argument(
        '--device', default='cpu', help="device, e.g. 'cpu' or 'cuda'")
    data = parser.add_mutually_exclusive_group()
    data.add_argument(
        '--data-cfg',
        default=None,
        help='config whose `frozen_eval` gives the evaluation data; it '
        'replaces the `frozen_eval` of CONFIG')
    data.add_argument(
        '--data-root',
        default=None,
        metavar='FOLDER',
        help='evaluate on an ImageNet-style folder of labelled images, one '
        'sub-folder per class, without writing a config: FOLDER/train/<class>'
        '/... and FOLDER/val/<class>/... when both exist, else '
        'FOLDER/<class>/... split per class by --val-fraction. Replaces the '
        '`frozen_eval` of CONFIG')
    parser.add_argument(
        '--val-fraction',
        type=float,
        default=0.2,
        help='with --data-root FOLDER without train/ and val/: the fraction '
        'of each class held out for validation (at least one image; drawn '
        'with --seed). Default 0.2')
    parser.add_argument(
        '--img-size',
        type=int,
        default=None,
        help='with --data-root: images are resized (short edge) and centre-'
        "cropped to this size (default: the backbone's img_size, else the "
        "crop size of the config's training pipeline, else 224)")
    parser.add_argument(
        '--batch-size',
        type=int,
        default=64,
        help='with --data-root: images per batch (default 64)')
    parser.add_argument(
        '--num-workers',
        type=int,
        default=2,
        help='with --data-root: data-loader workers (default 2)')
    parser.add_argument('--out', default=None, help='write results as JSON')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=CfgOptionsAction,
        help=CFG_OPTIONS_HELP + '; e.g. '
        'frozen_eval.train_dataloader.batch_size=32')
    args = parser.parse_args(argv)
    if not 0 < args.val_fraction < 1:
        parser.error(f'--val-fraction must be between 0 and 1, got '
                     f'{args.val_fraction}')
    if args.checkpoint is None and not args.random:
        args.random = True
        print_log(
            'no checkpoint given: evaluating the random backbone only',
            logger='current')
    return args


def load_model(cfg: Config, checkpoint: Optional[str], device: str):
    """Build the model, load the checkpoint's backbone, quietly."""
    return load_eval_model(cfg, checkpoint, device)


def format_table(results: Dict[str, dict]) -> str:
    """One row per backbone, one column per protocol and health number."""
    return _format_table(results.items(), COLUMNS, 'backbone')


def main(argv: Optional[List[str]] = None) -> Dict[str, dict]:
    args = parse_args(argv)
    cfg = merge_cfg_options(
        load_config(args.config), args.cfg_options, args.config)
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    try:
        if args.data_root is not None:
            img_size = args.img_size or default_img_size(cfg)
            frozen, source = folder_frozen_eval(
                args.data_root,
                img_size,
                batch_size=args.batch_size,
                num_workers=args.num_workers,
                val_fraction=args.val_fraction,
                seed=args.seed)
            source += f', images resized and centre-cropped to {img_size} px'
        else:
            frozen, source = frozen_eval_cfg(cfg, args.data_cfg, args.config)
    except EvalDataError as err:
        raise ToolError(str(err)) from err

    rows = backbone_rows(args)

    results: Dict[str, dict] = {}
    data: Optional[dict] = None
    for name, checkpoint in rows:
        set_random_seed(args.seed)
        # a data config's unknown types are reported against that file
        with friendly_errors(args.data_cfg or args.config,
                             None if args.data_cfg else cfg):
            train_loader = build_eval_dataloader(
                frozen['train_dataloader'], seed=args.seed)
            val_loader = build_eval_dataloader(
                frozen['val_dataloader'], seed=args.seed)
        with friendly_errors(args.config, cfg):
            model = load_model(cfg, checkpoint, args.device)
        if data is None:
            data = describe_data(source, train_loader, val_loader)
            print_log(format_data(data), logger='current')
        print_log(f'evaluating the {name} backbone', logger='current')
        results[name] = evaluate_backbone(
            model,
            train_loader,
            val_loader,
            protocols=args.protocols,
            num_classes=frozen.get('num_classes'),
            k=args.k,
            temperature=args.temperature,
            pool=args.pool,
            linear_cfg=dict(
                max_iter=args.linear_iters, weight_decay=args.linear_wd),
            finetune_cfg=dict(
                epochs=args.finetune_epochs,
                lr=args.finetune_lr,
                weight_decay=args.finetune_wd),
            seed=args.seed,
            device=args.device)

    print(format_table(results))
    if data is not None:
        classes = data['train'].get('classes')
        print(f'data: {data["source"]}; train {data["train"]["num_images"]} '
              f'/ val {data["val"]["num_images"]} images' +
              (f', {len(classes)} classes' if classes else ''))
    if args.out:
        payload = dict(
            config=osp.abspath(args.config),
            checkpoint=args.checkpoint,
            data=data,
            settings=dict(
                protocols=list(args.protocols),
                pool=args.pool,
                k=args.k,
                temperature=args.temperature,
                linear_iters=args.linear_iters,
                linear_wd=args.linear_wd,
                finetune_epochs=args.finetune_epochs,
                finetune_lr=args.finetune_lr,
                finetune_wd=args.finetune_wd,
                seed=args.seed),
            results=results)
        with open(args.out, 'w') as f:
            json.dump(payload, f, indent=2)
        print_log(f'results written to {args.out}', logger='current')
    return results


if __name__ == '__main__':
    run_tool(main)
