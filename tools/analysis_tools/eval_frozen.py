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
import os
import os.path as osp
from typing import Dict, List, Optional, Tuple

import numpy as np
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
from mmssl.utils.table import format_table as _format_table

#: image extensions of mmpretrain's CustomDataset
IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.pgm', '.tif')

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


def _has_frozen_eval(frozen) -> bool:
    return frozen is not None and 'train_dataloader' in frozen \
        and 'val_dataloader' in frozen


def frozen_eval_cfg(cfg: Config,
                    data_cfg: Optional[str],
                    config_path: str = 'CONFIG') -> Tuple[dict, str]:
    """The ``frozen_eval`` dict to use and where it comes from.

    ``--data-cfg`` wins over CONFIG's own ``frozen_eval``.

    Returns:
        tuple[dict, str]: the ``frozen_eval`` dict and its source, e.g.
        ``"the frozen_eval of --data-cfg 'data.py'"``.

    Raises:
        ToolError: neither has ``train_dataloader`` and ``val_dataloader``.
    """
    if data_cfg is not None:
        frozen = load_config(data_cfg).get('frozen_eval')
        if not _has_frozen_eval(frozen):
            raise ToolError(
                f'--data-cfg {data_cfg!r} has no `frozen_eval = dict('
                'train_dataloader=..., val_dataloader=...)`: add it, or give '
                'a labelled image folder with --data-root FOLDER')
        source = f'the frozen_eval of --data-cfg {data_cfg!r}'
        if cfg.get('frozen_eval') is not None:
            source += f' (it replaces the one of {config_path!r})'
        return frozen, source
    frozen = cfg.get('frozen_eval')
    if not _has_frozen_eval(frozen):
        raise ToolError(
            f'no evaluation data: {config_path!r} has no `frozen_eval = '
            'dict(train_dataloader=..., val_dataloader=...)`; add it to the '
            'config or to a file given with --data-cfg, or give a labelled '
            'image folder with --data-root FOLDER (one sub-folder per class)')
    return frozen, f'the frozen_eval of {config_path!r}'


# --------------------------------------------------------------------------
# --data-root: a labelled image folder
# --------------------------------------------------------------------------
def _count_images(folder: str) -> int:
    count = 0
    for _, _, files in os.walk(folder, followlinks=True):
        count += sum(f.lower().endswith(IMG_EXTENSIONS) for f in files)
    return count


def _class_folders(folder: str) -> List[str]:
    """Sorted class sub-folders of ``folder``, each checked to hold images.

    The sub-folders are listed as ``CustomDataset`` lists them (all of them,
    hidden ones included), since each becomes a class.

    Raises:
        ToolError: no sub-folders, fewer than two, or one without images.
    """
    classes = sorted(
        entry.name for entry in os.scandir(folder) if entry.is_dir())
    if not classes:
        loose = _count_images(folder)
        raise ToolError(
            f'--data-root: {folder!r} has no class sub-folders' +
            (f' ({loose} images lie directly in it)' if loose else '') +
            '; put the images of each class in a sub-folder named after it '
            '(FOLDER/<class>/*.jpg, or FOLDER/train/<class>/... and '
            'FOLDER/val/<class>/...)')
    empty = [c for c in classes if not _count_images(osp.join(folder, c))]
    if empty:
        raise ToolError(
            '--data-root: the class sub-folder(s) ' +
            ', '.join(repr(c) for c in empty) + f' of {folder!r} hold no '
            f'images ({", ".join(IMG_EXTENSIONS)}); every sub-folder is a '
            'class: remove them or add images')
    if len(classes) < 2:
        raise ToolError(f'--data-root: {folder!r} has one class sub-folder '
                        f'({classes[0]!r}); classification needs at least two')
    return classes


def default_img_size(cfg: Config) -> int:
    """The backbone's ``img_size``, else the training crop, else 224."""
    backbone = cfg.get('model', {}).get('backbone', {}) or {}
    size = backbone.get('img_size') if isinstance(backbone, dict) else None
    if size is None:
        dataset = cfg.get('train_dataloader', {}).get('dataset', {}) or {}
        for step in dataset.get('pipeline', []) or []:
            if isinstance(step, dict) and 'RandomResizedCrop' in str(
                    step.get('type', '')):
                size = step.get('scale')
                break
    if isinstance(size, (list, tuple)) and size:
        size = size[0]
    return int(size) if isinstance(size, (int, float)) else 224


def folder_frozen_eval(root: str,
                       img_size: int,
                       batch_size: int = 64,
                       num_workers: int = 2,
                       val_fraction: float = 0.2,
                       seed: int = 0) -> Tuple[dict, str]:
    """A ``frozen_eval`` dict for a labelled ImageNet-style folder.

    Args:
        root (str): ``root/train/<class>/...`` and ``root/val/<class>/...``
            (the same classes in both), or ``root/<class>/...``, split per
            class.
        img_size (int): resize (short edge) and centre-crop size.
        batch_size (int): images per batch.
        num_workers (int): data-loader workers.
        val_fraction (float): share of each class held out when ``root``
            has no ``train/`` and ``val/`` (at least one image per class).
        seed (int): seed of that split.

    Returns:
        tuple[dict, str]: the ``frozen_eval`` dict and its source.

    Raises:
        ToolError: the folder is missing or not laid out as above.
    """
    if not osp.isdir(root):
        raise ToolError(f'--data-root {root!r} does not exist or is not a '
                        'folder')
    pipeline = [
        dict(type='mmpretrain.LoadImageFromFile'),
        dict(
            type='mmpretrain.ResizeEdge',
            scale=img_size,
            edge='short',
            backend='pillow',
            interpolation='bicubic'),
        dict(type='mmpretrain.CenterCrop', crop_size=img_size),
        dict(type='mmpretrain.PackInputs')
    ]

    def loader(folder, **dataset_kwargs):
        return dict(
            batch_size=batch_size,
            num_workers=num_workers,
            dataset=dict(
                type='mmpretrain.CustomDataset',
                data_root=folder,
                pipeline=pipeline,
                **dataset_kwargs))

    train_dir, val_dir = osp.join(root, 'train'), osp.join(root, 'val')
    if osp.isdir(train_dir) or osp.isdir(val_dir):
        if not (osp.isdir(train_dir) and osp.isdir(val_dir)):
            have, lack = ('train', 'val') if osp.isdir(train_dir) else \
                ('val', 'train')
            raise ToolError(
                f'--data-root {root!r} has {have}/ but no {lack}/: give both '
                f'{root}/train/<class>/... and {root}/val/<class>/... (the '
                'same classes), or only class sub-folders, which are split '
                'by --val-fraction')
        train_classes = _class_folders(train_dir)
        val_classes = _class_folders(val_dir)
        if train_classes != val_classes:
            only_train = sorted(set(train_classes) - set(val_classes))
            only_val = sorted(set(val_classes) - set(train_classes))
            raise ToolError(
                f'--data-root {root!r}: train/ and val/ must have the same '
                'class sub-folders (labels are their sorted positions); '
                f'only in train/: {only_train or "none"}, only in val/: '
                f'{only_val or "none"}')
        frozen = dict(
            train_dataloader=loader(train_dir), val_dataloader=loader(val_dir))
        return frozen, f'--data-root {root!r} (train/ and val/)'

    _class_folders(root)
    from mmpretrain.registry import DATASETS
    labels = np.asarray(
        DATASETS.build(
            dict(type='mmpretrain.CustomDataset', data_root=root,
                 pipeline=[])).get_gt_labels())
    rng = np.random.default_rng(seed)
    train_idx: List[int] = []
    val_idx: List[int] = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        if len(members) < 2:
            raise ToolError(
                f'--data-root {root!r}: class {int(label)} has one image; '
                'splitting needs at least two per class (or give train/ and '
                'val/ sub-folders)')
        members = rng.permutation(members)
        num_val = min(
            len(members) - 1, max(1, int(round(len(members) * val_fraction))))
        val_idx += members[:num_val].tolist()
        train_idx += members[num_val:].tolist()
    frozen = dict(
        train_dataloader=loader(root, indices=sorted(train_idx)),
        val_dataloader=loader(root, indices=sorted(val_idx)))
    return frozen, (f'--data-root {root!r} (split per class, '
                    f'--val-fraction {val_fraction}, seed {seed})')


def describe_split(loader) -> dict:
    """Where a built evaluation loader reads from and how much."""
    dataset = loader.dataset
    where = getattr(dataset, 'img_prefix', None) or getattr(
        dataset, 'data_root', None) or ''
    classes = (getattr(dataset, 'metainfo', None) or {}).get('classes')
    info = dict(
        dataset=type(dataset).__name__,
        folder=str(where).rstrip('/\\') or None,
        split=getattr(dataset, 'split', None),
        num_images=len(dataset))
    if classes:
        info['classes'] = [str(c) for c in classes]
    return info


def describe_data(source: str, train_loader, val_loader) -> dict:
    """The data of an evaluation, for the log and ``--out``."""
    return dict(
        source=source,
        train=describe_split(train_loader),
        val=describe_split(val_loader))


def format_data(data: dict) -> str:
    """One log line per split, naming the data set, folder and counts."""
    lines = [f'evaluation data: {data["source"]}']
    for name in ('train', 'val'):
        split = data[name]
        text = f'  {name}: {split["dataset"]}'
        if split.get('folder'):
            text += f' {split["folder"]!r}'
        if split.get('split'):
            text += f' split {split["split"]!r}'
        text += f', {split["num_images"]} images'
        classes = split.get('classes')
        if classes:
            shown = ', '.join(
                classes[:10]) + (f', ... ({len(classes) - 10} more)'
                                 if len(classes) > 10 else '')
            text += f', {len(classes)} classes ({shown})'
        lines.append(text)
    return '\n'.join(lines)


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
