# Copyright (c) mmssl contributors. All rights reserved.
"""Tiny model configs for tests and examples (like ``mmdet.testing``)."""
import copy

from .contrastive import tiny_simclr_cfg  # noqa: F401
from .images import write_image_folder  # noqa: F401
from .resume import assert_resume_equals_straight  # noqa: F401
from .resume import train_state, two_view_transform


def tiny_mae_cfg(img_size: int = 32,
                 patch_size: int = 8,
                 embed_dims: int = 32,
                 mask_ratio: float = 0.75,
                 scope: str = 'mmssl') -> dict:
    """A tiny MAE config dict (2 blocks, 1 decoder block).

    ``scope='mmssl'`` builds ``mmssl.MAE``/``mmssl.MAEViT``;
    ``scope='mmpretrain'`` the same network from mmpretrain's own classes.
    """
    if scope not in ('mmssl', 'mmpretrain'):
        raise ValueError(f'scope must be mmssl or mmpretrain, got {scope!r}')
    num_patches = (img_size // patch_size)**2
    return copy.deepcopy(
        dict(
            type=f'{scope}.MAE',
            data_preprocessor=dict(
                type='mmpretrain.SelfSupDataPreprocessor',
                mean=[123.675, 116.28, 103.53],
                std=[58.395, 57.12, 57.375],
                to_rgb=True),
            backbone=dict(
                type=f'{scope}.MAEViT',
                arch=dict(
                    embed_dims=embed_dims,
                    num_layers=2,
                    num_heads=2,
                    feedforward_channels=2 * embed_dims),
                img_size=img_size,
                patch_size=patch_size,
                mask_ratio=mask_ratio),
            neck=dict(
                type=f'{scope}.MAEPretrainDecoder',
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


def tiny_poslabel_vit_cfg(**overrides) -> dict:
    """A tiny ``mmssl.PosLabelViT`` backbone config dict (32 px, patch 8:
    a 4x4 token grid; 32-d, 2 blocks, no CLS token, feature-map output) for
    the positional-label classifier; ``overrides`` update it."""
    cfg = dict(
        type='mmssl.PosLabelViT',
        arch=dict(
            embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64),
        img_size=32,
        patch_size=8,
        with_cls_token=False,
        out_type='featmap')
    cfg.update(overrides)
    return copy.deepcopy(cfg)


def tiny_data2vec2_cfg(img_size: int = 32,
                       patch_size: int = 8,
                       embed_dims: int = 16,
                       num_layers: int = 4,
                       top_k: int = 2,
                       ema: dict = None) -> dict:
    """A tiny ``mmssl.Data2VecV2`` config dict (spec 7.6: 32 px, patch 8,
    D 16, 4 blocks, K 2; a 2-layer conv decoder with 4 groups). The masks
    (M per image) come with the batch: :func:`tiny_data2vec2_samples`, or
    ``mmssl.InverseBlockMaskGenerator`` in a pipeline."""
    return copy.deepcopy(
        dict(
            type='mmssl.Data2VecV2',
            data_preprocessor=dict(
                type='mmpretrain.SelfSupDataPreprocessor',
                mean=[123.675, 116.28, 103.53],
                std=[58.395, 57.12, 57.375],
                to_rgb=True),
            backbone=dict(
                type='mmssl.D2V2ViT',
                arch=dict(
                    embed_dims=embed_dims,
                    num_layers=num_layers,
                    num_heads=2,
                    feedforward_channels=2 * embed_dims),
                img_size=img_size,
                patch_size=patch_size),
            neck=dict(
                type='mmssl.D2V2ConvDecoder2d',
                in_channels=embed_dims,
                embed_dims=embed_dims,
                num_layers=2,
                kernel_size=3,
                groups=4),
            head=dict(
                type='mmssl.D2V2Head',
                top_k=top_k,
                cls_loss_weight=0.01,
                loss=dict(type='mmssl.D2V2RegressionLoss')),
            ema=ema
            or dict(momentum=2e-4, end_momentum=1e-5, anneal_iters=100000)))


def tiny_data2vec2_samples(batch_size: int,
                           num_masks: int = 3,
                           mask_ratio: float = 0.8,
                           grid: int = 4,
                           generator=None) -> list:
    """Data samples carrying (M, h, w) inverse block masks, as
    ``mmssl.InverseBlockMaskGenerator`` + ``PackInputs(algorithm_keys=
    ['mask'])`` give them, for ``Data2VecV2.loss(inputs, samples)``."""
    from mmpretrain.structures import DataSample

    from mmssl.models.utils.masking import inverse_block_mask
    masks = inverse_block_mask(
        grid, grid, mask_ratio, batch_size * num_masks, generator=generator)
    masks = masks.view(batch_size, num_masks, grid, grid)
    return [DataSample().set_mask(m) for m in masks]


def write_random_images(root: str,
                        num: int = 16,
                        size: int = 40,
                        seed: int = 0) -> None:
    """Write ``num`` random RGB PNGs (``000.png`` ...) into folder ``root``."""
    import os.path as osp

    import numpy as np
    from PIL import Image
    rng = np.random.RandomState(seed)
    for i in range(num):
        arr = rng.randint(0, 255, (size, size, 3), dtype=np.uint8)
        Image.fromarray(arr).save(osp.join(root, f'{i:03d}.png'))


def tiny_pretrain_runner_cfg(model: dict,
                             work_dir: str,
                             data_root: str,
                             max_epochs: int,
                             img_size: int = 32,
                             extra_transforms: list = (),
                             custom_hooks: list = (),
                             resume_from: str = None,
                             total_epochs: int = 4,
                             pipeline: list = None,
                             dataset_kwargs: dict = None) -> dict:
    """A small mmengine runner config for pretraining ``model`` on the
    images of ``data_root`` (batch 4, AdamW, warmup + cosine over
    ``total_epochs``, a checkpoint and the random state every epoch), as
    used by the exact-resume tests. ``extra_transforms`` go before
    ``PackInputs(algorithm_keys=['mask'])``; ``pipeline`` replaces the
    whole pipeline and ``dataset_kwargs`` updates the ``CustomDataset``
    arguments (e.g. ``with_label=True, ann_file='ann.txt'``)."""
    pipeline = pipeline or [
        dict(type='LoadImageFromFile'),
        dict(
            type='RandomResizedCrop',
            scale=img_size,
            crop_ratio_range=(0.5, 1)),
        dict(type='RandomFlip', prob=0.5),
        *extra_transforms,
        dict(type='PackInputs', algorithm_keys=['mask']),
    ]
    cfg = dict(
        default_scope='mmpretrain',
        custom_imports=dict(imports=['mmssl'], allow_failed_imports=False),
        work_dir=work_dir,
        model=model,
        train_dataloader=dict(
            batch_size=4,
            num_workers=0,
            sampler=dict(type='DefaultSampler', shuffle=True),
            collate_fn=dict(type='default_collate'),
            dataset=dict(
                type='CustomDataset',
                data_root=data_root,
                **{
                    'with_label': False,
                    **(dataset_kwargs or {})
                },
                pipeline=pipeline)),
        optim_wrapper=dict(
            optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05),
            clip_grad=dict(max_norm=4.)),
        param_scheduler=[
            dict(
                type='LinearLR',
                start_factor=0.1,
                by_epoch=True,
                begin=0,
                end=1,
                convert_to_iter_based=True),
            dict(
                type='CosineAnnealingLR',
                T_max=total_epochs - 1,
                by_epoch=True,
                begin=1,
                end=total_epochs,
                convert_to_iter_based=True)
        ],
        train_cfg=dict(type='EpochBasedTrainLoop', max_epochs=max_epochs),
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=1),
            logger=dict(type='LoggerHook', interval=1),
            random_state=dict(type='mmssl.RandomStateHook')),
        custom_hooks=list(custom_hooks),
        randomness=dict(seed=7),
        env_cfg=dict(dist_cfg=dict(backend='gloo')),
        log_level='WARNING',
    )
    if resume_from:
        cfg.update(resume=True, load_from=resume_from)
    return copy.deepcopy(cfg)
