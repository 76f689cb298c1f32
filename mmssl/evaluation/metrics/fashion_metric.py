# Copyright (c) mmssl contributors. All rights reserved.
"""Scores of DiffFashion transfers on garment / reference pairs."""
import math
from typing import Dict, List, Optional, Sequence

import torch
from mmengine.evaluator import BaseMetric

from mmssl.registry import METRICS
from ..functional.fashion import mask_score_auroc, pixel_metrics

__all__ = ['FashionTransferMetric', 'mask_score_auroc']

_VIT_KEYS = ('structure_selfsim', 'structure_selfsim_fg', 'appearance_cls')


def _as_runs(x: torch.Tensor, channels: int) -> torch.Tensor:
    """(C, H, W) or (K, C, H, W) -> (K, C, H, W)."""
    x = torch.as_tensor(x).float().cpu()
    if x.dim() == 3:
        x = x[None]
    if x.dim() != 4 or x.shape[1] != channels:
        raise ValueError(f'expected ({channels}, H, W) or (K, {channels}, '
                         f'H, W), got {tuple(x.shape)}')
    return x


@METRICS.register_module()
class FashionTransferMetric(BaseMetric):
    """Mask quality, background preservation, structure and appearance.

    Per pair (and per run, averaged, when the editor made one result per
    label set):

    * ``mask_iou``: intersection over union of the predicted mask with the
      true garment silhouette (``gt_mask``); ``mask_fraction``: its area;
      ``mask_score_auroc``: when the model gives the score map the mask
      was thresholded from (``pred_mask_score``), how well it ranks the
      silhouette's pixels above the background's
      (:func:`mmssl.evaluation.functional.mask_score_auroc`; 0.5 = no
      information);
    * ``background_l1``: mean absolute difference between the result and
      the garment outside the true silhouette ([0, 1] units; 0 = the
      background is kept exactly);
    * ``structure_selfsim`` / ``structure_selfsim_fg`` (key self-similarity
      MSE to the garment over all ViT tokens / over the patches inside the
      true silhouette) and ``appearance_cls`` ([CLS] MSE to the
      reference): computed by the model with its guidance ViT through
      :func:`mmssl.evaluation.functional.fashion_metrics` and read from
      ``pred_scores``; absent when the model gives none.

    The pixel scores come from
    :func:`mmssl.evaluation.functional.pixel_metrics`; the garment is read
    from the batch inputs (``inputs[i][0]``, (3, H, W) in [-1, 1], as
    packed by :class:`mmssl.datasets.PackFashionPair`).
    Reported values are means over the pairs (NaNs skipped).

    Args:
        collect_device (str): device for collecting results.
        prefix (str, optional): metric name prefix. Defaults to
            ``'fashion'``.
    """

    default_prefix = 'fashion'

    def __init__(self,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        inputs = data_batch['inputs']
        for i, ds in enumerate(data_samples):
            for key in ('pred_img', 'pred_mask', 'gt_mask'):
                if ds.get(key) is None:
                    raise KeyError(
                        f'FashionTransferMetric needs {key!r} in each data '
                        'sample (pred_* from mmssl.DiffFashionEditor, '
                        'gt_mask from mmssl.FashionPairDataset)')
            garment = torch.as_tensor(inputs[i][0]).float().cpu()[None]
            results = _as_runs(ds['pred_img'], 3)
            masks = _as_runs(ds['pred_mask'], 1)
            gt = _as_runs(ds['gt_mask'], 1)
            runs = [
                pixel_metrics(r[None], garment, m[None], gt)
                for r, m in zip(results, masks)
            ]
            row = {
                k: sum(r[k] for r in runs) / len(runs)
                for k in ('mask_iou', 'mask_fraction', 'background_l1')
            }
            row['empty_mask'] = float(bool(ds.get('empty_mask', False)))
            if ds.get('pred_mask_score') is not None:
                row['mask_score_auroc'] = mask_score_auroc(
                    ds['pred_mask_score'], gt[0])
            row.update({
                k: float(v)
                for k, v in (ds.get('pred_scores') or {}).items()
                if k in _VIT_KEYS
            })
            self.results.append(row)

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        out = {}
        keys = [
            k for k in ('mask_iou', 'mask_score_auroc', 'mask_fraction',
                        'background_l1') + _VIT_KEYS
            if any(k in r for r in results)
        ]
        for k in keys:
            vals = [r[k] for r in results if k in r and not math.isnan(r[k])]
            out[k] = sum(vals) / len(vals) if vals else float('nan')
        # pairs whose automatic mask was empty (editor on_empty_mask=
        # 'no_mask'); their mask IoU counts as 0 above
        out['empty_masks'] = int(sum(r['empty_mask'] for r in results))
        out['num_pairs'] = len(results)
        return out
