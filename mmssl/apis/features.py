# Copyright (c) mmssl contributors. All rights reserved.
"""Frozen-feature extraction from pretraining models and bare backbones.

Used by the frozen-feature evaluation (kNN, linear probe, finetune) in
``tools/analysis_tools/eval_frozen.py`` and by ``mmssl.FrozenEvalHook``.
"""
import copy
import inspect
from typing import Optional, Tuple, Union

import torch
import torch.nn as nn
from mmengine.config import Config, ConfigDict
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.registry import DATASETS, MODELS
from mmengine.runner import Runner
from mmengine.runner.checkpoint import _load_checkpoint
from mmengine.utils import ProgressBar
from torch import Tensor
from torch.utils.data import DataLoader, SequentialSampler

__all__ = [
    'POOL_MODES', 'get_backbone', 'get_data_preprocessor', 'num_extra_tokens',
    'pool_features', 'forward_backbone', 'extract_features',
    'build_eval_dataloader', 'infer_num_classes',
    'load_backbone_from_checkpoint'
]

POOL_MODES = ('auto', 'cls', 'mean')


def get_backbone(model: nn.Module) -> nn.Module:
    """The feature extractor of a model: ``model.backbone`` or the model.

    Args:
        model (nn.Module): A (possibly wrapped) mmengine model with a
            ``backbone`` (self-supervisor, ``ImageClassifier``) or a bare
            backbone.

    Returns:
        nn.Module: The backbone.
    """
    if is_model_wrapper(model):
        model = model.module
    backbone = getattr(model, 'backbone', None)
    return backbone if isinstance(backbone, nn.Module) else model


def get_data_preprocessor(model: nn.Module) -> Optional[nn.Module]:
    """The model's ``data_preprocessor``, or None for a bare backbone."""
    if is_model_wrapper(model):
        model = model.module
    preprocessor = getattr(model, 'data_preprocessor', None)
    return preprocessor if isinstance(preprocessor, nn.Module) else None


def num_extra_tokens(backbone: nn.Module) -> int:
    """Number of leading non-patch tokens (CLS, distillation) of a ViT.

    Reads ``backbone.num_extra_tokens`` (mmpretrain ViTs) and falls back to 1
    when the backbone has a ``cls_token`` and 0 otherwise.
    """
    extra = getattr(backbone, 'num_extra_tokens', None)
    if isinstance(extra, int):
        return extra
    return 1 if getattr(backbone, 'cls_token', None) is not None else 0


def pool_features(out: Tensor,
                  pool: str = 'auto',
                  extra_tokens: int = 0) -> Tensor:
    """Pool one backbone output to one vector per image.

    Args:
        out (Tensor): (B, L, C) tokens, (B, C, H, W) feature map or (B, C)
            vectors.
        pool (str): For tokens: ``'cls'`` takes token 0, ``'mean'`` averages
            the patch tokens ``out[:, extra_tokens:]``, ``'auto'`` is
            ``'mean'``. Feature maps are globally averaged and vectors kept
            as they are, whatever the mode. Defaults to ``'auto'``.
        extra_tokens (int): Number of leading non-patch tokens in ``out``.

    Returns:
        Tensor: (B, C) pooled features.
    """
    if pool not in POOL_MODES:
        raise ValueError(f'pool must be one of {POOL_MODES}, got {pool!r}')
    if out.dim() == 2:
        return out
    if out.dim() == 4:
        return out.mean(dim=(2, 3))
    if out.dim() != 3:
        raise ValueError('cannot pool a backbone output of shape '
                         f'{tuple(out.shape)}')
    if pool == 'cls':
        if extra_tokens < 1:
            raise ValueError("pool='cls' needs a backbone with a CLS token")
        return out[:, 0]
    if out.shape[1] <= extra_tokens:
        raise ValueError(f'no patch tokens to average: {out.shape[1]} tokens, '
                         f'{extra_tokens} of them extra')
    return out[:, extra_tokens:].mean(dim=1)


def _accepts_mask(backbone: nn.Module) -> bool:
    try:
        return 'mask' in inspect.signature(backbone.forward).parameters
    except (TypeError, ValueError):
        return False


def forward_backbone(backbone: nn.Module,
                     inputs: Tensor,
                     pool: str = 'auto') -> Tensor:
    """Run a backbone without masking and pool its last output.

    A backbone whose ``forward`` takes ``mask`` (mmpretrain's ``MAEViT``,
    mmssl's masked encoders) gets ``mask=None``, its unmasked path;
    ``mask=False`` would still mask in ``MAEViT``.

    Args:
        backbone (nn.Module): The feature extractor.
        inputs (Tensor): (B, 3, H, W) preprocessed images (or whatever the
            backbone reads).
        pool (str): See :func:`pool_features`. Defaults to ``'auto'``.

    Returns:
        Tensor: (B, C) pooled features of the last output.
    """
    out = backbone_outputs(backbone, inputs)
    while isinstance(out, (list, tuple)):
        out = out[-1]
    return pool_features(out, pool, num_extra_tokens(backbone))


def backbone_outputs(backbone: nn.Module, inputs: Tensor):
    """Run a backbone on its unmasked path; its outputs as it returns them.

    A backbone whose ``forward`` takes ``mask`` gets ``mask=None``.
    """
    if _accepts_mask(backbone):
        return backbone(inputs, mask=None)
    return backbone(inputs)


def preprocess_images(model: nn.Module, images: Tensor) -> Tensor:
    """(N, 3, H, W) uint8 images through the model's data preprocessor.

    The images are one batch of one view, as a data loader would give
    them (e.g. BGR from ``LoadImageFromFile``); a model without a
    preprocessor gets them as float.

    Returns:
        Tensor: (N, 3, H, W) model inputs.
    """
    preprocessor = get_data_preprocessor(model)
    if preprocessor is None:
        return images.float()
    with torch.no_grad():
        out = preprocessor(dict(inputs=[images], data_samples=None), False)
    return _batch_inputs(out['inputs'])


def _labels_of(data_samples) -> Tensor:
    if isinstance(data_samples, Tensor):
        return data_samples.detach().long().view(-1).cpu()
    labels = []
    for sample in data_samples:
        label = sample.gt_label if hasattr(sample, 'gt_label') else sample
        label = torch.as_tensor(label).view(-1)
        if label.numel() != 1:
            raise ValueError('frozen evaluation needs one label per image, '
                             f'got gt_label={label.tolist()}')
        labels.append(label.long().cpu())
    return torch.cat(labels) if labels else torch.zeros(0, dtype=torch.long)


def _batch_inputs(inputs) -> Tensor:
    # A list of (B, C, H, W) tensors holds several views: keep the first. A
    # list of (C, H, W) tensors is a pseudo-collated batch: stack it.
    if isinstance(inputs, (list, tuple)):
        if inputs[0].dim() == 4:
            return inputs[0]
        return torch.stack(list(inputs))
    return inputs


def _training_flags(*modules: Optional[nn.Module]) -> list:
    # The train/eval flag of every submodule, to restore exactly (a frozen
    # teacher or norm layer kept in eval mode stays so).
    return [(m, m.training) for module in modules if module is not None
            for m in module.modules()]


def _model_device(model: nn.Module) -> torch.device:
    for param in model.parameters():
        return param.device
    return torch.device('cpu')


@torch.no_grad()
def extract_features(model: nn.Module,
                     dataloader: DataLoader,
                     pool: str = 'auto',
                     device: Optional[Union[str, torch.device]] = None,
                     data_preprocessor: Optional[nn.Module] = None,
                     progress: bool = True) -> Tuple[Tensor, Tensor]:
    """Frozen features and labels of every sample of a dataloader.

    Each batch goes through the data preprocessor (the model's own unless
    ``data_preprocessor`` is given; a bare backbone without one reads the
    stacked ``inputs``), then the backbone without masking, in eval mode
    under ``no_grad``. The train/eval flag of every submodule is restored
    afterwards.

    Args:
        model (nn.Module): An mmengine model with a ``backbone`` (e.g. the
            ``MAE`` self-supervisor or an ``ImageClassifier``, possibly
            wrapped) or a bare backbone.
        dataloader (DataLoader): Yields dicts with ``inputs`` and
            ``data_samples`` whose ``gt_label`` holds one class index (or a
            tensor of labels). With multi-view inputs the first view is used.
        pool (str): ``'auto'``, ``'cls'`` or ``'mean'``; see
            :func:`pool_features`. Defaults to ``'auto'``.
        device (str | torch.device, optional): Moves the model there first;
            None keeps the model where it is. Defaults to None.
        data_preprocessor (nn.Module, optional): Overrides the model's.
        progress (bool): Show an mmengine progress bar. Defaults to True.

    Returns:
        tuple[Tensor, Tensor]: (N, C) float32 features and (N, ) int64
        labels, both on the CPU, in the dataloader's order.
    """
    if is_model_wrapper(model):
        model = model.module
    if device is not None:
        model.to(device)
    backbone = get_backbone(model)
    preprocessor = data_preprocessor or get_data_preprocessor(model)
    run_device = _model_device(backbone)
    modes = _training_flags(model, preprocessor)
    model.eval()
    if preprocessor is not None:
        preprocessor.eval()
    bar = ProgressBar(len(dataloader.dataset)) if progress else None
    feats, labels = [], []
    try:
        for data in dataloader:
            if preprocessor is not None:
                data = preprocessor(data, False)
            inputs = _batch_inputs(data['inputs'])
            inputs = inputs.to(run_device)
            feat = forward_backbone(backbone, inputs, pool)
            feats.append(feat.float().cpu())
            labels.append(_labels_of(data['data_samples']))
            if bar is not None:
                bar.update(feat.shape[0])
    finally:
        for module, training in modes:
            module.training = training
    if bar is not None:
        bar.file.write('\n')
    if not feats:
        raise ValueError('the dataloader yielded no data')
    feats_t, labels_t = torch.cat(feats), torch.cat(labels)
    if labels_t.shape[0] != feats_t.shape[0]:
        raise ValueError(f'{feats_t.shape[0]} features but '
                         f'{labels_t.shape[0]} labels')
    return feats_t, labels_t


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
