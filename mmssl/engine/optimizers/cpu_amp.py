# Copyright (c) mmssl contributors. All rights reserved.
"""bf16 mixed precision on the CPU.

mmengine's ``AmpOptimWrapper`` refuses to build without a GPU (NPU, MLU,
MUSA). On a CPU without bf16 matrix units that costs little: bf16 products
are no faster than fp32 there. CPUs with AMX tiles (Intel Xeon since the 4th
generation) multiply bf16 matrices in hardware, several times faster than
fp32 (a 2048-side product: 2,000-2,400 against 310-370 GFLOP/s on two
cores). :class:`CPUAmpOptimWrapper` is the ``OptimWrapper`` that trains in
``torch.autocast('cpu', dtype=torch.bfloat16)`` there: the parameters, their
gradients and the optimizer state stay fp32, the products of the forward and
backward run in bf16, as ``AmpOptimWrapper(dtype='bfloat16')`` does on a
GPU. bf16 keeps fp32's exponent range, so no loss scaling is needed.
"""
import contextlib
from typing import Iterator, Optional, Union

import torch
from mmengine.optim import OptimWrapper
from torch import nn

from mmssl.registry import OPTIM_WRAPPERS

__all__ = ['CPUAmpOptimWrapper', 'cpu_has_amx_bf16']


def cpu_has_amx_bf16() -> bool:
    """Whether this CPU multiplies bf16 matrices in hardware (AMX tiles).

    Without them bf16 autocast on the CPU is slower than fp32, so
    ``--amp`` keeps fp32 there (:func:`mmssl.engine.machine_cfg.
    configure_amp`).
    """
    probe = getattr(torch.cpu, '_is_amx_tile_supported', None)
    return bool(probe is not None and probe())


@OPTIM_WRAPPERS.register_module()
class CPUAmpOptimWrapper(OptimWrapper):
    """``OptimWrapper`` whose forward runs in bf16 autocast on the CPU.

    ``model.train_step`` runs the data preprocessor and the forward inside
    :meth:`optim_context`, so the loss is computed in
    ``torch.autocast('cpu', dtype=torch.bfloat16)`` and its backward runs
    the same products in bf16; the update is the optimizer's own, on fp32
    parameters and gradients. The state dict is the optimizer's (there is no
    loss scaler), so a checkpoint resumes with or without the wrapper.

    Args:
        dtype (str | torch.dtype): The autocast dtype; only ``'bfloat16'``
            (CPU autocast has no fp16 loss scaling). Defaults to
            ``'bfloat16'``.
        loss_scale: Ignored (bf16 needs no loss scaling); accepted so that
            an ``AmpOptimWrapper`` config without ``dtype`` switches to this
            wrapper by its ``type`` alone
            (``--cfg-options optim_wrapper.type=mmssl.CPUAmpOptimWrapper``).
        **kwargs: ``OptimWrapper``'s arguments (``optimizer``,
            ``accumulative_counts``, ``clip_grad``).

    Example::

        optim_wrapper = dict(
            type='mmssl.CPUAmpOptimWrapper',
            optimizer=dict(type='AdamW', lr=1.5e-4))
    """

    def __init__(self,
                 dtype: Optional[Union[str, torch.dtype]] = 'bfloat16',
                 loss_scale=None,
                 **kwargs) -> None:
        if dtype is None:
            dtype = torch.bfloat16
        if isinstance(dtype, str):
            dtype = getattr(torch, dtype, dtype)
        if dtype != torch.bfloat16:
            raise ValueError(
                f'CPUAmpOptimWrapper: dtype={dtype!r} is not supported; CPU '
                'autocast trains in bfloat16 only (set optim_wrapper.dtype='
                "'bfloat16' or leave it out)")
        super().__init__(**kwargs)
        self.cast_dtype = dtype

    @contextlib.contextmanager
    def optim_context(self, model: nn.Module) -> Iterator[None]:
        """The base context (gradient accumulation) plus bf16 autocast."""
        with super().optim_context(model), torch.autocast(
                'cpu', dtype=self.cast_dtype):
            yield
