# Copyright (c) mmssl contributors. All rights reserved.
"""Command-line parts shared by the tools that evaluate a pretrained backbone
against its random initialisation (``eval_frozen.py``, ``dense_probe.py``)."""
import argparse
import logging
import os.path as osp
from typing import List, Optional, Tuple

from mmengine.config import Config
from mmengine.logging import MMLogger
from torch import nn

from mmssl.evaluation.protocols import load_backbone_from_checkpoint
from .tool_errors import ToolError

__all__ = ['add_backbone_args', 'backbone_rows', 'load_eval_model']


def add_backbone_args(parser: argparse.ArgumentParser, verb: str) -> None:
    """CONFIG, optional CHECKPOINT and ``--random`` (``verb`` the action)."""
    parser.add_argument('config', help='pretraining config file')
    parser.add_argument(
        'checkpoint', nargs='?', default=None, help='checkpoint file')
    parser.add_argument(
        '--random',
        action='store_true',
        help=f'also (or only) {verb} the randomly initialised backbone')


def backbone_rows(args) -> List[Tuple[str, Optional[str]]]:
    """``('pretrained', CHECKPOINT)`` and / or ``('random', None)``."""
    rows = []
    if args.checkpoint is not None:
        rows.append(('pretrained', args.checkpoint))
    if args.random:
        rows.append(('random', None))
    return rows


def load_eval_model(cfg: Config,
                    checkpoint: Optional[str],
                    device: str = 'cpu') -> nn.Module:
    """Build the model and load the checkpoint's backbone, quietly.

    Raises:
        ToolError: the checkpoint does not exist or does not fit the
            backbone (the message says what was found).
    """
    if checkpoint is not None and '://' not in checkpoint \
            and not osp.isfile(checkpoint):
        raise ToolError(f'checkpoint {checkpoint!r} does not exist')
    # keep mmengine's per-parameter initialisation report out of the output
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        return load_backbone_from_checkpoint(cfg, checkpoint, device=device)
    except ValueError as err:  # the checkpoint does not fit the backbone
        raise ToolError(str(err)) from err
    finally:
        logger.setLevel(level)
