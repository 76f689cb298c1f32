# Copyright (c) mmssl contributors. All rights reserved.
"""Greedy (best-path) CTC decoding."""
from typing import List, Optional

import torch

__all__ = ['ctc_greedy_decode']


def ctc_greedy_decode(log_probs: torch.Tensor,
                      lengths: Optional[torch.Tensor] = None,
                      blank: int = 0) -> List[List[int]]:
    """Best-path CTC decoding: the arg-max symbol of each frame, repeats
    collapsed, blanks dropped (a blank between two equal symbols keeps
    both).

    Args:
        log_probs (Tensor): ``(B, T, V)`` log-probabilities or logits (the
            arg-max is the same).
        lengths (Tensor | Sequence[int], optional): ``(B,)`` valid frames
            of each item; frames past them are ignored. None: all ``T``.
        blank (int): id of the blank. Defaults to 0.

    Returns:
        list[list[int]]: ``B`` id sequences (no blanks).
    """
    if log_probs.dim() != 3:
        raise ValueError('ctc_greedy_decode: log_probs must be (B, T, V), '
                         f'got shape {tuple(log_probs.shape)}')
    batch, frames, _ = log_probs.shape
    best = log_probs.argmax(dim=-1).cpu()  # (B, T)
    if lengths is None:
        lengths = [frames] * batch
    else:
        lengths = torch.as_tensor(lengths).reshape(-1).tolist()
        if len(lengths) != batch:
            raise ValueError(f'ctc_greedy_decode: {len(lengths)} lengths '
                             f'for a batch of {batch}')
    out = []
    for b in range(batch):
        path = best[b, :max(0, min(int(lengths[b]), frames))]
        if path.numel():
            keep = torch.ones_like(path, dtype=torch.bool)
            keep[1:] = path[1:] != path[:-1]
            path = path[keep & (path != blank)]
        out.append(path.tolist())
    return out
