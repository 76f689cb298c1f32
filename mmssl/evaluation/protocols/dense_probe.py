# Copyright (c) mmssl contributors. All rights reserved.
"""Frozen dense probe: a per-pixel linear classifier on a frozen backbone.

Fine-tuning results on small dense data sets depend as much on the
fine-tuning recipe as on the backbone. The dense probe holds the backbone
fixed and trains only a 1x1 convolution on its feature maps (every output
level, resized to one grid and concatenated), with the logits upsampled to
the mask resolution: the mIoU it reaches measures how much per-location
class information the features carry, the dense counterpart of the linear
probe of :func:`~mmssl.evaluation.protocols.frozen.evaluate_backbone`.
"""
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import mmcv
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .features import backbone_outputs, num_extra_tokens

__all__ = [
    'dense_feature_maps', 'extract_dense_features', 'load_seg_split',
    'train_dense_probe', 'segmentation_iou', 'dense_probe', 'set_out_indices'
]


def set_out_indices(backbone: nn.Module, indices: Sequence[int]) -> None:
    """Make a built backbone return the outputs ``indices``.

    Set on the built module rather than in the config: pretraining models
    may insist on one output (the last) at build time. Negative indices
    count from the last stage / layer; the container type of the
    backbone's ``out_indices`` (list or tuple) is kept.

    Raises:
        ValueError: the backbone has no ``out_indices``, or an index is out
            of range (the depth is named).
    """
    if not hasattr(backbone, 'out_indices'):
        raise ValueError(f'{type(backbone).__name__} has no out_indices')
    layers = getattr(backbone, 'layers', getattr(backbone, 'res_layers', []))
    depth = len(layers)
    fixed = [i + depth if i < 0 and depth else i for i in indices]
    bad = [i for i in fixed if i < 0 or (depth and i >= depth)]
    if bad:
        raise ValueError(f'{bad} out of range for a backbone of {depth} '
                         'stages / layers')
    backbone.out_indices = type(backbone.out_indices)(fixed) \
        if isinstance(backbone.out_indices, (list, tuple)) else fixed


def dense_feature_maps(backbone: nn.Module, inputs: Tensor) -> List[Tensor]:
    """Every output of a backbone as a (B, C, h, w) map.

    A backbone whose ``forward`` takes ``mask`` runs unmasked
    (``mask=None``). Token outputs (B, L, C) lose their extra tokens
    (``[CLS]``, registers) and are laid out on their square patch grid.

    Args:
        backbone (nn.Module): The feature extractor.
        inputs (Tensor): (B, 3, H, W) normalised images.

    Returns:
        list[Tensor]: One (B, C_i, h_i, w_i) map per backbone output.
    """
    out = backbone_outputs(backbone, inputs)
    if isinstance(out, Tensor):
        out = [out]
    maps = []
    for feat in out:
        while isinstance(feat, (list, tuple)):
            feat = feat[0]
        if feat.dim() == 3:
            tokens = feat[:, num_extra_tokens(backbone):]
            side = int(round(tokens.shape[1]**0.5))
            if side * side != tokens.shape[1]:
                raise ValueError(
                    f'cannot lay {tokens.shape[1]} tokens on a square grid '
                    f'(output of shape {tuple(feat.shape)})')
            feat = tokens.transpose(1, 2).reshape(feat.shape[0], feat.shape[2],
                                                  side, side)
        if feat.dim() != 4:
            raise ValueError('the dense probe needs (B, C, h, w) maps or '
                             f'(B, L, C) tokens, got {tuple(feat.shape)}')
        maps.append(feat)
    return maps


@torch.no_grad()
def extract_dense_features(backbone: nn.Module,
                           images: Tensor,
                           grid: int = 16,
                           batch_size: int = 64) -> Tensor:
    """Concatenated feature maps of every backbone output on one grid.

    Args:
        backbone (nn.Module): The frozen feature extractor (put in eval mode
            here).
        images (Tensor): (N, 3, H, W) normalised images.
        grid (int): Side of the common grid every map is bilinearly resized
            to. Defaults to 16.
        batch_size (int): Images per forward pass. Defaults to 64.

    Returns:
        Tensor: (N, C, grid, grid) features, C the sum of the output widths.
    """
    backbone.eval()
    chunks = []
    for start in range(0, len(images), batch_size):
        maps = dense_feature_maps(backbone, images[start:start + batch_size])
        chunks.append(
            torch.cat([
                F.interpolate(
                    m.float(), (grid, grid),
                    mode='bilinear',
                    align_corners=False) for m in maps
            ], 1))
    return torch.cat(chunks)


def load_seg_split(
        data_root: str,
        split: str,
        limit: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Images and label maps of an mmseg-style split of the embedded data.

    Args:
        data_root (str): Folder with ``img_dir/<split>`` and
            ``ann_dir/<split>`` (same file names).
        split (str): ``'train'`` or ``'val'``.
        limit (int, optional): Only the first ``limit`` files (sorted).

    Returns:
        tuple[np.ndarray, np.ndarray]: (N, H, W, 3) uint8 BGR images (as
        mmcv loads them) and (N, H, W) uint8 labels.
    """
    img_dir = osp.join(data_root, 'img_dir', split)
    ann_dir = osp.join(data_root, 'ann_dir', split)
    for d in (img_dir, ann_dir):
        if not osp.isdir(d):
            raise FileNotFoundError(
                f'{d} does not exist: --data-root must hold img_dir/{split} '
                f'and ann_dir/{split} (the embedded data set\'s seg/ folder)')
    names = sorted(os.listdir(img_dir))[:limit]
    if not names:
        raise FileNotFoundError(f'{img_dir} holds no images')
    imgs = np.stack([mmcv.imread(osp.join(img_dir, n)) for n in names])
    labels = []
    for n in names:
        path = osp.join(ann_dir, osp.splitext(n)[0] + '.png')
        if not osp.isfile(path):
            raise FileNotFoundError(f'{path}: no label map for {n}')
        labels.append(mmcv.imread(path, flag='unchanged'))
    return imgs, np.stack(labels)


def segmentation_iou(pred: Tensor,
                     target: Tensor,
                     num_classes: int,
                     ignore_index: int = 255) -> Dict[str, object]:
    """mmseg's ``IoUMetric`` on whole tensors: per-class IoU, mIoU, aAcc.

    The areas and metrics come from mmseg's own
    ``IoUMetric.intersect_and_union`` / ``total_area_to_metrics``; a class
    that appears neither in the prediction nor in the target has no IoU
    (NaN) and is left out of the mean, as in ``IoUMetric.compute_metrics``.

    Args:
        pred (Tensor): (N, H, W) predicted class indices.
        target (Tensor): (N, H, W) labels; ``ignore_index`` is skipped.
        num_classes (int): Number of classes.
        ignore_index (int): Label to skip. Defaults to 255.

    Returns:
        dict: ``mIoU`` and ``aAcc`` in percent, ``IoU`` per class (list,
        NaN where undefined).
    """
    from mmseg.evaluation.metrics import IoUMetric
    areas = IoUMetric.intersect_and_union(pred.long(), target.long(),
                                          num_classes, ignore_index)
    metrics = IoUMetric.total_area_to_metrics(*areas, metrics=['mIoU'])
    iou = np.asarray(metrics['IoU'], dtype=np.float64)
    return dict(
        mIoU=float(np.nanmean(iou) * 100),
        aAcc=float(metrics['aAcc'] * 100),
        IoU=[float(v * 100) for v in iou])


def train_dense_probe(feats: Tensor,
                      labels: Tensor,
                      num_classes: int,
                      iters: int = 300,
                      lr: float = 0.01,
                      weight_decay: float = 1e-4,
                      batch_size: int = 64,
                      seed: int = 0) -> nn.Module:
    """Train a 1x1 convolution on frozen features against label maps.

    The features are standardised per channel with the training set's
    statistics (kept in the returned module), the logits are bilinearly
    upsampled to the label resolution, and the loss is cross-entropy
    (label 255 ignored), minimised with Adam.

    Args:
        feats (Tensor): (N, C, g, g) training features.
        labels (Tensor): (N, H, W) training labels.
        num_classes (int): Number of classes.
        iters (int): Adam steps. Defaults to 300.
        lr (float): Adam learning rate. Defaults to 0.01.
        weight_decay (float): L2 on the weights. Defaults to 1e-4.
        batch_size (int): Images per step. Defaults to 64.
        seed (int): Seed of the initialisation and batch order.

    Returns:
        nn.Module: Maps (B, C, g, g) features to (B, num_classes, g, g)
        logits.
    """
    gen = torch.Generator().manual_seed(seed)
    mean = feats.mean((0, 2, 3), keepdim=True)
    std = feats.std((0, 2, 3), keepdim=True).clamp(min=1e-6)
    conv = nn.Conv2d(feats.shape[1], num_classes, 1)
    with torch.no_grad():
        bound = 1 / feats.shape[1]**0.5
        conv.weight.copy_(
            (torch.rand(conv.weight.shape, generator=gen) * 2 - 1) * bound)
        conv.bias.zero_()
    probe = _Probe(conv, mean, std)
    optim = torch.optim.Adam(
        conv.parameters(), lr=lr, weight_decay=weight_decay)
    labels = labels.long()
    for _ in range(iters):
        idx = torch.randint(len(feats), (batch_size, ), generator=gen)
        logits = F.interpolate(
            probe(feats[idx]),
            labels.shape[-2:],
            mode='bilinear',
            align_corners=False)
        loss = F.cross_entropy(logits, labels[idx], ignore_index=255)
        optim.zero_grad()
        loss.backward()
        optim.step()
    return probe.eval()


class _Probe(nn.Module):

    def __init__(self, conv: nn.Conv2d, mean: Tensor, std: Tensor):
        super().__init__()
        self.conv = conv
        self.register_buffer('mean', mean)
        self.register_buffer('std', std)

    def forward(self, feats: Tensor) -> Tensor:
        return self.conv((feats - self.mean) / self.std)


@torch.no_grad()
def predict_dense(probe: nn.Module,
                  feats: Tensor,
                  size: Sequence[int],
                  batch_size: int = 256) -> Tensor:
    """(N, H, W) class predictions of a trained probe."""
    preds = []
    for start in range(0, len(feats), batch_size):
        logits = F.interpolate(
            probe(feats[start:start + batch_size]),
            tuple(size),
            mode='bilinear',
            align_corners=False)
        preds.append(logits.argmax(1))
    return torch.cat(preds)


def dense_probe(backbone: nn.Module,
                train: Tuple[Tensor, Tensor],
                val: Tuple[Tensor, Tensor],
                num_classes: int,
                grid: int = 16,
                iters: int = 300,
                lr: float = 0.01,
                weight_decay: float = 1e-4,
                seed: int = 0,
                keep_predictions: int = 0) -> Dict[str, object]:
    """Frozen dense probe of a backbone: train on ``train``, score ``val``.

    Args:
        backbone (nn.Module): The frozen feature extractor.
        train (tuple[Tensor, Tensor]): (N, 3, H, W) normalised images and
            (N, H, W) labels.
        val (tuple[Tensor, Tensor]): The same for evaluation.
        num_classes (int): Number of classes (background included).
        grid (int): Feature grid side. Defaults to 16.
        iters, lr, weight_decay, seed: See :func:`train_dense_probe`.
        keep_predictions (int): Also return the (n, H, W) predictions of the
            first n validation images under ``'predictions'``. Defaults to 0.

    Returns:
        dict: :func:`segmentation_iou` of the validation predictions, plus
        ``train_mIoU`` and ``feature_dim``.
    """
    train_feats = extract_dense_features(backbone, train[0], grid)
    val_feats = extract_dense_features(backbone, val[0], grid)
    probe = train_dense_probe(
        train_feats,
        train[1],
        num_classes,
        iters=iters,
        lr=lr,
        weight_decay=weight_decay,
        seed=seed)
    val_pred = predict_dense(probe, val_feats, val[1].shape[-2:])
    result = segmentation_iou(val_pred, val[1], num_classes)
    result['train_mIoU'] = segmentation_iou(
        predict_dense(probe, train_feats, train[1].shape[-2:]), train[1],
        num_classes)['mIoU']
    result['feature_dim'] = int(train_feats.shape[1])
    if keep_predictions:
        result['predictions'] = val_pred[:keep_predictions]
    return result
