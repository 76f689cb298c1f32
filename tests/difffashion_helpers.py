# Copyright (c) mmssl contributors. All rights reserved.
"""Tiny random models for the DiffFashion tests."""
import copy

import torch

NUM_CLASSES = 4


def tiny_ddpm_cfg(img_size: int = 16, num_classes: int = NUM_CLASSES,
                  out_channels: int = 3) -> dict:
    """A ClassCondDDPM config with a 2-level, 8/16-channel UNet."""
    return copy.deepcopy(dict(
        type='mmssl.ClassCondDDPM',
        unet=dict(
            sample_size=img_size,
            out_channels=out_channels,
            block_out_channels=(8, 16),
            layers_per_block=1,
            down_block_types=('DownBlock2D', 'AttnDownBlock2D'),
            up_block_types=('AttnUpBlock2D', 'UpBlock2D'),
            attention_head_dim=8,
            norm_num_groups=4,
            num_class_embeds=num_classes),
        num_sample_steps=3))


def tiny_vit_cfg(img_size: int = 16) -> dict:
    """A 2-block, 32-d mmpretrain ViT with patch 4."""
    return dict(
        type='mmpretrain.VisionTransformer',
        arch=dict(embed_dims=32, num_layers=2, num_heads=2,
                  feedforward_channels=64),
        img_size=img_size,
        patch_size=4,
        out_type='raw')


def build_tiny(img_size: int = 16, seed: int = 0, out_channels: int = 3):
    """(ClassCondDDPM, ViT) with random weights."""
    from mmengine.registry import init_default_scope

    import mmssl.models  # noqa: F401
    from mmssl.registry import MODELS
    init_default_scope('mmpretrain')
    torch.manual_seed(seed)
    ddpm = MODELS.build(tiny_ddpm_cfg(img_size, out_channels=out_channels))
    vit = MODELS.build(tiny_vit_cfg(img_size))
    vit.img_size_hint = img_size
    ddpm.eval()
    vit.eval()
    return ddpm, vit


def fast_kwargs(**kw) -> dict:
    """DiffFashion arguments for a handful of steps."""
    args = dict(
        garment_label=0,
        mask_label_sets=[[1, 2], [3]],
        num_steps=10,
        skip=80,
        mask_index=64,
        blend_steps=35,
        resample=2)
    args.update(kw)
    return args
