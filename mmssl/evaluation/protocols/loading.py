# Copyright (c) mmssl contributors. All rights reserved.
"""What an evaluation reads: the model with a checkpoint's backbone, the
evaluation data loaders and the number of classes."""
import copy
from typing import Optional, Union

import torch
import torch.nn as nn
from mmengine.config import Config, ConfigDict
from mmengine.logging import print_log
from mmengine.registry import DATASETS, MODELS
from mmengine.runner import Runner
from mmengine.runner.checkpoint import _load_checkpoint
from torch import Tensor
from torch.utils.data import DataLoader, SequentialSampler

from .features import get_backbone

__all__ = [
    'build_eval_dataloader', 'infer_num_classes',
    'load_backbone_from_checkpoint'
]


def build_eval_dataloader(dataloader: Union[DataLoader, dict],
                          seed: int = 0) -> DataLoader:
    """Build a dataloader that reads a data set once, in order.

    The data set is built from ``dataloader['dataset']`` in the current
    default scope. Whatever ``sampler`` the config names is replaced by a
    sequential, non-distributed one: frozen evaluation reads every sample
    exactly once on one process, so the result does not depend on the world
    size. ``collate_fn`` defaults to ``default_collate`` (stacked images, as
    mmpretrain's self-supervised data preprocessors expect).

    Args:
        dataloader (DataLoader | dict): A built dataloader (returned as it
            is) or an mmengine dataloader config (``batch_size``,
            ``num_workers``, ``dataset``, ...).
        seed (int): Seed of the workers and of the loader's own generator,
            so building and iterating it leaves the global RNG untouched.
            Defaults to 0.

    Returns:
        DataLoader: The built dataloader.
    """
    if isinstance(dataloader, DataLoader):
        return dataloader
    cfg = dict(dataloader)
    dataset = cfg.pop('dataset')
    cfg = copy.deepcopy(cfg)
    if isinstance(dataset, dict):
        dataset = DATASETS.build(copy.deepcopy(dataset))
        if hasattr(dataset, 'full_init'):
            dataset.full_init()
    cfg['dataset'] = dataset
    cfg['sampler'] = SequentialSampler(dataset)
    cfg.pop('batch_sampler', None)
    cfg.setdefault('collate_fn', dict(type='default_collate'))
    cfg.setdefault('generator', torch.Generator().manual_seed(seed))
    return Runner.build_dataloader(cfg, seed=seed)


def infer_num_classes(*loaders_and_labels) -> int:
    """Number of classes of an evaluation.

    Uses ``len(dataset.metainfo['classes'])`` of the first dataloader whose
    data set names its classes, else ``max(label) + 1`` over the label
    tensors given.

    Args:
        *loaders_and_labels: Dataloaders and/or (N, ) label tensors.

    Returns:
        int: Number of classes.
    """
    largest = -1
    for item in loaders_and_labels:
        if isinstance(item, DataLoader):
            metainfo = getattr(item.dataset, 'metainfo', None) or {}
            classes = metainfo.get('classes')
            if classes:
                return len(classes)
        elif isinstance(item, Tensor) and item.numel():
            largest = max(largest, int(item.max()))
    if largest < 0:
        raise ValueError('cannot infer the number of classes')
    return largest + 1


def load_backbone_from_checkpoint(cfg: Union[Config, dict, str],
                                  checkpoint: Optional[str] = None,
                                  device: Union[str, torch.device] = 'cpu',
                                  strict: bool = False) -> nn.Module:
    """Build ``cfg.model`` and load a checkpoint's backbone weights into it.

    The checkpoint may be an mmengine training checkpoint or any state dict
    whose keys start with ``backbone.`` (only those are loaded: necks,
    heads, decoders and teachers are not needed to evaluate features), or a
    backbone-only state dict. A checkpoint that matches none of the
    backbone's keys raises, instead of silently leaving random weights.

    Args:
        cfg (Config | dict | str): A config (or its path) with a ``model``
            key, built in the current default scope.
        checkpoint (str, optional): Path or URL; None keeps the random
            initialisation (after ``init_weights``).
        device (str | torch.device): Where the model goes. Defaults to
            ``'cpu'``.
        strict (bool): Raise when some backbone weights are missing from
            the checkpoint. Defaults to False (they are reported).

    Returns:
        nn.Module: The whole model (so its data preprocessor comes along), in
        eval mode; its ``backbone`` holds the checkpoint's weights.
    """
    if isinstance(cfg, str):
        cfg = Config.fromfile(cfg)
    model_cfg = cfg['model'] if isinstance(cfg, (Config, ConfigDict, dict)) \
        and 'model' in cfg else cfg
    model = MODELS.build(copy.deepcopy(model_cfg))
    if hasattr(model, 'init_weights'):
        model.init_weights()
    if checkpoint is not None:
        ckpt = _load_checkpoint(checkpoint, map_location='cpu')
        state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) \
            else ckpt
        state = {
            k[len('module.'):] if k.startswith('module.') else k: v
            for k, v in state.items()
        }
        backbone = get_backbone(model)
        if backbone is not model:
            prefixed = {
                k[len('backbone.'):]: v
                for k, v in state.items() if k.startswith('backbone.')
            }
            state = prefixed or state
        expected = backbone.state_dict()
        matched = [k for k in expected if k in state]
        if not matched:
            raise ValueError(f'{checkpoint} holds none of the backbone '
                             f'weights (e.g. {next(iter(expected), None)})')
        missing = sorted(set(expected) - set(state))
        if missing and strict:
            raise ValueError(f'{checkpoint} lacks backbone weights: '
                             f'{missing[:10]}')
        shapes = [k for k in matched if state[k].shape != expected[k].shape]
        if shapes:
            raise ValueError(f'{checkpoint} has backbone weights of another '
                             f'shape: {shapes[:10]}')
        result = backbone.load_state_dict({k: state[k]
                                           for k in matched},
                                          strict=False)
        if result.missing_keys:
            print_log(
                f'backbone weights missing from {checkpoint}: '
                f'{result.missing_keys}',
                logger='current')
    return model.to(device).eval()
