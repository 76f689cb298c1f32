# Copyright (c) mmssl contributors. All rights reserved.
"""The tiny backbones and SubTuning classifier configs the SubTuning tests
share (mmpretrain scope): a base-width-8 ResNet-18 (64-channel features)
and a 3-layer, 16-dim ViT on 32 px inputs."""

RESNET_CHANNELS = 64
VIT_CHANNELS = 16


def tiny_resnet(**kw) -> dict:
    """ResNet-18 with ``base_channels=8``; ``kw`` overrides or adds."""
    return dict(dict(type='ResNet', depth=18, base_channels=8), **kw)


def tiny_vit(num_layers: int = 3, **kw) -> dict:
    """A ``num_layers``-layer ViT (16 dims, 2 heads, 8 px patches, 32 px)."""
    return dict(
        dict(
            type='VisionTransformer',
            arch=dict(
                embed_dims=16,
                num_layers=num_layers,
                num_heads=2,
                feedforward_channels=32),
            img_size=32,
            patch_size=8), **kw)


def subtuning_cfg(backbone: dict,
                  trainable=(),
                  num_classes: int = 3,
                  in_channels=None,
                  neck=None,
                  **kw) -> dict:
    """A ``mmssl.SubTuningClassifier`` over ``backbone`` with a linear head;
    ResNets get ``GlobalAveragePooling`` (``neck=False``: none), ViTs none.
    ``in_channels`` defaults to the backbone's feature width; ``trainable``
    (a sequence, or a string / None as the classifier takes it) becomes
    ``trainable_blocks``."""
    vit = backbone['type'] == 'VisionTransformer'
    if neck is None:
        neck = not vit
    if in_channels is None:
        in_channels = VIT_CHANNELS if vit else RESNET_CHANNELS
    return dict(
        type='mmssl.SubTuningClassifier',
        backbone=backbone,
        neck=dict(type='GlobalAveragePooling') if neck else None,
        head=dict(
            type='LinearClsHead',
            num_classes=num_classes,
            in_channels=in_channels,
            loss=dict(type='CrossEntropyLoss')),
        trainable_blocks=trainable if trainable is None
        or isinstance(trainable, str) else list(trainable),
        **kw)
