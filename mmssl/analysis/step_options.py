# Copyright (c) mmssl contributors. All rights reserved.
"""What a timed training step runs in: its matmul dtype and compilation."""
import torch
import torch.nn as nn
from mmengine.config import Config

from mmssl.engine.compile import compile_forward
from mmssl.engine.machine_cfg import AMP_WRAPPERS
from mmssl.engine.optimizers import CPUAmpOptimWrapper

__all__ = ['amp_dtype', 'maybe_compile']


def amp_dtype(optim_wrapper) -> torch.dtype:
    """The dtype the matrix products of a step run in: an
    ``AmpOptimWrapper``'s autocast dtype (fp16 unless set), bf16 for
    ``mmssl.CPUAmpOptimWrapper``, else fp32."""
    if isinstance(optim_wrapper, CPUAmpOptimWrapper):
        return optim_wrapper.cast_dtype
    if type(optim_wrapper).__name__ not in AMP_WRAPPERS:
        return torch.float32
    dtype = getattr(optim_wrapper, 'cast_dtype', None)
    return dtype if isinstance(dtype, torch.dtype) else torch.float16


def maybe_compile(model: nn.Module, cfg: Config) -> bool:
    """Apply ``cfg.compile`` to the model's forward pass, as the Runner
    does in mmssl (:func:`mmssl.engine.compile.compile_forward`).

    Returns:
        bool: Whether the step was compiled.
    """
    return compile_forward(model, cfg.get('compile', None))
