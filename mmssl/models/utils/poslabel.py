# Copyright (c) mmssl contributors. All rights reserved.
"""Positional labels: the targets of APL and RPL (Zhang & Gong, AAAI 2023).

A token on an ``(h, w)`` grid has the *absolute* label ``row * w + col``
(its row-major index). An ordered pair of tokens ``(i, j)`` inside an
``(Mh, Mw)`` window has the *relative* label

    r(i, j) = (row_i - row_j + Mh - 1) * (2 Mw - 1) + (col_i - col_j + Mw - 1)

in ``[0, (2 Mh - 1) (2 Mw - 1))``, the index convention of Swin's relative
position bias table. Labels are always computed from the tokens' original
grid indices (``ids``), never hard-coded to a batch size, so they stay right
after MAE's visible-token gather, which shuffles and drops tokens.
"""
from typing import Optional, Sequence, Tuple

import torch

from mmssl.utils.validation import check_int


def to_2tuple_grid(grid_size,
                   key: str = 'grid_size',
                   owner: Optional[str] = None) -> Tuple[int, int]:
    """``7 -> (7, 7)``; ``(h, w)`` checked as positive integers."""
    if isinstance(grid_size, (tuple, list)):
        if len(grid_size) != 2:
            raise ValueError(f'{owner + ": " if owner else ""}{key} must be '
                             f'an int or (h, w), got {grid_size!r}')
        return (check_int(grid_size[0], key,
                          owner), check_int(grid_size[1], key, owner))
    size = check_int(grid_size, key, owner)
    return size, size


def abs_pos_labels(ids: torch.Tensor) -> torch.Tensor:
    """Absolute positional labels of tokens with original indices ``ids``.

    Args:
        ids (Tensor): (B, N) long, each token's row-major index on the grid
            (``arange(N)`` per sample for all tokens in order, MAE's
            ``ids_keep`` for its visible tokens).

    Returns:
        Tensor: (B * N,) long labels (the label of a token is its index).
    """
    return ids.reshape(-1).long()


def full_grid_ids(batch_size: int,
                  num_tokens: int,
                  device: Optional[torch.device] = None) -> torch.Tensor:
    """(B, N) ``arange(N)`` per sample: the ids of tokens in grid order."""
    return torch.arange(
        num_tokens, device=device).unsqueeze(0).expand(batch_size, -1)


def grid_coords(ids: torch.Tensor, width: int) -> torch.Tensor:
    """(..., 2) ``(row, col)`` of row-major indices ``ids``, grid width W."""
    return torch.stack((ids // width, ids % width), dim=-1)


def rel_pos_labels(coords_i: torch.Tensor, coords_j: torch.Tensor,
                   window: Tuple[int, int]) -> torch.Tensor:
    """Relative positional labels of token pairs.

    Args:
        coords_i (Tensor): (..., 2) ``(row, col)`` of the first tokens.
        coords_j (Tensor): (..., 2) ``(row, col)`` of the second tokens
            (same window as ``coords_i``; only the offset matters).
        window (tuple[int, int]): ``(Mh, Mw)`` window size.

    Returns:
        Tensor: (...) long labels in ``[0, (2Mh-1)(2Mw-1))``.
    """
    mh, mw = window
    d = coords_i - coords_j
    return ((d[..., 0] + mh - 1) * (2 * mw - 1) + d[..., 1] + mw - 1).long()


def num_rel_classes(window: Tuple[int, int]) -> int:
    """``(2 Mh - 1) (2 Mw - 1)``: relative offsets inside a window."""
    return (2 * window[0] - 1) * (2 * window[1] - 1)


def rel_pos_label_matrix(window: Tuple[int, int]) -> torch.Tensor:
    """(Mh*Mw, Mh*Mw) labels of all ordered pairs of one window.

    Entry ``[i, j]`` is ``r(i, j)`` for tokens ``i`` and ``j`` in row-major
    order; it equals the relative-position index of Swin's window
    attention.
    """
    n = window[0] * window[1]
    coords = grid_coords(torch.arange(n), window[1])
    return rel_pos_labels(coords[:, None], coords[None, :], window)


def window_pairs(grid: Tuple[int, int],
                 window: Tuple[int, int]) -> Tuple[torch.Tensor, torch.Tensor]:
    """All ordered token pairs that share a window, on a full grid.

    Windows tile the grid without overlap (Swin's partition without shift);
    a window equal to the grid gives all ``N * N`` pairs.

    Args:
        grid (tuple[int, int]): ``(h, w)``; each divisible by the window.
        window (tuple[int, int]): ``(Mh, Mw)``.

    Returns:
        tuple[Tensor, Tensor]: ``(first, second)``, each (P,) long row-major
        grid indices, ``P = (h / Mh) (w / Mw) (Mh Mw)^2``.
    """
    h, w = grid
    mh, mw = window
    rows = torch.arange(h).view(h // mh, mh)  # (nWh, Mh)
    cols = torch.arange(w).view(w // mw, mw)  # (nWw, Mw)
    # ids of every window's tokens: (nWh, nWw, Mh, Mw) -> (nW, Mh*Mw)
    ids = rows[:, None, :, None] * w + cols[None, :, None, :]
    ids = ids.reshape(-1, mh * mw)
    first = ids[:, :, None].expand(-1, -1, mh * mw).reshape(-1)
    second = ids[:, None, :].expand(-1, mh * mw, -1).reshape(-1)
    return first, second


def sample_pairs(num_pairs: int,
                 batch_size: int,
                 max_pairs: Optional[int],
                 device: Optional[torch.device] = None,
                 generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Indices of the pairs used per sample.

    Args:
        num_pairs (int): P, candidate pairs per sample.
        batch_size (int): B.
        max_pairs (int, optional): K; ``None`` or ``K >= P`` keeps all.

    Returns:
        Tensor: (B, K) long indices into the P candidates, distinct within
        a sample (uniform without replacement), or (B, P) ``arange``.
    """
    if max_pairs is None or max_pairs >= num_pairs:
        return torch.arange(
            num_pairs, device=device).unsqueeze(0).expand(batch_size, -1)
    keys = torch.rand(
        batch_size, num_pairs, device=device, generator=generator)
    return keys.topk(max_pairs, dim=1).indices


def check_divisible_grid(grid: Sequence[int],
                         window: Sequence[int],
                         key: str,
                         owner: Optional[str] = None) -> None:
    """Raise a ValueError unless the window tiles the grid."""
    if grid[0] % window[0] or grid[1] % window[1]:
        raise ValueError(
            f'{owner + ": " if owner else ""}{key}={tuple(window)} does not '
            f'tile the token grid {tuple(grid)}; pick a window that divides '
            'the grid (or None for the whole grid)')
