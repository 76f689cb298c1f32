# Copyright (c) mmssl contributors. All rights reserved.
"""Scores of a garment appearance transfer (DiffFashion).

Structure is compared through the cosine self-similarity of a ViT's
last-block keys, appearance through its [CLS] token; the pixel scores
measure how much of the garment's background is kept and how well a mask
matches the true silhouette. Images are (1, 3, H, W) in [-1, 1], masks
(1, 1, H, W) with 1 = garment.
"""
from typing import Callable, Dict, Optional, Tuple

import torch
import torch.nn.functional as F

__all__ = [
    'key_self_similarity', 'pixel_metrics', 'fashion_metrics',
    'mask_score_auroc'
]

#: ``images (B, 3, H, W) in [-1, 1] -> (keys (B, N, C), cls (B, C))``
FeatureFn = Callable[[torch.Tensor], Tuple[torch.Tensor, torch.Tensor]]


def key_self_similarity(keys: torch.Tensor) -> torch.Tensor:
    """Cosine self-similarity of tokens.

    Args:
        keys (Tensor): (B, N, C).

    Returns:
        Tensor: (B, N, N), symmetric with ones on the diagonal.
    """
    k = F.normalize(keys, dim=-1)
    return k @ k.transpose(1, 2)


def pixel_metrics(
        result: torch.Tensor,
        garment: torch.Tensor,
        mask: Optional[torch.Tensor],
        true_mask: Optional[torch.Tensor] = None) -> Dict[str, float]:
    """The pixel scores of a transfer: background change and mask quality.

    Args:
        result (Tensor): (1, 3, H, W) output in [-1, 1].
        garment (Tensor): (1, 3, H, W) garment image in [-1, 1].
        mask (Tensor, optional): (1, 1, H, W) mask used, 1 = garment;
            ``None`` counts every pixel as garment.
        true_mask (Tensor, optional): (1, 1, H, W) true silhouette.

    Returns:
        dict: ``background_l1`` (mean absolute difference to the garment
        outside ``true_mask``, else outside ``mask``, in [0, 1] units;
        ``nan`` when there is no background), ``mask_fraction`` and, with
        ``true_mask``, ``mask_iou`` (intersection over union of ``mask >
        0.5`` and ``true_mask > 0.5``; 0 when both are empty).
    """
    m = torch.ones_like(result[:, :1]) if mask is None else mask.float()
    fg = m if true_mask is None else true_mask.float()
    bg = (1 - fg).expand_as(result)
    n_bg = float(bg.sum())
    bg_l1 = float(((result - garment).abs() / 2 * bg).sum() / n_bg) \
        if n_bg > 0 else float('nan')
    out = dict(background_l1=bg_l1, mask_fraction=float(m.mean()))
    if true_mask is not None:
        a, b = m > 0.5, true_mask > 0.5
        out['mask_iou'] = float((a & b).sum() / (a | b).sum().clamp(min=1))
    return out


def _token_mask(true_mask: torch.Tensor, num_tokens: int) -> torch.Tensor:
    """(1, 1, H, W) mask -> (N,) bool over [CLS] + the patch grid: the
    patches at least half inside the mask ([CLS] excluded)."""
    side = int(round((num_tokens - 1)**0.5))
    if side * side != num_tokens - 1:
        raise ValueError(f'cannot lay {num_tokens - 1} ViT tokens on a '
                         'square grid')
    grid = F.adaptive_avg_pool2d(true_mask.float(), side).flatten() >= 0.5
    return torch.cat([grid.new_zeros(1), grid])


@torch.no_grad()
def fashion_metrics(
        result: torch.Tensor,
        garment: torch.Tensor,
        reference: torch.Tensor,
        mask: Optional[torch.Tensor],
        extractor: FeatureFn,
        true_mask: Optional[torch.Tensor] = None) -> Dict[str, float]:
    """Structure, appearance and background scores of a transfer.

    Args:
        result (Tensor): (1, 3, H, W) output in [-1, 1].
        garment (Tensor): (1, 3, H, W) garment image.
        reference (Tensor): (1, 3, H, W) appearance reference.
        mask (Tensor, optional): (1, 1, H, W), 1 = garment; ``None`` counts
            every pixel as garment.
        extractor (callable): the ViT features used for the scores, e.g.
            :class:`mmssl.models.diffusion.ViTFeatureExtractor`.
        true_mask (Tensor, optional): (1, 1, H, W) true garment
            silhouette; when given, the background score uses it instead
            of ``mask``, ``mask_iou`` compares ``mask`` with it and
            ``structure_selfsim_fg`` is computed.

    Returns:
        dict: ``structure_selfsim`` (MSE of the key self-similarity to the
        garment's, lower = structure kept), ``appearance_cls`` (MSE of the
        [CLS] token to the reference's, lower = closer appearance), the
        scores of :func:`pixel_metrics` and, with ``true_mask``,
        ``structure_selfsim_fg`` (the self-similarity MSE over the pairs
        of patches inside the true silhouette; ``nan`` if none is).
    """
    k_out, c_out = extractor(result)
    k_g, _ = extractor(garment)
    _, c_ref = extractor(reference)
    diff = (key_self_similarity(k_out) - key_self_similarity(k_g))**2
    out = dict(
        structure_selfsim=float(diff.mean()),
        appearance_cls=float(((c_out - c_ref)**2).mean()))
    if true_mask is not None:
        tok = _token_mask(true_mask, diff.shape[-1])
        out['structure_selfsim_fg'] = float(
            diff[0][tok][:, tok].mean()) if tok.any() else float('nan')
    out.update(pixel_metrics(result, garment, mask, true_mask))
    return out


def mask_score_auroc(score: torch.Tensor, gt: torch.Tensor) -> float:
    """Area under the ROC curve of a per-pixel score against a true mask.

    The probability that a pixel of the silhouette scores higher than a
    background pixel (0.5 = the score carries no information about the
    silhouette, 1 = a threshold separates them exactly); ties count half.

    Args:
        score (Tensor): (H, W) scores.
        gt (Tensor): (H, W) or (1, H, W) true mask, > 0.5 = garment.

    Returns:
        float: AUROC, ``nan`` when the mask is empty or full.
    """
    s = torch.as_tensor(score).float().flatten()
    y = torch.as_tensor(gt).flatten() > 0.5
    npos, nneg = int(y.sum()), int((~y).sum())
    if npos == 0 or nneg == 0:
        return float('nan')
    pos, neg = s[y], s[~y]
    greater = (pos[:, None] > neg[None]).float().sum()
    ties = (pos[:, None] == neg[None]).float().sum()
    return float((greater + 0.5 * ties) / (npos * nneg))
