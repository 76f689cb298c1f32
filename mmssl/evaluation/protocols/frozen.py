# Copyright (c) mmssl contributors. All rights reserved.
"""One call that runs the frozen-feature protocols on one model."""
from typing import Dict, Optional, Sequence, Union

import torch
import torch.nn as nn
from torch.utils.data import DataLoader

from ..functional.health import representation_health
from ..functional.knn import knn_accuracy
from ..functional.linear_probe import linear_probe
from .features import extract_features
from .finetune import finetune_backbone
from .loading import infer_num_classes

__all__ = ['PROTOCOLS', 'evaluate_backbone']

PROTOCOLS = ('knn', 'linear', 'finetune')


def evaluate_backbone(model: nn.Module,
                      train_loader: DataLoader,
                      val_loader: DataLoader,
                      protocols: Sequence[str] = ('knn', 'linear'),
                      num_classes: Optional[int] = None,
                      k: int = 20,
                      temperature: float = 0.07,
                      pool: str = 'auto',
                      linear_cfg: Optional[dict] = None,
                      finetune_cfg: Optional[dict] = None,
                      seed: int = 0,
                      device: Optional[Union[str, torch.device]] = None,
                      progress: bool = True) -> Dict[str, float]:
    """Evaluate a backbone's features with kNN, linear probe and finetune.

    Features of both sets are extracted once (see
    :func:`~mmssl.evaluation.protocols.features.extract_features`); the
    health numbers are always computed, on the training-set features.

    Args:
        model (nn.Module): An mmengine model with a ``backbone`` or a bare
            backbone, possibly wrapped.
        train_loader (DataLoader): Labelled training data, read in order.
        val_loader (DataLoader): Labelled test data, read in order.
        protocols (Sequence[str]): Any of ``'knn'``, ``'linear'``,
            ``'finetune'``. Defaults to ``('knn', 'linear')``.
        num_classes (int, optional): Number of classes; None infers it (see
            :func:`~mmssl.evaluation.protocols.loading.infer_num_classes`).
        k (int): kNN neighbours. Defaults to 20.
        temperature (float): kNN vote temperature. Defaults to 0.07.
        pool (str): Feature pooling. Defaults to ``'auto'``.
        linear_cfg (dict, optional): Keyword arguments of
            :func:`mmssl.evaluation.functional.linear_probe`.
        finetune_cfg (dict, optional): Keyword arguments of
            :func:`~mmssl.evaluation.protocols.finetune.finetune_backbone`
            (``epochs``, ``lr``, ``weight_decay``).
        seed (int): Seed of the finetune (the kNN and the L-BFGS linear probe
            are deterministic). Defaults to 0.
        device (str | torch.device, optional): Device of the model; None
            keeps it where it is.
        progress (bool): Show progress bars. Defaults to True.

    Returns:
        dict[str, float]: ``knn_top1``, ``linear_top1`` (and
        ``linear_top5`` when there are >= 5 classes), ``finetune_top1`` for
        the protocols run, plus ``std_mean``, ``std_min``,
        ``effective_rank``, ``rank_ratio`` and ``num_classes``.
    """
    unknown = set(protocols) - set(PROTOCOLS)
    if unknown:
        raise ValueError(f'unknown protocols {sorted(unknown)}; choose from '
                         f'{PROTOCOLS}')
    train_feats, train_labels = extract_features(
        model, train_loader, pool=pool, device=device, progress=progress)
    val_feats, val_labels = extract_features(
        model, val_loader, pool=pool, device=device, progress=progress)
    if num_classes is None:
        num_classes = infer_num_classes(train_loader, train_labels, val_labels)
    results: Dict[str, float] = {}
    if 'knn' in protocols:
        results['knn_top1'] = knn_accuracy(train_feats, train_labels,
                                           val_feats, val_labels, num_classes,
                                           k, temperature)
    if 'linear' in protocols:
        probe = linear_probe(train_feats, train_labels, val_feats, val_labels,
                             num_classes, **(linear_cfg or {}))
        results['linear_top1'] = probe['top1']
        if 'top5' in probe:
            results['linear_top5'] = probe['top5']
    if 'finetune' in protocols:
        tuned = finetune_backbone(
            model,
            train_loader,
            val_loader,
            num_classes,
            pool=pool,
            seed=seed,
            device=device,
            **(finetune_cfg or {}))
        results['finetune_top1'] = tuned['top1']
    results.update(representation_health(train_feats))
    results['num_classes'] = num_classes
    return results
