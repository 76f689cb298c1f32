# Copyright (c) mmssl contributors. All rights reserved.
"""Frozen dense probe of a pretrained backbone on a segmentation split.

Usage::

    python tools/analysis_tools/dense_probe.py CONFIG [CHECKPOINT] [--random]
        [--data-root data/embedded/seg] [--num-train N] [--grid 16]
        [--iters 300] [--lr 0.01] [--wd 1e-4] [--seed 0]
        [--out-indices 0 1 2 3] [--num-classes 10] [--out results.json]
        [--show probe.png] [--show-num 8] [--cfg-options ...]

CONFIG is a pretraining config (``model`` with a ``backbone``). The backbone
stays frozen; a 1x1 convolution on its feature maps (every output level,
bilinearly resized to a ``--grid`` x ``--grid`` grid and concatenated) is
trained with cross-entropy against the label maps of ``img_dir/train`` /
``ann_dir/train`` under ``--data-root`` and scored on ``val`` with mmseg's
mIoU. ResNet backbones give all four stages unless ``--out-indices`` says
otherwise (dense heads read every stage); other backbones their configured
outputs. Images are normalised by the model's data preprocessor. Rows as in
``eval_frozen.py``: ``pretrained`` (CHECKPOINT) and ``random`` (the same
architecture at its random initialisation, with ``--random``).
"""
import argparse
import json
import os.path as osp
from typing import Dict, List, Optional

import mmcv
import numpy as np
import torch
from mmengine.logging import print_log
from mmengine.registry import init_default_scope
from mmengine.runner import set_random_seed

import mmssl  # noqa: F401  (stack check + safe checkpoint I/O)
from mmssl.engine.backbone_eval_cli import (add_backbone_args, backbone_rows,
                                            load_eval_model)
from mmssl.engine.runner_utils import (CFG_OPTIONS_HELP, CfgOptionsAction,
                                       ToolError, friendly_errors, load_config,
                                       merge_cfg_options, run_tool)
from mmssl.evaluation.protocols import (dense_probe, load_seg_split,
                                        preprocess_images, set_out_indices)
from mmssl.utils.table import format_table as _format_table
from mmssl.visualization import prediction_grid

COLUMNS = [('mIoU', 'mIoU', '.2f'), ('aAcc', 'aAcc', '.2f'),
           ('train_mIoU', 'train mIoU', '.2f'),
           ('feature_dim', 'feature dim', 'd')]


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='frozen dense (per-pixel linear) probe of a backbone')
    add_backbone_args(parser, 'probe')
    parser.add_argument(
        '--data-root',
        default='data/embedded/seg',
        help='folder with img_dir/{train,val} and ann_dir/{train,val} '
        '(default: %(default)s)')
    parser.add_argument(
        '--num-train',
        type=int,
        help='train on the first N training images only')
    parser.add_argument(
        '--num-classes',
        type=int,
        help='classes incl. background (default: largest label + 1)')
    parser.add_argument(
        '--out-indices',
        type=int,
        nargs='+',
        help='backbone outputs to probe (default: all four stages of a '
        'ResNet, the configured outputs otherwise)')
    parser.add_argument('--grid', type=int, default=16)
    parser.add_argument('--iters', type=int, default=300)
    parser.add_argument('--lr', type=float, default=0.01)
    parser.add_argument('--wd', type=float, default=1e-4)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out', help='write the results as JSON')
    parser.add_argument(
        '--show',
        help='save a picture of the first --show-num validation images: '
        'image, labels and each row\'s prediction')
    parser.add_argument('--show-num', type=int, default=8)
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=CfgOptionsAction,
        help=CFG_OPTIONS_HELP)
    args = parser.parse_args(argv)
    if args.checkpoint is None and not args.random:
        parser.error('give a CHECKPOINT, --random, or both')
    return args


def to_inputs(model: torch.nn.Module, imgs: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) uint8 BGR images -> the model's preprocessed input."""
    return preprocess_images(model, torch.from_numpy(imgs).permute(0, 3, 1, 2))


def main(argv: Optional[List[str]] = None) -> Dict[str, dict]:
    args = parse_args(argv)
    cfg = merge_cfg_options(
        load_config(args.config), args.cfg_options, args.config)
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    backbone_type = str(cfg.model.get('backbone', {}).get('type', ''))
    out_indices = args.out_indices
    if out_indices is None and 'ResNet' in backbone_type:
        out_indices = [0, 1, 2, 3]

    try:
        train_imgs, train_labels = load_seg_split(args.data_root, 'train',
                                                  args.num_train)
        val_imgs, val_labels = load_seg_split(args.data_root, 'val')
    except FileNotFoundError as err:
        raise ToolError(str(err)) from err
    labels = np.concatenate([train_labels.ravel(), val_labels.ravel()])
    num_classes = args.num_classes or int(labels[labels != 255].max()) + 1
    print_log(
        f'{len(train_imgs)} training / {len(val_imgs)} validation images, '
        f'{num_classes} classes',
        logger='current')

    results: Dict[str, dict] = {}
    for name, checkpoint in backbone_rows(args):
        set_random_seed(args.seed)
        with friendly_errors(args.config, cfg):
            model = load_eval_model(cfg, checkpoint)
        backbone = model.backbone
        if out_indices is not None:
            try:
                set_out_indices(backbone, out_indices)
            except ValueError as err:
                raise ToolError(f'--out-indices {out_indices}: {err}') from err
        print_log(
            f'probing the {name} backbone (outputs '
            f'{list(backbone.out_indices)})',
            logger='current')
        results[name] = dense_probe(
            backbone,
            (to_inputs(model, train_imgs), torch.from_numpy(train_labels)),
            (to_inputs(model, val_imgs), torch.from_numpy(val_labels)),
            num_classes,
            grid=args.grid,
            iters=args.iters,
            lr=args.lr,
            weight_decay=args.wd,
            seed=args.seed,
            keep_predictions=args.show_num if args.show else 0)

    if args.show:
        preds = {
            name: res.pop('predictions').numpy()
            for name, res in results.items()
        }
        n = args.show_num
        mmcv.imwrite(
            prediction_grid(val_imgs[:n], val_labels[:n], preds, num_classes),
            args.show)
        print_log(
            f'{args.show}: image | labels | ' + ' | '.join(preds),
            logger='current')
    print(_format_table(results.items(), COLUMNS, 'backbone'))
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(
                dict(
                    config=osp.abspath(args.config),
                    checkpoint=args.checkpoint,
                    data_root=args.data_root,
                    settings=dict(
                        num_train=len(train_imgs),
                        num_classes=num_classes,
                        out_indices=out_indices,
                        grid=args.grid,
                        iters=args.iters,
                        lr=args.lr,
                        wd=args.wd,
                        seed=args.seed),
                    results=results),
                f,
                indent=2)
        print_log(f'results written to {args.out}', logger='current')
    return results


if __name__ == '__main__':
    run_tool(main)
