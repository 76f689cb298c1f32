# Copyright (c) mmssl contributors. All rights reserved.
from .cpu_amp import CPUAmpOptimWrapper, cpu_has_amx_bf16
from .layer_decay import BackboneLayerDecayOptimWrapperConstructor

__all__ = [
    'BackboneLayerDecayOptimWrapperConstructor', 'CPUAmpOptimWrapper',
    'cpu_has_amx_bf16'
]
