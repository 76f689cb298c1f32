# Copyright (c) mmssl contributors. All rights reserved.
"""Positional-label heads: APL and RPL (Zhang & Gong, AAAI 2023).

Both read the token features of a backbone output, predict where tokens
come from, and are dropped after training.

* :class:`AbsPosLabelHead` (APL): every token is classified into the
  ``h * w`` cells of its grid from the first half of its channels.
* :class:`RelPosLabelHead` (RPL): every ordered pair of tokens inside a
  window is classified into the ``(2M - 1)^2`` offsets from the first half
  of the first token's channels and the second half of the second token's.

Labels come from :mod:`mmssl.models.utils.poslabel`, from each token's
original grid index, so the heads work on all tokens in grid order
(supervised training) and on MAE's shuffled visible tokens (``ids``).
"""
from typing import Dict, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule

from mmssl.registry import MODELS
from mmssl.utils.validation import check_float, check_int
from ..utils.poslabel import (abs_pos_labels, check_divisible_grid,
                              full_grid_ids, grid_coords, num_rel_classes,
                              rel_pos_labels, sample_pairs, to_2tuple_grid,
                              window_pairs)


def pos_label_loss(logits: torch.Tensor,
                   labels: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy of positional logits and the accuracy.

    Args:
        logits (Tensor): (M, K) scores of M tokens or pairs over K positions.
        labels (Tensor): (M,) long.

    Returns:
        tuple[Tensor, Tensor]: mean cross-entropy, and the top-1 accuracy
        in percent (no gradient).
    """
    loss = F.cross_entropy(logits.float(), labels)
    with torch.no_grad():
        acc = (logits.argmax(dim=1) == labels).float().mean() * 100
    return loss, acc


def _check_dims(mlp_dims, key: str, owner: str) -> Tuple[int, int]:
    if not isinstance(mlp_dims, (tuple, list)) or len(mlp_dims) != 2:
        raise ValueError(f'{owner}: {key} must be (hidden, out) channels, '
                         f'got {mlp_dims!r}')
    return (check_int(mlp_dims[0], key,
                      owner), check_int(mlp_dims[1], key, owner))


class _BasePosLabelHead(BaseModule):
    """What APL and RPL share: the checks, the MLP tail and the loss.

    The prediction path is the reference's ``Mlp`` then a classifier:
    ``fc1 -> GELU -> Dropout -> fc2 -> Dropout -> fc_cls``.
    """

    def __init__(self,
                 in_channels: int,
                 grid_size: Union[int, Sequence[int]],
                 mlp_dims: Sequence[int],
                 num_classes: int,
                 fc1_in: int,
                 dropout: float,
                 loss_weight: float,
                 init_cfg: Optional[dict] = None) -> None:
        # no defaults here: APL and RPL state the reference's own
        if init_cfg is None:  # the reference's timm Mlp / Linear init
            init_cfg = dict(
                type='TruncNormal', layer='Linear', std=0.02, bias=0.)
        super().__init__(init_cfg=init_cfg)
        owner = type(self).__name__
        self.in_channels = check_int(
            in_channels, 'in_channels', owner, minimum=2)
        if self.in_channels % 2:
            raise ValueError(
                f'{owner}: in_channels={in_channels} must be even (the head '
                'reads half of the channels)')
        self.grid_size = to_2tuple_grid(grid_size, 'grid_size', owner)
        hidden, out = _check_dims(mlp_dims, 'mlp_dims', owner)
        self.loss_weight = check_float(
            loss_weight, 'loss_weight', owner, low=0)
        self.num_classes = num_classes
        self.fc1 = nn.Linear(fc1_in, hidden)
        self.act = nn.GELU()
        self.drop = nn.Dropout(
            check_float(
                dropout,
                'dropout',
                owner,
                low=0,
                high=1,
                inclusive=(True, False)))
        self.fc2 = nn.Linear(hidden, out)
        self.fc_cls = nn.Linear(out, num_classes)

    @property
    def num_tokens(self) -> int:
        """Tokens of the grid the head predicts positions on."""
        return self.grid_size[0] * self.grid_size[1]

    def _tail(self, x: torch.Tensor) -> torch.Tensor:
        """(..., hidden) pre-activations of fc1 -> (..., num_classes)."""
        x = self.drop(self.act(x))
        x = self.drop(self.fc2(x))
        return self.fc_cls(x)

    def check_tokens(self, tokens: torch.Tensor,
                     ids: Optional[torch.Tensor]) -> None:
        """Shapes of a call: clear errors instead of a gather failure."""
        owner = type(self).__name__
        if tokens.dim() != 3 or tokens.shape[-1] != self.in_channels:
            raise ValueError(
                f'{owner}: expected tokens (B, N, {self.in_channels}), got '
                f'{tuple(tokens.shape)}')
        if ids is None and tokens.shape[1] != self.num_tokens:
            raise ValueError(
                f'{owner}: {tokens.shape[1]} tokens do not fill the grid '
                f'{self.grid_size} of grid_size; set grid_size to the token '
                'grid of the backbone output the head reads')
        if ids is not None and ids.shape != tokens.shape[:2]:
            raise ValueError(
                f'{owner}: ids {tuple(ids.shape)} must be (B, N) like the '
                f'tokens {tuple(tokens.shape[:2])}')

    def loss(self,
             tokens: torch.Tensor,
             ids: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        """Weighted positional loss of one batch.

        Args:
            tokens (Tensor): (B, N, C) token features (no CLS token).
            ids (Tensor, optional): (B, N) original grid index of each
                token; None means all ``h * w`` tokens in grid order.

        Returns:
            dict: ``loss_pos`` (weighted cross-entropy) and ``acc_pos``
            (top-1 accuracy of the positions in percent, logged only).
        """
        logits, labels = self.logits_and_labels(tokens, ids)
        loss, acc = pos_label_loss(logits, labels)
        return dict(loss_pos=loss * self.loss_weight, acc_pos=acc)

    def logits_and_labels(self,
                          tokens: torch.Tensor,
                          ids: Optional[torch.Tensor] = None
                          ) -> Tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError


@MODELS.register_module()
class AbsPosLabelHead(_BasePosLabelHead):
    """Absolute positional label head (APL).

    Each token is classified into the ``h * w`` cells of its grid from the
    first ``C / 2`` channels of its features (the reference's "intercept
    half"): ``Linear(C/2, d1) -> GELU -> Linear(d1, d2) -> Linear(d2, h*w)``.

    Args:
        in_channels (int): C, the token channels (even).
        grid_size (int | tuple[int, int]): ``(h, w)`` token grid of the
            backbone output the head reads; the number of classes is
            ``h * w``.
        mlp_dims (tuple[int, int]): ``(d1, d2)``. Defaults to (384, 192).
        dropout (float): dropout after the activation and fc2.
        loss_weight (float): factor of the cross-entropy. Defaults to 0.5.
    """

    def __init__(self,
                 in_channels: int,
                 grid_size: Union[int, Sequence[int]],
                 mlp_dims: Sequence[int] = (384, 192),
                 dropout: float = 0.,
                 loss_weight: float = 0.5,
                 init_cfg: Optional[dict] = None) -> None:
        grid = to_2tuple_grid(grid_size, 'grid_size', type(self).__name__)
        super().__init__(
            in_channels,
            grid,
            mlp_dims,
            num_classes=grid[0] * grid[1],
            fc1_in=in_channels // 2,
            dropout=dropout,
            loss_weight=loss_weight,
            init_cfg=init_cfg)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, N, C) tokens -> (B, N, h*w) position logits."""
        return self._tail(self.fc1(tokens[..., :self.in_channels // 2]))

    def logits_and_labels(self,
                          tokens: torch.Tensor,
                          ids: Optional[torch.Tensor] = None
                          ) -> Tuple[torch.Tensor, torch.Tensor]:
        """(B*N, h*w) logits and (B*N,) labels (each token's grid index)."""
        self.check_tokens(tokens, ids)
        B, N, _ = tokens.shape
        if ids is None:
            ids = full_grid_ids(B, N, tokens.device)
        logits = self(tokens)
        return logits.reshape(B * N, -1), abs_pos_labels(ids)


@MODELS.register_module()
class RelPosLabelHead(_BasePosLabelHead):
    """Relative positional label head (RPL).

    The ordered pair ``(i, j)`` of tokens in one window is classified into
    the ``(2Mh - 1)(2Mw - 1)`` offsets from ``[x_i[:C/2]; x_j[C/2:]]``. The
    first layer on that concatenation is computed as two half projections
    added by broadcasting, ``A x_i[:C/2] + B x_j[C/2:] + b`` (equal to
    ``Linear(C, d1)`` on the concatenation), so the ``(B, P, C)`` pair
    features are never built.

    Args:
        in_channels (int): C, the token channels (even).
        grid_size (int | tuple[int, int]): ``(h, w)`` token grid.
        window_size (int | tuple[int, int], optional): ``(Mh, Mw)``; pairs
            are formed inside each window of the non-overlapping partition
            (Swin's, unshifted). None (the default) is the whole grid.
        mlp_dims (tuple[int, int]): ``(d1, d2)``. Defaults to (384, 384).
        max_pairs (int, optional): pairs drawn uniformly without
            replacement per sample and step (None: all). Must not exceed the
            number of pairs.
        dropout (float): dropout after the activation and fc2.
        loss_weight (float): factor of the cross-entropy. Defaults to 0.5.
    """

    def __init__(self,
                 in_channels: int,
                 grid_size: Union[int, Sequence[int]],
                 window_size: Union[None, int, Sequence[int]] = None,
                 mlp_dims: Sequence[int] = (384, 384),
                 max_pairs: Optional[int] = None,
                 dropout: float = 0.,
                 loss_weight: float = 0.5,
                 init_cfg: Optional[dict] = None) -> None:
        owner = type(self).__name__
        grid = to_2tuple_grid(grid_size, 'grid_size', owner)
        window = grid if window_size is None else to_2tuple_grid(
            window_size, 'window_size', owner)
        check_divisible_grid(grid, window, 'window_size', owner)
        super().__init__(
            in_channels,
            grid,
            mlp_dims,
            num_classes=num_rel_classes(window),
            fc1_in=in_channels // 2,
            dropout=dropout,
            loss_weight=loss_weight,
            init_cfg=init_cfg)
        self.window_size = window
        # fc1 acts on the first token's half; fc1_second on the second's.
        self.fc1_second = nn.Linear(
            in_channels // 2, self.fc1.out_features, bias=False)
        first, second = window_pairs(grid, window)
        self.register_buffer('pair_first', first, persistent=False)
        self.register_buffer('pair_second', second, persistent=False)
        self.max_pairs = None if max_pairs is None else check_int(
            max_pairs,
            'max_pairs',
            owner,
            maximum=self.num_pairs,
            note=f'pairs per sample; the grid {grid} with window {window} '
            f'has {self.num_pairs}')

    @property
    def num_pairs(self) -> int:
        """Candidate ordered pairs per sample on the full grid."""
        return self.pair_first.numel()

    def check_visible_pairs(self, num_visible: int, key: str,
                            owner: str) -> None:
        """Build-time check for visible-token use (MAE): the pairs exist."""
        if self.window_size != self.grid_size:
            raise ValueError(
                f'{owner}: {key}.window_size must be the whole grid '
                f'{self.grid_size} (or None) for visible tokens, got '
                f'{self.window_size}')
        if self.max_pairs is not None and self.max_pairs > num_visible**2:
            raise ValueError(
                f'{owner}: {key}.max_pairs={self.max_pairs} exceeds the '
                f'{num_visible ** 2} ordered pairs of {num_visible} visible '
                'tokens; lower it')

    def pair_logits(self, tokens: torch.Tensor, first: torch.Tensor,
                    second: torch.Tensor) -> torch.Tensor:
        """Logits of given pairs.

        Args:
            tokens (Tensor): (B, N, C).
            first, second (Tensor): (B, K) long token positions in
                ``tokens`` of each pair's first and second token.

        Returns:
            Tensor: (B, K, num_classes).
        """
        half = self.in_channels // 2
        a = self.fc1(tokens[..., :half])  # (B, N, d1), with the bias
        b = self.fc1_second(tokens[..., half:])  # (B, N, d1)
        d1 = a.shape[-1]
        a = torch.gather(a, 1, first.unsqueeze(-1).expand(-1, -1, d1))
        b = torch.gather(b, 1, second.unsqueeze(-1).expand(-1, -1, d1))
        return self._tail(a + b)

    def logits_and_labels(self,
                          tokens: torch.Tensor,
                          ids: Optional[torch.Tensor] = None
                          ) -> Tuple[torch.Tensor, torch.Tensor]:
        """(B*K, classes) logits and (B*K,) labels of the sampled pairs."""
        self.check_tokens(tokens, ids)
        B, N, _ = tokens.shape
        device = tokens.device
        if ids is None:
            # all tokens in grid order: pairs inside each window
            pick = sample_pairs(self.num_pairs, B, self.max_pairs, device)
            first = self.pair_first[pick]  # (B, K) grid index = position
            second = self.pair_second[pick]
            ids_first, ids_second = first, second
        else:
            # visible tokens (window = grid): any ordered pair of them
            if self.window_size != self.grid_size:
                raise ValueError(
                    f'{type(self).__name__}: pairs of a token subset need '
                    'window_size None (the whole grid)')
            pick = sample_pairs(N * N, B, self.max_pairs, device)
            first, second = pick // N, pick % N  # positions in tokens
            ids_first = torch.gather(ids, 1, first)
            ids_second = torch.gather(ids, 1, second)
        width = self.grid_size[1]
        labels = rel_pos_labels(
            grid_coords(ids_first, width), grid_coords(ids_second, width),
            self.window_size)
        logits = self.pair_logits(tokens, first, second)
        return logits.reshape(-1, self.num_classes), labels.reshape(-1)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, N, C) tokens in grid order -> (B, P, classes), every pair."""
        B = tokens.shape[0]
        first = self.pair_first.unsqueeze(0).expand(B, -1)
        second = self.pair_second.unsqueeze(0).expand(B, -1)
        return self.pair_logits(tokens, first, second)
