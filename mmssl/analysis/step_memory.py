# Copyright (c) mmssl contributors. All rights reserved.
"""Memory of a training step and a description of the machine, for the
benchmark tools (:mod:`mmssl.analysis.benchmark`).

``state_bytes`` counts what lives between steps (parameters, buffers,
gradients, optimizer states); :class:`StepMemory` measures what one step
adds on top: ``torch.cuda.max_memory_allocated`` on CUDA, the growth of the
process's resident set size on CPU (``VmHWM`` after a reset through
``/proc/self/clear_refs``, else ``VmRSS`` sampled every millisecond, with the
allocator's free memory handed back by ``malloc_trim`` first).
"""
import ctypes
import os
import platform
import threading
from typing import Optional, Union

import torch
import torch.nn as nn
from mmengine.optim import OptimWrapper

__all__ = ['machine_info', 'state_bytes', 'StepMemory', 'sync_device']


def sync_device(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA); nothing on CPU."""
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def _tensors_bytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors
               if isinstance(t, torch.Tensor))


def state_bytes(model: nn.Module, optim_wrapper: OptimWrapper) -> int:
    """Bytes of parameters, buffers, gradients and optimizer states."""
    total = _tensors_bytes(model.parameters()) + _tensors_bytes(
        model.buffers())
    total += _tensors_bytes(p.grad for p in model.parameters())
    for state in optim_wrapper.optimizer.state.values():
        total += _tensors_bytes(state.values())
    return total


def _status_kib(key: str) -> Optional[int]:
    """A ``kB`` field of ``/proc/self/status`` (None where there is none)."""
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith(key + ':'):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    """Reset ``VmHWM`` to the current RSS; False where the kernel refuses."""
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        return _status_kib('VmHWM') is not None
    except OSError:
        return False


def _malloc_trim() -> None:
    """Give the C allocator's free memory back to the system (glibc)."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass


class StepMemory:
    """The memory a block of steps adds on top of what it starts with."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._hwm = device.type != 'cuda' and _reset_peak_rss()
        if device.type == 'cuda':
            self.method = ('torch.cuda.max_memory_allocated - '
                           'memory_allocated before the step')
        else:
            source = 'VmHWM' if self._hwm else 'VmRSS sampled every 1 ms'
            self.method = (f'process RSS growth ({source} - VmRSS before '
                           'the step, after malloc_trim)')
        self._stop = threading.Event()
        self._thread = None

    def _sample(self) -> None:
        while not self._stop.wait(0.001):
            self._peak_kib = max(self._peak_kib, _status_kib('VmRSS') or 0)

    def start(self) -> None:
        if self.device.type == 'cuda':
            sync_device(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
            return
        _malloc_trim()
        self._base = _status_kib('VmRSS') or 0
        self._peak_kib = self._base
        if self._hwm:
            _reset_peak_rss()
        else:
            self._stop.clear()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()

    def stop(self) -> float:
        """Bytes added at the peak of the block."""
        if self.device.type == 'cuda':
            sync_device(self.device)
            return float(
                torch.cuda.max_memory_allocated(self.device) - self._base)
        if self._hwm:
            self._peak_kib = _status_kib('VmHWM') or self._base
        else:
            self._stop.set()
            self._thread.join()
        return float(max(0, self._peak_kib - self._base) * 1024)


def _cpu_model() -> str:
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(device: Union[str, torch.device] = 'cpu') -> dict:
    """What the numbers were measured on: CPU, threads, versions, GPU."""
    import mmengine
    device = torch.device(device)
    info = dict(
        cpu=_cpu_model(),
        cpu_count=os.cpu_count(),
        torch_threads=torch.get_num_threads(),
        torch=torch.__version__,
        mmengine=mmengine.__version__,
        python=platform.python_version(),
        device=str(device))
    try:
        import mmpretrain
        info['mmpretrain'] = mmpretrain.__version__
    except ImportError:
        pass
    if hasattr(os, 'sched_getaffinity'):
        info['cpu_affinity'] = len(os.sched_getaffinity(0))
    if hasattr(os, 'getloadavg'):
        info['load_average'] = [round(x, 2) for x in os.getloadavg()]
    if device.type == 'cuda':
        info['device_name'] = torch.cuda.get_device_name(device)
    return info
