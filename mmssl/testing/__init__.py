# Copyright (c) mmssl contributors. All rights reserved.
"""Tiny model configs for tests and examples (like ``mmdet.testing``)."""
import copy


def tiny_mae_cfg(img_size: int = 32, patch_size: int = 8,
                 embed_dims: int = 32, mask_ratio: float = 0.75) -> dict:
    """A tiny ``mmssl.MAE`` config dict (2 blocks, 1 decoder block)."""
    num_patches = (img_size // patch_size)**2
    return copy.deepcopy(dict(
        type='mmssl.MAE',
        data_preprocessor=dict(
            type='mmpretrain.SelfSupDataPreprocessor',
            mean=[123.675, 116.28, 103.53],
            std=[58.395, 57.12, 57.375],
            to_rgb=True),
        backbone=dict(
            type='mmssl.MAEViT',
            arch=dict(
                embed_dims=embed_dims, num_layers=2, num_heads=2,
                feedforward_channels=2 * embed_dims),
            img_size=img_size,
            patch_size=patch_size,
            mask_ratio=mask_ratio),
        neck=dict(
            type='mmpretrain.MAEPretrainDecoder',
            num_patches=num_patches,
            patch_size=patch_size,
            in_chans=3,
            embed_dim=embed_dims,
            decoder_embed_dim=16,
            decoder_depth=1,
            decoder_num_heads=2,
            mlp_ratio=4.),
        head=dict(
            type='mmpretrain.MAEPretrainHead',
            norm_pix=True,
            patch_size=patch_size,
            loss=dict(
                type='mmpretrain.PixelReconstructionLoss',
                criterion='L2'))))
