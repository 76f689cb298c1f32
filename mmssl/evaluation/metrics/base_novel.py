# Copyright (c) mmssl contributors. All rights reserved.
"""Base / novel accuracy and their harmonic mean (CoCoOp's protocol)."""
import math
from typing import List, Optional, Sequence

import torch
from mmengine.evaluator import BaseMetric

from mmssl.registry import METRICS

__all__ = ['BaseNovelAccuracy', 'harmonic_mean', 'base_novel_accuracy']


def harmonic_mean(base: float, novel: float) -> float:
    """``H = 2 B N / (B + N)`` (0 when both are 0, nan when either is)."""
    return 0.0 if base + novel == 0 else 2 * base * novel / (base + novel)


def base_novel_accuracy(scores: torch.Tensor, labels: torch.Tensor,
                        num_base: int) -> dict:
    """Accuracy of base images among base names, of novel among novel.

    Args:
        scores (torch.Tensor): ``(N, K)`` scores over all K classes, base
            classes first (columns ``0..num_base-1``).
        labels (torch.Tensor): ``(N,)`` labels in ``0..K-1``.
        num_base (int): number of base classes.

    Returns:
        dict: ``base``, ``novel``, ``hm`` (percent; ``nan`` for a part with
        no images) and ``num_base_images``, ``num_novel_images``.
    """
    labels = labels.view(-1)
    is_base = labels < num_base
    out = dict(
        num_base_images=int(is_base.sum()),
        num_novel_images=int((~is_base).sum()))
    base = novel = float('nan')
    if is_base.any():
        pred = scores[is_base][:, :num_base].argmax(1)
        base = (pred == labels[is_base]).float().mean().item() * 100
    if (~is_base).any():
        pred = scores[~is_base][:, num_base:].argmax(1) + num_base
        novel = (pred == labels[~is_base]).float().mean().item() * 100
    # a nan part (no images) makes the harmonic mean nan
    out.update(base=base, novel=novel, hm=harmonic_mean(base, novel))
    return out


@METRICS.register_module()
class BaseNovelAccuracy(BaseMetric):
    """Base accuracy, novel accuracy and their harmonic mean.

    The model scores each test image against *all* class names (base
    first), e.g. :class:`mmssl.CoOp`; a base image counts as right when its
    class has the top score among the base columns, a novel image among the
    novel columns — the same as testing base images with the base names
    and novel images with the novel names.

    Args:
        num_base (int, optional): base classes; default ``ceil(K / 2)``.
        collect_device (str): device for collecting results.
        prefix (str, optional): metric name prefix. Defaults to
            ``'base_novel'``.
    """

    default_prefix = 'base_novel'

    def __init__(self,
                 num_base: Optional[int] = None,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.num_base = num_base

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for ds in data_samples:
            label = torch.as_tensor(ds['gt_label'])
            if label.numel() != 1:
                raise ValueError(
                    'BaseNovelAccuracy: gt_label must be one class index '
                    f'per image, got shape {tuple(label.shape)}; base / '
                    'novel accuracy is single-label (use a single-label '
                    'data set such as mmssl.CoOpSplitDataset)')
            self.results.append(
                dict(
                    score=ds['pred_score'].detach().cpu(),
                    label=int(label.item())))

    def compute_metrics(self, results: List[dict]) -> dict:
        scores = torch.stack([r['score'] for r in results])
        labels = torch.tensor([r['label'] for r in results])
        num_base = self.num_base or math.ceil(scores.shape[1] / 2)
        out = base_novel_accuracy(scores, labels, num_base)
        return dict(base=out['base'], novel=out['novel'], hm=out['hm'])
