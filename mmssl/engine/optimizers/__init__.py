# Copyright (c) mmssl contributors. All rights reserved.
from .layer_decay import BackboneLayerDecayOptimWrapperConstructor

__all__ = ['BackboneLayerDecayOptimWrapperConstructor']
