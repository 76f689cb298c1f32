# Copyright (c) mmssl contributors. All rights reserved.
"""Time the attention kernel alone, per shape, dtype and backend.

:func:`time_attention` times ``F.scaled_dot_product_attention`` forward +
backward on random (B, H, N, d) q, k, v of one dtype, with the backend
PyTorch picks or a named one (``flash``, ``math``, ``efficient``,
``cudnn``); :func:`benchmark_attention` does it for every shape x dtype x
backend, interleaved over ``repeat`` rounds (the median counts), so a
drifting machine's speed falls on all cells alike. It is the measurement
behind ``mmssl.models.utils.CPU_BF16_ATTENTION_MIN_KEYS``
(``tools/analysis_tools/benchmark_attention.py``).
"""
import statistics
from time import perf_counter
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from mmssl.utils.validation import check_int
from .benchmark import _num_threads
from .step_memory import sync_device

__all__ = ['BACKENDS', 'parse_shape', 'time_attention', 'benchmark_attention']

BACKENDS: Dict[str, SDPBackend] = {
    'flash': SDPBackend.FLASH_ATTENTION,
    'math': SDPBackend.MATH,
    'efficient': SDPBackend.EFFICIENT_ATTENTION,
    'cudnn': SDPBackend.CUDNN_ATTENTION,
}

Shape = Tuple[int, int, int, int]


def parse_shape(text: str) -> Shape:
    """``'B,H,N,d'`` (or ``BxHxNxd``) -> (B, H, N, d), all positive."""
    parts = text.replace('x', ',').split(',')
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        shape = ()
    if len(shape) != 4 or min(shape) < 1:
        raise ValueError(f'attention shape {text!r}: give four positive '
                         'integers B,H,N,d (batch, heads, tokens, head width)')
    return shape


def time_attention(shape: Shape,
                   dtype: torch.dtype = torch.float32,
                   backend: Optional[str] = None,
                   iters: int = 5,
                   device: Union[str, torch.device] = 'cpu',
                   seed: int = 0) -> float:
    """Milliseconds of one forward + backward of attention at ``shape``
    (the mean of ``iters`` calls after one untimed call).

    Args:
        shape (tuple): (B, H, N, d) of q, k and v (self-attention).
        dtype (torch.dtype): Element type of q, k, v and the gradient.
        backend (str, optional): A key of :data:`BACKENDS`; PyTorch's choice
            if None.
        iters (int): Timed calls.
        device (str | torch.device): Where to run.
        seed (int): Seed of the random tensors.
    """
    check_int(iters, 'iters', 'time_attention')
    if backend is not None and backend not in BACKENDS:
        raise ValueError(f'attention backend {backend!r}: choose one of '
                         f'{sorted(BACKENDS)} (or none: PyTorch picks)')
    device = torch.device(device)
    gen = torch.Generator(device=device).manual_seed(seed)
    q, k, v, grad = (
        torch.randn(shape, generator=gen, device=device).to(dtype)
        for _ in range(4))
    for t in (q, k, v):
        t.requires_grad_()

    def step():
        if backend is None:
            out = F.scaled_dot_product_attention(q, k, v)
        else:
            with sdpa_kernel(BACKENDS[backend]):
                out = F.scaled_dot_product_attention(q, k, v)
        out.backward(grad)

    step()
    sync_device(device)
    start = perf_counter()
    for _ in range(iters):
        step()
    sync_device(device)
    return (perf_counter() - start) / iters * 1e3


def benchmark_attention(shapes: Sequence[Shape],
                        dtypes: Sequence[torch.dtype] = (torch.float32,
                                                         torch.bfloat16),
                        backends: Sequence[Optional[str]] = (None, ),
                        iters: int = 5,
                        repeat: int = 3,
                        threads: Optional[int] = None,
                        device: Union[str, torch.device] = 'cpu',
                        seed: int = 0) -> List[dict]:
    """Every shape x dtype x backend, ``repeat`` interleaved rounds.

    Returns:
        list[dict]: One record per cell: ``shape``, ``dtype`` (its name),
        ``backend`` (``'default'`` for PyTorch's choice), ``ms`` (median of
        the rounds), ``ms_rounds``, and ``ratio_to_first_dtype`` (``ms``
        over that of the same shape and backend in ``dtypes[0]``).
    """
    check_int(repeat, 'repeat', 'benchmark_attention')
    cells = [(tuple(s), d, b) for s in shapes for d in dtypes
             for b in backends]
    rounds: Dict[tuple, List[float]] = {c: [] for c in cells}
    with _num_threads(threads):
        for _ in range(repeat):
            for cell in cells:
                rounds[cell].append(
                    time_attention(
                        *cell, iters=iters, device=device, seed=seed))
    medians = {c: statistics.median(ms) for c, ms in rounds.items()}
    return [
        dict(
            shape=list(s),
            dtype=str(d).replace('torch.', ''),
            backend=b or 'default',
            ms=medians[(s, d, b)],
            ms_rounds=rounds[(s, d, b)],
            ratio_to_first_dtype=medians[(s, d, b)] /
            medians[(s, dtypes[0], b)]) for s, d, b in cells
    ]
