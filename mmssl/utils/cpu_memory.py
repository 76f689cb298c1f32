# Copyright (c) mmssl contributors. All rights reserved.
"""Reuse freed memory on the CPU (glibc's malloc).

PyTorch's CPU tensors come from ``malloc``. glibc serves blocks larger than
its mmap threshold (at most 32 MiB, adjusted as the program runs) with a
fresh ``mmap`` and gives them back to the kernel on ``free``, and trims the
heap's free top: a training step then touches new pages, and the kernel
zero-fills each on its first touch (a minor page fault; thousands to tens
of thousands per MAE step, which ``benchmark_train.py`` prints).
:func:`keep_freed_memory` raises both thresholds, so that freed blocks stay
in the process for the next step (PyTorch's CPU tuning guide gets the same
from jemalloc or tcmalloc, which need ``LD_PRELOAD``): after the first few
steps, while the heap grows to its working size, a step touches no new
pages; the process keeps its peak memory. ``benchmark_train.py --malloc
keep`` measures it. On the 2-core CPU of ``configs/mae/README.md`` it
removes most of the faults (90-99 % in 11 of 12 pairs), and the MAE step
is 1.04 +- 0.03x (ViT-tiny) and 1.01 +- 0.02x (ViT-B) as fast as with
glibc's defaults: within the machine's drift, so the training tools leave
malloc as it is.
"""
import ctypes
import ctypes.util
import os
import sys
from typing import List, Optional

__all__ = ['keep_freed_memory', 'user_allocator_env', 'KEEP_BYTES']

#: glibc's mallopt parameters (malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
#: Blocks up to this size come from (and go back to) the heap.
KEEP_BYTES = 1 << 30
#: The cap some glibc versions put on the mmap threshold (HEAP_MAX_SIZE / 2).
_GLIBC_MMAP_MAX = 32 << 20
#: Environment settings that mean the user chose the allocator already.
_USER_ALLOCATOR_ENV = ('MALLOC_MMAP_THRESHOLD_', 'MALLOC_TRIM_THRESHOLD_',
                       'MALLOC_CONF', 'LD_PRELOAD')


def _libc() -> Optional[ctypes.CDLL]:
    if not sys.platform.startswith('linux'):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6')
    except OSError:
        return None


def keep_freed_memory(keep_bytes: int = KEEP_BYTES) -> bool:
    """Make glibc's malloc keep freed blocks up to ``keep_bytes`` for reuse.

    Sets the mmap threshold (falling back to glibc's cap of 32 MiB where a
    larger one is refused), then the trim threshold. Setting the trim
    threshold alone would fix the mmap threshold at its 128 KiB start and
    map far more, so nothing is set unless the mmap threshold was.

    Args:
        keep_bytes (int): The thresholds. Defaults to :data:`KEEP_BYTES`.

    Returns:
        bool: Whether both were set (False off Linux, without glibc's
        ``mallopt``, or where it refuses).
    """
    libc = _libc()
    mallopt = getattr(libc, 'mallopt', None) if libc is not None else None
    if mallopt is None:
        return False
    mmap_at = keep_bytes
    if mallopt(M_MMAP_THRESHOLD, mmap_at) != 1:
        mmap_at = min(keep_bytes, _GLIBC_MMAP_MAX)
        if mallopt(M_MMAP_THRESHOLD, mmap_at) != 1:
            return False
    return mallopt(M_TRIM_THRESHOLD, keep_bytes) == 1


def user_allocator_env() -> List[str]:
    """The environment variables set that choose the allocator or its
    thresholds (``LD_PRELOAD``, ``MALLOC_CONF``, glibc's
    ``MALLOC_*_THRESHOLD_``): where any is set, the user's choice stands."""
    return [k for k in _USER_ALLOCATOR_ENV if os.environ.get(k)]
