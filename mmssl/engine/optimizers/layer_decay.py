# Copyright (c) mmssl contributors. All rights reserved.
"""Layer-wise learning-rate decay for models whose backbone knows its depth.

mmpretrain's ``LearningRateDecayOptimWrapperConstructor`` asks the *model*
for ``get_layer_depth``, which mmpretrain's classifiers have but mmseg's
``EncoderDecoder`` and mmdet's detectors do not; mmseg's own
``LayerDecayOptimizerConstructor`` only knows BEiT / MAE / ConvNeXt class
names and puts every other backbone parameter (e.g. the input LayerNorm of
data2vec 2.0's post-LN ViT) into the top layer.
:class:`BackboneLayerDecayOptimWrapperConstructor` asks the backbone
instead, so any backbone with mmpretrain's ``get_layer_depth(param_name,
prefix)`` (``mmpretrain.VisionTransformer``, ``mmssl.D2V2ViT``, ...) gets
layer-wise decay inside any host model. Parameters outside the backbone
(neck, decode / auxiliary heads) get the full learning rate.
"""
from functools import partial
from typing import Callable, List, Optional

from mmpretrain.engine.optimizers import \
    LearningRateDecayOptimWrapperConstructor
from torch import nn

from mmssl.registry import OPTIM_WRAPPER_CONSTRUCTORS


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class BackboneLayerDecayOptimWrapperConstructor(
        LearningRateDecayOptimWrapperConstructor):
    """Layer-wise lr decay with the depth given by ``model.backbone``.

    A parameter at depth ``d`` of ``D`` gets ``lr * layer_decay_rate ** (D -
    d - 1)``; the backbone defines the depths (for a ViT: embedding 0, block
    ``i`` ``i + 1``, the rest ``D - 1`` with ``D = num_layers + 2``), every
    parameter outside ``backbone.`` has depth ``D - 1`` (scale 1). The other
    ``paramwise_cfg`` keys (``layer_decay_rate``, ``bias_decay_mult``,
    ``norm_decay_mult``, ``flat_decay_mult``, ``custom_keys`` with
    ``decay_mult``) are those of mmpretrain's constructor.

    Example::

        optim_wrapper = dict(
            optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05),
            constructor='mmssl.BackboneLayerDecayOptimWrapperConstructor',
            paramwise_cfg=dict(
                layer_decay_rate=0.65,
                flat_decay_mult=0.,
                custom_keys={'.pos_embed': dict(decay_mult=0.),
                             '.cls_token': dict(decay_mult=0.)}))
    """

    def add_params(self,
                   params: List[dict],
                   module: nn.Module,
                   prefix: str = '',
                   get_layer_depth: Optional[Callable] = None,
                   **kwargs) -> None:
        """Add the parameters of ``module`` (see the parent class)."""
        if get_layer_depth is None and prefix == '' and not hasattr(
                module, 'get_layer_depth'):
            backbone = getattr(module, 'backbone', None)
            if backbone is None or not hasattr(backbone, 'get_layer_depth'):
                raise TypeError(
                    'BackboneLayerDecayOptimWrapperConstructor needs '
                    '`model.backbone.get_layer_depth(param_name, prefix)` '
                    f'(as in mmpretrain ViTs); {type(module).__name__}'
                    f'.backbone is {type(backbone).__name__}, which has none')
            get_layer_depth = partial(
                backbone.get_layer_depth, prefix='backbone.')
        super().add_params(
            params,
            module,
            prefix=prefix,
            get_layer_depth=get_layer_depth,
            **kwargs)
