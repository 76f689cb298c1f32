# Copyright (c) mmssl contributors. All rights reserved.
"""Shared token-masking helpers (the MAE-style "keep a random subset" path).

Every masked-modelling method in mmssl that drops tokens before the encoder
(MAE, data2vec 2.0, positional labels) uses these helpers, so the
bookkeeping (``ids_keep``, ``ids_restore``, binary mask) is defined once.
"""
from typing import Optional, Tuple

import torch


def check_mask_ratio(mask_ratio: float, key: str = 'mask_ratio') -> float:
    """Validate a mask ratio at build time.

    Raises:
        ValueError: unless ``0 <= mask_ratio < 1``, naming ``key``.
    """
    if not isinstance(mask_ratio, (int, float)) or not 0 <= mask_ratio < 1:
        raise ValueError(
            f'`{key}` must be a number in [0, 1) (the fraction of patches '
            f'removed), got {mask_ratio!r}')
    return float(mask_ratio)


def num_visible(num_tokens: int, mask_ratio: float) -> int:
    """Number of tokens kept: ``int(num_tokens * (1 - mask_ratio))``, >= 1."""
    return max(1, int(num_tokens * (1 - mask_ratio)))


def random_masking(
    x: torch.Tensor,
    mask_ratio: float,
    noise: Optional[torch.Tensor] = None
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Keep a uniformly random subset of tokens per sample (MAE masking).

    Args:
        x (Tensor): tokens, shape (B, L, C).
        mask_ratio (float): fraction of tokens removed.
        noise (Tensor, optional): (B, L) sort keys; random if None (lets
            tests and multi-view methods fix the permutation).

    Returns:
        tuple:
        - x_visible (Tensor): (B, V, C) kept tokens, V = num_visible(L, r).
        - mask (Tensor): (B, L) float, 1 = removed, 0 = kept.
        - ids_restore (Tensor): (B, L) long, un-shuffles the concatenation
          ``[visible, removed]`` back to the original order.
        - ids_keep (Tensor): (B, V) long, indices of the kept tokens.
    """
    B, L, C = x.shape
    keep = num_visible(L, mask_ratio)
    if noise is None:
        noise = torch.rand(B, L, device=x.device)
    ids_shuffle = torch.argsort(noise, dim=1)
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    ids_keep = ids_shuffle[:, :keep]
    x_visible = torch.gather(x, 1, ids_keep.unsqueeze(-1).expand(-1, -1, C))
    mask = torch.ones(B, L, device=x.device, dtype=x.dtype)
    mask[:, :keep] = 0
    mask = torch.gather(mask, 1, ids_restore)
    return x_visible, mask, ids_restore, ids_keep


def unshuffle_tokens(visible: torch.Tensor, fill: torch.Tensor,
                     ids_restore: torch.Tensor) -> torch.Tensor:
    """Put visible tokens and filler tokens back into the original order.

    Args:
        visible (Tensor): (B, V, C) encoded visible tokens.
        fill (Tensor): (B, L - V, C) tokens for the removed positions
            (a learned mask token, noise, ...).
        ids_restore (Tensor): (B, L) from :func:`random_masking`.

    Returns:
        Tensor: (B, L, C).
    """
    x = torch.cat([visible, fill], dim=1)
    return torch.gather(
        x, 1,
        ids_restore.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


def patchify(imgs: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, L, p*p*C), element order (row, col, channel)."""
    B, C, H, W = imgs.shape
    p = patch_size
    if H % p or W % p:
        raise ValueError(f'image size {H}x{W} is not divisible by the patch '
                         f'size {p}')
    h, w = H // p, W // p
    x = imgs.reshape(B, C, h, p, w, p)
    x = torch.einsum('nchpwq->nhwpqc', x)
    return x.reshape(B, h * w, p * p * C)


def unpatchify(x: torch.Tensor, patch_size: int, channels: int = 3,
               grid: Optional[Tuple[int, int]] = None) -> torch.Tensor:
    """Inverse of :func:`patchify`: (B, L, p*p*C) -> (B, C, H, W)."""
    B, L, _ = x.shape
    p = patch_size
    if grid is None:
        h = w = int(round(L**0.5))
    else:
        h, w = grid
    if h * w != L:
        raise ValueError(f'{L} patches do not form a {h}x{w} grid')
    x = x.reshape(B, h, w, p, p, channels)
    x = torch.einsum('nhwpqc->nchpwq', x)
    return x.reshape(B, channels, h * p, w * p)
