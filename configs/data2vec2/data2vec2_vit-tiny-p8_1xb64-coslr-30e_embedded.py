# data2vec 2.0 with a tiny ViT on the embedded shapes data (64 px, patch 8),
# the same encoder as configs/mae/mae_vit-tiny-p8_1xb64-coslr-30e_embedded.py
# (192-d, 6 blocks, 3 heads) and the same data, batch and epochs, so the two
# methods can be compared. Scaled down from the ViT-B recipe: 4 masks per
# image (64 x 4 = 256 masked copies per step, as 16 x 16 per GPU in the
# reference), top-5 of 6 blocks as targets, a faster EMA (0.99 -> 0.999 over
# 250 updates, ~8 epochs) for a run of 960 updates.
_base_ = [
    '../_base_/datasets/embedded_bs64_mae.py',
    '../_base_/default_runtime.py',
]

patch_size = 8
img_size = 64

model = dict(
    type='mmssl.Data2VecV2',
    data_preprocessor=dict(
        type='SelfSupDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        to_rgb=True),
    backbone=dict(
        type='mmssl.D2V2ViT',
        arch=dict(
            embed_dims=192,
            num_layers=6,
            num_heads=3,
            feedforward_channels=768),
        img_size=img_size,
        patch_size=patch_size),
    neck=dict(
        type='mmssl.D2V2ConvDecoder2d',
        in_channels=192,
        embed_dims=192,
        num_layers=6,
        kernel_size=3,
        groups=16,
        noise_std=0.01),
    head=dict(
        type='mmssl.D2V2Head',
        top_k=5,
        cls_loss_weight=0.01,
        loss=dict(type='mmssl.D2V2RegressionLoss')),
    ema=dict(momentum=1e-2, end_momentum=1e-3, anneal_iters=250))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='RandomResizedCrop',
        scale=img_size,
        crop_ratio_range=(0.35, 1.0),
        backend='pillow',
        interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5),
    # the M masks per image (the clone batch), drawn in the data workers;
    # the model reads them from the data samples and has no mask settings
    dict(
        type='mmssl.InverseBlockMaskGenerator',
        input_size=img_size // patch_size,
        mask_ratio=0.8,
        num_masks=4,
        block_size=3,
        adjust=0.07),
    dict(type='PackInputs', algorithm_keys=['mask'])
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))

max_epochs = 30
warmup_epochs = 3

optim_wrapper = dict(
    type='OptimWrapper',
    clip_grad=dict(max_norm=4.0),
    optimizer=dict(
        type='AdamW', lr=1e-3, betas=(0.9, 0.95), weight_decay=0.05),
    paramwise_cfg=dict(
        bias_decay_mult=0., norm_decay_mult=0., flat_decay_mult=0.))

param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-4,
        by_epoch=True,
        begin=0,
        end=warmup_epochs,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        T_max=max_epochs - warmup_epochs,
        by_epoch=True,
        begin=warmup_epochs,
        end=max_epochs,
        convert_to_iter_based=True)
]

train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10),
    checkpoint=dict(type='CheckpointHook', interval=5, max_keep_ckpts=2))
# the EMA teacher moves after every optimizer update
custom_hooks = [dict(type='mmssl.TeacherUpdateHook')]

env_cfg = dict(dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0, diff_rank_seed=True)
auto_scale_lr = dict(base_batch_size=64)
