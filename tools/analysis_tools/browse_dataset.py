# Copyright (c) mmssl contributors. All rights reserved.
"""Save what a config's data pipeline gives the model, as one picture.

Usage::

    python tools/analysis_tools/browse_dataset.py CONFIG
        [--split train|val|test] [--num 8] [--indices 0 5 9] [--seed 0]
        [--scale 2] [--channel-order bgr|rgb] [--out browse.png]
        [--cfg-options ...]

One row per sample (``--num`` samples drawn with ``--seed``, or
``--indices``), each view of a multi-view pipeline side by side (SimCLR's
and DenseCL's two crops), the class name (or an image-text pair's caption)
under each view of a labelled sample, ground-truth boxes on detection
samples (Large-UniDet) and the patches of a pipeline mask greyed out, one
tile per mask when there are several (data2vec 2.0's clones). Small
images are enlarged to at least 96 pixels (``--scale`` sets the factor).
The picture goes to ``--out`` (default
``work_dirs/browse/<config>_<split>.png``). Image pipelines only: text and
speech samples are refused with the shape they have.

Example::

    python tools/analysis_tools/browse_dataset.py \\
        configs/simclr/simclr_resnet18-tiny_1xb64-coslr-30e_embedded.py \\
        --num 6
"""
import argparse
import os
import os.path as osp
from typing import List, Optional

import numpy as np
from mmengine.logging import print_log
from mmengine.runner import set_random_seed
from mmengine.utils import ProgressBar

import mmssl  # noqa: F401  (registers mmssl's parts)
from mmssl.engine.runner_utils import (CFG_OPTIONS_HELP, CfgOptionsAction,
                                       ToolError, friendly_errors, load_config,
                                       merge_cfg_options, positive_int,
                                       run_tool)
from mmssl.utils.config import SPLITS, config_dataset
from mmssl.visualization.browse import browse_grid


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Save a picture of the samples a config\'s data '
        'pipeline gives the model (views, labels, boxes, masks)')
    parser.add_argument('config', help='config file')
    parser.add_argument(
        '--split',
        choices=SPLITS,
        default='train',
        help='which loader\'s data set (default: train)')
    parser.add_argument(
        '--num',
        type=positive_int,
        default=8,
        help='samples to show, drawn at random with --seed (default: 8)')
    parser.add_argument(
        '--indices',
        nargs='+',
        type=int,
        default=None,
        help='show these samples instead of --num random ones')
    parser.add_argument(
        '--seed',
        type=int,
        default=0,
        help='seed of the sample choice and of the random transforms')
    parser.add_argument(
        '--scale',
        type=positive_int,
        default=None,
        help='enlarge each image this many times (default: enough for 96 '
        'pixels, 1 for larger images)')
    parser.add_argument(
        '--channel-order',
        choices=('bgr', 'rgb'),
        default='bgr',
        help='channel order of the packed images (default: bgr, what '
        'OpenMMLab\'s image loaders write)')
    parser.add_argument(
        '--out',
        default=None,
        help='picture file (default: work_dirs/browse/<config>_<split>.png)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=CfgOptionsAction,
        help=CFG_OPTIONS_HELP)
    return parser.parse_args(argv)


def choose_indices(length: int, num: int, indices: Optional[List[int]],
                   seed: int) -> List[int]:
    """``indices`` checked against ``length``, else ``num`` distinct ones
    drawn with ``seed`` (all of them, in order, when ``num >= length``)."""
    if length == 0:
        raise ToolError('the data set is empty: check its data_root / '
                        'ann_file in the config')
    if indices is not None:
        bad = [i for i in indices if not -length <= i < length]
        if bad:
            raise ToolError(f'--indices {bad} out of range: the data set has '
                            f'{length} samples (0..{length - 1})')
        return [i % length for i in indices]
    if num >= length:
        return list(range(length))
    rng = np.random.default_rng(seed)
    return sorted(int(i) for i in rng.choice(length, num, replace=False))


def main(argv: Optional[List[str]] = None) -> str:
    args = parse_args(argv)
    cfg = merge_cfg_options(
        load_config(args.config), args.cfg_options, args.config)
    out = args.out or osp.join(
        'work_dirs', 'browse',
        f'{osp.splitext(osp.basename(args.config))[0]}_{args.split}.png')
    with friendly_errors(args.config, cfg):
        try:
            dataset = config_dataset(cfg, args.split)
        except ValueError as err:
            raise ToolError(str(err)) from err
        picked = choose_indices(
            len(dataset), args.num, args.indices, args.seed)
        set_random_seed(args.seed)
        samples = []
        bar = ProgressBar(len(picked))
        for idx in picked:
            samples.append((f'#{idx}', dataset[idx]))
            bar.update()
        print()  # end the progress bar's line
        classes = (getattr(dataset, 'metainfo', None) or {}).get('classes')
        try:
            grid = browse_grid(samples, classes, args.channel_order == 'bgr',
                               args.scale)
        except ValueError as err:
            raise ToolError(f'{args.config} ({args.split}): {err}') from err
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    grid.save(out)
    print_log(
        f'{len(picked)} samples of {type(dataset).__name__} '
        f'({len(dataset)} in the {args.split} split) written to {out}',
        logger='current')
    return out


if __name__ == '__main__':
    run_tool(main)
