# Copyright (c) mmssl contributors. All rights reserved.
"""Evaluate a pretrained backbone: kNN, linear probe, finetune and health.

Usage::

    python tools/analysis_tools/eval_frozen.py CONFIG [CHECKPOINT] [--random]
        [--protocols knn linear finetune] [--pool auto] [--k 20]
        [--temperature 0.07] [--linear-iters 100] [--finetune-epochs 5]
        [--seed 0] [--device cpu] [--out results.json]
        [--data-cfg DATA_CONFIG] [--cfg-options ...]

CONFIG is a pretraining config (``model`` with a ``backbone``, usually
``default_scope='mmpretrain'``). The labelled data come from its
``frozen_eval`` key::

    frozen_eval = dict(
        train_dataloader=dict(batch_size=64, num_workers=2, dataset=dict(...)),
        val_dataloader=dict(batch_size=64, num_workers=2, dataset=dict(...)),
        num_classes=None)  # optional; else read from the data set

or, when CONFIG has none, from the ``frozen_eval`` key of ``--data-cfg`` (a
config that holds only the evaluation data, reusable for many pretraining
configs). Both data sets are read in order with a deterministic pipeline
(e.g. resize + centre crop); their samplers are replaced by sequential ones.

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
import sys
from typing import Dict, List, Optional

from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.registry import init_default_scope
from mmengine.runner import set_random_seed

try:
    import mmssl  # noqa: F401  (stack check + safe checkpoint I/O)
except ModuleNotFoundError as _err:  # a checkout that is not pip-installed
    if _err.name != 'mmssl':
        raise
    sys.path.insert(
        0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
    import mmssl  # noqa: F401
from mmssl.apis import build_eval_dataloader, evaluate_backbone  # noqa: E402
from mmssl.engine.backbone_eval_cli import (  # noqa: E402
    add_backbone_args, backbone_rows, load_eval_model)
from mmssl.utils.table import format_table as _format_table  # noqa: E402
from mmssl.engine.runner_utils import (  # noqa: E402
    CfgOptionsAction, ToolError, friendly_errors, load_config,
    merge_cfg_options, run_tool)

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
    parser.add_argument(
        '--data-cfg',
        default=None,
        help='config with the `frozen_eval` data, used when CONFIG has none')
    parser.add_argument('--out', default=None, help='write results as JSON')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=CfgOptionsAction,
        help='override settings of CONFIG, e.g. '
        'frozen_eval.train_dataloader.batch_size=32')
    args = parser.parse_args(argv)
    if args.checkpoint is None and not args.random:
        args.random = True
        print_log(
            'no checkpoint given: evaluating the random backbone only',
            logger='current')
    return args


def frozen_eval_cfg(cfg: Config, data_cfg: Optional[str]) -> dict:
    """The ``frozen_eval`` dict of CONFIG, else of ``--data-cfg``."""
    frozen = cfg.get('frozen_eval')
    if frozen is None and data_cfg is not None:
        frozen = load_config(data_cfg).get('frozen_eval')
    if frozen is None or 'train_dataloader' not in frozen \
            or 'val_dataloader' not in frozen:
        raise ToolError(
            'no evaluation data: add `frozen_eval = dict(train_dataloader='
            '..., val_dataloader=...)` to the config or to a file given with '
            '--data-cfg')
    return frozen


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
    frozen = frozen_eval_cfg(cfg, args.data_cfg)

    rows = backbone_rows(args)

    results: Dict[str, dict] = {}
    for name, checkpoint in rows:
        set_random_seed(args.seed)
        with friendly_errors(args.config, cfg):
            train_loader = build_eval_dataloader(
                frozen['train_dataloader'], seed=args.seed)
            val_loader = build_eval_dataloader(
                frozen['val_dataloader'], seed=args.seed)
            model = load_model(cfg, checkpoint, args.device)
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
    if args.out:
        payload = dict(
            config=osp.abspath(args.config),
            checkpoint=args.checkpoint,
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
