# DenseCL with a half-width ResNet-18 on the embedded shapes data (64 px),
# set up so that a 30-epoch run (930 steps) learns. The ImageNet recipe's
# settings scaled down as such (plain BN, heads without BN, m = 0.99,
# K = 1024, crop 0.2-1, lr 0.03) did not: the kNN / linear probe stayed at
# the random backbone's level and the global loss near chance (see the
# README).
# Changes:
# * shuffle-BN in one process: BN layers are mmssl.SplitBatchNorm with
#   8 groups, i.e. the batch of 64 is normalised as 8 "processes" of 8
#   images (MoCo's single-GPU recipe); the key batch is permuted before the
#   key encoder, so a query and its key are normalised with other images;
# * heads with BN (mmssl.DenseCLNeckBN: Linear-BN-ReLU-Linear and
#   Conv-BN-ReLU-Conv, SimCLR / MoCo v3 style), against the collapse of
#   the global projections towards one direction;
# * a faster key encoder and a shorter queue for a short run: m = 0.9
#   (`momentum=0.1`), K = 256 (4 batches), SGD lr 0.06;
# * crops of 50-100 % of the 64 px image (instead of 20-100 %), so that
#   both views keep most of the main shape.
# The last stage keeps stride 16 (strides 1, 2, 2, 1) so that 64 px views
# give a 4 x 4 grid of cells for the dense loss instead of 2 x 2. Views:
# MoCo v2's without the blur (too strong at 64 px): colour jitter
# 0.4/0.4/0.4/0.1 with p 0.8, grayscale p 0.2, flip. D = 64, temperature
# 0.2, lambda 0.5 after a 1-epoch warm-up (31 steps), SGD momentum 0.9,
# wd 1e-4, cosine per step, 30 epochs, batch 64 (drop_last, divides K).
# kNN / linear probe of the backbone every 5 epochs in the log
# (mmssl.FrozenEvalHook; it restores every random state, so the run is the
# same without it).
_base_ = [
    '../_base_/datasets/embedded_bs64_mae.py',
    '../_base_/default_runtime.py',
]

max_epochs = 30
batch_size = 64

model = dict(
    type='mmssl.DenseCL',
    queue_len=256,
    feat_dim=64,
    momentum=0.1,
    loss_lambda=0.5,
    data_preprocessor=dict(
        type='SelfSupDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        to_rgb=True),
    backbone=dict(
        type='ResNet',
        depth=18,
        stem_channels=32,
        base_channels=32,
        strides=(1, 2, 2, 1),
        norm_cfg=dict(type='mmssl.SplitBatchNorm', num_splits=8),
        zero_init_residual=False),
    neck=dict(
        type='mmssl.DenseCLNeckBN',
        in_channels=256,
        hid_channels=256,
        out_channels=64,
        num_grid=None,
        init_cfg=dict(
            type='Kaiming',
            layer='Linear',
            mode='fan_in',
            nonlinearity='relu',
            distribution='normal',
            bias=0)),
    head=dict(type='mmssl.DenseCLLoss', temperature=0.2))

view_pipeline = [
    dict(
        type='RandomResizedCrop',
        scale=64,
        crop_ratio_range=(0.5, 1.0),
        backend='pillow'),
    dict(
        type='RandomApply',
        transforms=[
            dict(
                type='ColorJitter',
                brightness=0.4,
                contrast=0.4,
                saturation=0.4,
                hue=0.1)
        ],
        prob=0.8),
    dict(
        type='RandomGrayscale',
        prob=0.2,
        keep_channels=True,
        channel_weights=(0.114, 0.587, 0.2989)),
    dict(type='RandomFlip', prob=0.5),
]
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='MultiView', num_views=2, transforms=[view_pipeline]),
    dict(type='PackInputs')
]
# every batch full: the queue advances by the batch size
train_dataloader = dict(
    batch_size=batch_size,
    drop_last=True,
    dataset=dict(pipeline=train_pipeline))

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.06, momentum=0.9, weight_decay=1e-4))
param_scheduler = [
    dict(
        type='CosineAnnealingLR',
        T_max=max_epochs,
        by_epoch=True,
        begin=0,
        end=max_epochs,
        convert_to_iter_based=True)
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs)

custom_hooks = [
    dict(type='mmssl.DenseCLWarmupHook', start_iters=31),
    dict(type='mmssl.FrozenEvalHook', interval=5),
]
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10),
    checkpoint=dict(type='CheckpointHook', interval=5, max_keep_ckpts=2))

env_cfg = dict(dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0, diff_rank_seed=True)
