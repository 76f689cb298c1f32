# Copyright (c) mmssl contributors. All rights reserved.
"""What a timed training step runs in: its matmul dtype and compilation."""
import torch
import torch.nn as nn
from mmengine.config import Config

from mmssl.engine.machine_cfg import AMP_WRAPPERS

__all__ = ['amp_dtype', 'maybe_compile']


def amp_dtype(optim_wrapper) -> torch.dtype:
    """The dtype the matrix products of a step run in: an
    ``AmpOptimWrapper``'s autocast dtype (fp16 unless set), else fp32."""
    if type(optim_wrapper).__name__ not in AMP_WRAPPERS:
        return torch.float32
    dtype = getattr(optim_wrapper, 'cast_dtype', None)
    return dtype if isinstance(dtype, torch.dtype) else torch.float16


def maybe_compile(model: nn.Module, cfg: Config) -> bool:
    """Apply ``cfg.compile`` (``True`` = default options, a dict = options of
    ``torch.compile``) to the model's forward pass.

    mmengine's Runner compiles ``model.train_step``; with torch 2.14 dynamo
    cannot trace mmengine's optimizer wrapper inside it (it fails reading the
    optimizer's ``param_groups``), so the forward (data preprocessing stays
    eager) is what is compiled here; backward runs through the compiled
    graph's autograd function, the optimizer update stays eager.

    Returns:
        bool: Whether the step was compiled.
    """
    compile_cfg = cfg.get('compile', None)
    if compile_cfg is None or compile_cfg is False:
        return False
    if compile_cfg is True:
        compile_cfg = dict()
    if not isinstance(compile_cfg, dict):
        raise TypeError(f'compile must be a bool or a dict of torch.compile '
                        f'options, got {compile_cfg!r}')
    model.forward = torch.compile(model.forward, **compile_cfg)
    return True
