# Copyright (c) mmssl contributors. All rights reserved.
"""Frozen-feature extraction from pretraining models and bare backbones.

Used by the frozen-feature protocols (kNN, linear probe, finetune, dense
probe) of this package, ``mmssl.FrozenEvalHook`` and the evaluation tools.
"""
import inspect
from typing import Optional, Tuple, Union

import torch
import torch.nn as nn
from mmengine.model import is_model_wrapper
from mmengine.utils import ProgressBar
from torch import Tensor
from torch.utils.data import DataLoader

from mmssl.utils.validation import check_choice

__all__ = [
    'POOL_MODES', 'get_backbone', 'get_data_preprocessor', 'num_extra_tokens',
    'pool_features', 'forward_backbone', 'backbone_outputs',
    'preprocess_images', 'extract_features'
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
    check_choice(pool, 'pool', choices=POOL_MODES)
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
