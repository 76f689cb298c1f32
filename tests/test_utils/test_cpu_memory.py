# Copyright (c) mmssl contributors. All rights reserved.
"""malloc keeps freed memory for reuse: the mallopt calls, their order and
fallbacks, and the effect on page faults."""
import subprocess
import sys
import textwrap

import pytest

from mmssl.utils import cpu_memory
from mmssl.utils.cpu_memory import (KEEP_BYTES, M_MMAP_THRESHOLD,
                                    M_TRIM_THRESHOLD, keep_freed_memory,
                                    user_allocator_env)


class _FakeLibc:
    """mallopt that accepts values up to ``max_mmap`` for the mmap
    threshold, and records every call."""

    def __init__(self, max_mmap):
        self.max_mmap = max_mmap
        self.calls = []

    def mallopt(self, param, value):
        self.calls.append((param, value))
        if param == M_MMAP_THRESHOLD:
            return int(value <= self.max_mmap)
        return 1


_REAL_LIBC = cpu_memory._libc


def _with_libc(monkeypatch, libc):
    monkeypatch.setattr(cpu_memory, '_libc', lambda: libc)


def test_sets_the_mmap_threshold_then_the_trim_threshold(monkeypatch):
    libc = _FakeLibc(max_mmap=1 << 40)
    _with_libc(monkeypatch, libc)
    assert keep_freed_memory()
    assert libc.calls == [(M_MMAP_THRESHOLD, KEEP_BYTES),
                          (M_TRIM_THRESHOLD, KEEP_BYTES)]
    assert (M_MMAP_THRESHOLD, M_TRIM_THRESHOLD) == (-3, -1)  # malloc.h


def test_falls_back_to_glibcs_mmap_cap(monkeypatch):
    libc = _FakeLibc(max_mmap=32 << 20)
    _with_libc(monkeypatch, libc)
    assert keep_freed_memory()
    assert libc.calls == [(M_MMAP_THRESHOLD, KEEP_BYTES),
                          (M_MMAP_THRESHOLD, 32 << 20),
                          (M_TRIM_THRESHOLD, KEEP_BYTES)]


def test_no_trim_threshold_without_the_mmap_threshold(monkeypatch):
    """The trim threshold alone would pin the mmap threshold at 128 KiB:
    it is not set when the mmap threshold is refused."""
    libc = _FakeLibc(max_mmap=0)
    _with_libc(monkeypatch, libc)
    assert not keep_freed_memory()
    assert [p for p, _ in libc.calls] == [M_MMAP_THRESHOLD] * 2


def test_without_mallopt(monkeypatch):
    _with_libc(monkeypatch, None)
    assert not keep_freed_memory()
    _with_libc(monkeypatch, object())  # a libc without mallopt (musl)
    assert not keep_freed_memory()
    monkeypatch.setattr(cpu_memory.sys, 'platform', 'darwin')
    assert _REAL_LIBC() is None


_FAULTS = textwrap.dedent('''
    import resource, sys
    import torch
    from mmssl.utils.cpu_memory import keep_freed_memory
    if sys.argv[1] == 'keep' and not keep_freed_memory():
        print('unsupported'); sys.exit()
    def step():  # 40 MiB: above glibc's largest default mmap threshold
        x = torch.ones(10 << 20)
        del x
    for _ in range(12):  # the heap grows to its working size
        step()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        step()
    after = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    print((after - before) / 10)
''')


def _faults(mode):
    out = subprocess.run([sys.executable, '-c', _FAULTS, mode],
                         capture_output=True,
                         text=True,
                         check=True).stdout.split()[-1]
    if out == 'unsupported':
        pytest.skip('malloc thresholds cannot be set here')
    return float(out)


@pytest.mark.skipif(
    not sys.platform.startswith('linux'), reason='glibc malloc only')
def test_freed_memory_is_reused_without_page_faults():
    """A 40 MiB tensor made and freed each step: with glibc's defaults it is
    a fresh mapping every time (its pages fault on first touch), kept it
    comes back from the heap with (almost) no faults."""
    default, kept = _faults('default'), _faults('keep')
    assert default > 0
    assert kept * 10 < default


def test_user_allocator_env(monkeypatch):
    for key in ('LD_PRELOAD', 'MALLOC_CONF', 'MALLOC_MMAP_THRESHOLD_',
                'MALLOC_TRIM_THRESHOLD_'):
        monkeypatch.delenv(key, raising=False)
    assert user_allocator_env() == []
    monkeypatch.setenv('LD_PRELOAD', '/usr/lib/libjemalloc.so')
    monkeypatch.setenv('MALLOC_TRIM_THRESHOLD_', '0')
    assert user_allocator_env() == ['MALLOC_TRIM_THRESHOLD_', 'LD_PRELOAD']
